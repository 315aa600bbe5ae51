"""What a run records about where it came from: code version, packages, platform."""
from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version

from . import paths

PACKAGES = ("scalebook", "numpy", "numba", "llvmlite", "pandas", "scipy", "statsmodels", "scikit-learn",
            "krippendorff", "altair", "vl-convert-python", "papermill", "jupytext", "nbclient", "ipykernel",
            "jupyter-book", "myst-nb", "sphinx")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_state() -> dict[str, object]:
    """The commit of the working tree and whether it has uncommitted changes."""
    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", *args], cwd=paths.root(), capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "unknown", "dirty": bool(status) if status is not None else None}


def platform_info() -> dict[str, str]:
    return {"system": platform.system(), "machine": platform.machine(),
            "python_implementation": platform.python_implementation()}
