"""Say what kind of data a chapter is showing, for its figure captions and prose.

A chapter takes its input table as a parameter; the caption must tell the reader whether the
figure shows simulated data, digitised readings of a published figure, or the user's own table.
`describe(path)` derives that from the bundled-data registry (`data/datasets.yml`) so a caption is
never typed by hand and never goes stale when the notebook is rerun on another table.
"""
from __future__ import annotations

from pathlib import Path

from . import datasets, paths


def registered_entry(path: str | Path) -> tuple[str, dict] | None:
    """The registry entry whose file is `path` (compared after resolving), or None."""
    target = paths.resolve(path).resolve()
    for name, e in datasets.entries().items():
        if "file" in e and paths.resolve(e["file"]).resolve() == target:
            return name, e
    return None


def describe(path: str | Path) -> str:
    """A short phrase naming the data's kind, e.g. 'simulated data, bundled dataset takeoff_sim'."""
    found = registered_entry(path)
    if found is None:
        return f"data from {Path(path).name}"
    name, e = found
    kind = e.get("kind", "")
    if kind == "simulated":
        return f"simulated data, bundled dataset {name}"
    if kind == "digitised":
        src = e.get("source", "a published figure")
        return f"approximate readings digitised from {src}, bundled dataset {name}"
    return f"{kind or 'bundled'} data, bundled dataset {name}"
