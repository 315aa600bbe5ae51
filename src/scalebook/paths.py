"""The one place that knows where things live.

The repository root holds `report.yml`; build products go under `_build/` (or
`$SCALEBOOK_BUILD_DIR`, which `scalebook check` uses to rebuild into a scratch folder).
"""
from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    env = os.environ.get("SCALEBOOK_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[2]
    if (here / "report.yml").exists():
        return here
    for candidate in [Path.cwd(), *Path.cwd().parents]:
        if (candidate / "report.yml").exists():
            return candidate
    return here


def build_dir() -> Path:
    env = os.environ.get("SCALEBOOK_BUILD_DIR")
    return Path(env).resolve() if env else root() / "_build"


def runs_dir() -> Path:
    return build_dir() / "runs"


def html_dir() -> Path:
    return build_dir() / "html"


def generated_dir() -> Path:
    """Where `scalebook book` stages executed notebooks and figure files for Sphinx."""
    return root() / "book" / "_generated"


def notebooks_dir() -> Path:
    return root() / "notebooks"


def data_dir() -> Path:
    return root() / "data"


def src_dir() -> Path:
    return Path(__file__).resolve().parent


def report_config() -> Path:
    return root() / "report.yml"


def lock_file() -> Path:
    return root() / "requirements.lock"


def replace_dir(new: Path, target: Path) -> None:
    """Put folder `new` in place of `target` by renames, so `target` is never missing or half-written."""
    import shutil

    old = target.with_name(f".{target.name}-old-{os.getpid()}")
    if target.exists():
        os.rename(target, old)
    os.rename(new, target)
    shutil.rmtree(old, ignore_errors=True)


def resolve(path: str | os.PathLike) -> Path:
    """Resolve a data path as notebooks receive it: relative paths are relative to the root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (root() / p)


def display_path(path: str | os.PathLike) -> str:
    """A path as a message or a run key shows it: root-relative where possible."""
    p = Path(path).resolve()
    try:
        return p.relative_to(root()).as_posix()
    except ValueError:
        return str(p)
