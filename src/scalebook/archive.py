"""`scalebook archive`: the built book as one reproducible tarball with a manifest and its sha256.

The tarball holds `scalebook-<version>/` with the HTML (which opens from `file://` after
unpacking) and `MANIFEST.json` (commit, build time, runs, file count and each file's sha256).
Entries are sorted with fixed owners and modification times, and gzip carries no timestamp,
so the same book gives the same archive bytes.
"""
from __future__ import annotations

import gzip
import io
import json
import tarfile
from datetime import datetime, timezone
from pathlib import Path

from . import __version__, book, paths, provenance
from .errors import ScalebookError
from .hashing import path_sha256


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def manifest(html: Path) -> dict:
    stamp = json.loads((html / book.STAMP).read_text())
    files = sorted(f for f in html.rglob("*") if f.is_file() and f.name != book.STAMP)
    built = datetime.fromtimestamp((html / book.STAMP).stat().st_mtime, timezone.utc)
    return {"report_version": __version__, "commit": provenance.git_state()["commit"],
            "build_time_utc": built.isoformat(timespec="seconds"),
            "runs": [{k: r[k] for k in ("notebook", "set", "run_id")} for r in stamp["runs"]],
            "file_count": len(files),
            "files": {f.relative_to(html).as_posix(): path_sha256(f) for f in files}}


def write_archive(output: Path | None = None) -> tuple[Path, str, dict]:
    html = paths.html_dir()
    if not (html / book.STAMP).exists():
        raise ScalebookError("there is no built book to archive; run `make book` (or `scalebook book`) first")
    man = manifest(html)
    prefix = f"scalebook-{__version__}"
    output = Path(output) if output else paths.build_dir() / f"{prefix}-{man['commit'][:12]}.tar.gz"
    output.parent.mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, f"{prefix}/MANIFEST.json", (json.dumps(man, indent=1, sort_keys=True) + "\n").encode())
        for rel in man["files"]:
            _add_bytes(tar, f"{prefix}/{rel}", (html / rel).read_bytes())
    tmp = output.with_name(output.name + ".tmp")
    with open(tmp, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    tmp.replace(output)
    digest = path_sha256(output)
    output.with_name(output.name + ".sha256").write_text(f"{digest}  {output.name}\n")
    return output, digest, man
