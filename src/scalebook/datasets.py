"""The bundled datasets: their registry entries, generators and integrity checks.

`data/datasets.yml` lists every bundled file with its kind (simulated or digitised), its
schema, its sha256 and, for simulated data, the generator (`module:function`, called with
the entry's `seed`) and the ground truth it encodes. A committed CSV must equal what its
generator produces, byte for byte; `verify()` checks that and the hashes.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pandas as pd

from . import paths, tables
from .errors import DataError
from .hashing import path_sha256, sha256_bytes


def entries() -> dict[str, dict]:
    return tables.registry().get("datasets") or {}


def entry(name: str) -> dict:
    known = entries()
    if name not in known:
        raise DataError(f"no bundled dataset named '{name}'; known: {', '.join(sorted(known))}")
    return known[name]


def file_sha256(path: str | Path) -> str:
    return path_sha256(paths.resolve(path))


def generate(name: str) -> pd.DataFrame:
    """Run the dataset's generator with its registered seed."""
    e = entry(name)
    if "generator" not in e:
        raise DataError(f"dataset '{name}' is {e.get('kind', 'not simulated')}: it has no generator")
    module, func = e["generator"].split(":")
    return getattr(importlib.import_module(module), func)(seed=int(e.get("seed", 0)))


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset, validated against its schema."""
    e = entry(name)
    return tables.load_table(e["file"], e["schema"])


def regenerate(name: str) -> str:
    """Write the generator's output to the dataset's file and its sha256 into datasets.yml."""
    e = entry(name)
    data = tables.to_csv_bytes(generate(name))
    paths.resolve(e["file"]).write_bytes(data)
    digest = sha256_bytes(data)
    reg = tables.registry_path()
    text = reg.read_text(encoding="utf-8")
    # Rewrite only this entry's sha256 line, keeping the file's comments and layout.
    pattern = re.compile(rf"(\n  {re.escape(name)}:\n(?:    .*\n|\n)*?    sha256: )\S+")
    new, count = pattern.subn(rf"\g<1>{digest}", text)
    if count != 1:
        raise DataError(f"{paths.display_path(reg)}: could not find the sha256 line of dataset '{name}'")
    reg.write_text(new, encoding="utf-8")
    return digest


def verify() -> list[str]:
    """Problems with the bundled data: hash mismatches and generators that no longer reproduce."""
    problems = []
    for name, e in entries().items():
        path = paths.resolve(e["file"])
        if not path.exists():
            problems.append(f"{name}: file {e['file']} is missing")
            continue
        actual = file_sha256(path)
        if actual != e.get("sha256"):
            problems.append(f"{name}: {e['file']} has sha256 {actual}, datasets.yml says {e.get('sha256')}")
        if "generator" in e and tables.to_csv_bytes(generate(name)) != path.read_bytes():
            problems.append(f"{name}: {e['file']} differs from what {e['generator']} produces")
    return problems
