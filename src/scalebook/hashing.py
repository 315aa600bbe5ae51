"""Content hashes: the identity of data files, source trees and runs."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def path_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents, in sorted order)."""
    path = Path(path)
    return files_sha256(path, [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file()))


def files_sha256(base: Path, files: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        if f != base:
            h.update(f.relative_to(base).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def json_sha256(obj: Any) -> str:
    return sha256_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode())
