"""Shared fixtures: a throw-away report root for pipeline tests, and the external-data folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXTERNAL = REPO.parent / "shared" / "external"


def external(*parts: str) -> Path:
    """A path under ../shared/external, or skip the test with the reason."""
    path = EXTERNAL.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"external validation data not present at ../shared/external/{'/'.join(parts)}")
    return path


@pytest.fixture
def toy_root(tmp_path, monkeypatch) -> Path:
    """A copy of the toy report (one notebook, one figure) as the scalebook root."""
    root = tmp_path / "toy"
    shutil.copytree(FIXTURES / "toy", root)
    monkeypatch.setenv("SCALEBOOK_ROOT", str(root))
    monkeypatch.delenv("SCALEBOOK_BUILD_DIR", raising=False)
    return root


def scalebook_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600,
                  **kwargs) -> subprocess.CompletedProcess:
    """Run the `scalebook` CLI as a user would, in a subprocess."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "scalebook.cli", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def copy_repo(dest: Path) -> Path:
    """A copy of the repository's sources (no environment, no build products) to build in isolation."""
    ignore = shutil.ignore_patterns(".venv", "_build", "_generated", ".git", "__pycache__", ".pytest_cache",
                                    ".hypothesis", "test-artifacts", "*.egg-info")
    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory) -> Path:
    """The whole report run with its `smoke` sets and built into HTML, in a copy of the repository.

    Session-scoped and used only by tests in the `book` xdist group, so it is built once.
    """
    root = copy_repo(tmp_path_factory.mktemp("book") / "repo")
    env = {"SCALEBOOK_ROOT": str(root)}
    res = scalebook_cli("run", "--all", "--set", "smoke", "--jobs", "2", cwd=root, env=env, timeout=1800)
    assert res.returncode == 0, res.stderr[-4000:]
    res = scalebook_cli("book", cwd=root, env=env, timeout=1800)
    assert res.returncode == 0, res.stderr[-4000:]
    return root
