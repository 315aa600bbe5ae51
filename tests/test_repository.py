"""Repository-wide rules: data reproduce, notebooks are thin, the bibliography is clean."""
from __future__ import annotations

import ast
import re
from collections import Counter

import jupytext
import pytest
import yaml

from scalebook import config, datasets, params, paths

from conftest import REPO


def test_bundled_data_match_their_hashes_and_generators():
    assert datasets.verify() == []


def test_every_notebook_is_registered_in_toc_and_has_valid_parameters():
    report = config.load()
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    chapters = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    staged = [c.split("/")[-1] for c in chapters if c.startswith("book/_generated/")]
    assert sorted(staged) == sorted(report.notebooks)
    assert sorted(p.stem for p in paths.notebooks_dir().glob("*.md")) == sorted(report.notebooks)
    for name, entry in report.notebooks.items():
        declared = params.read_parameters(entry.source)
        for set_name in entry.sets:
            if any(isinstance(v, str) and v.startswith("../shared/") for v in entry.set_params(set_name).values()):
                continue  # sets over external data are exercised by the chapter tests
            params.resolve(entry.source, name, [(set_name, entry.set_params(set_name), None)])
        assert declared


@pytest.mark.parametrize("nb", sorted(p.name for p in (REPO / "notebooks").glob("*.md")))
def test_notebooks_define_no_functions(nb):
    notebook = jupytext.read(REPO / "notebooks" / nb)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        assert not defs, f"{nb}: define functions in src/, not in the notebook ({[d.name for d in defs]})"


def test_bibliography_has_unique_keys_and_every_cited_key_exists():
    bib = (REPO / "book" / "references.bib").read_text()
    keys = re.findall(r"^@\w+\{([^,]+),", bib, flags=re.M)
    dupes = [k for k, n in Counter(keys).items() if n > 1]
    assert not dupes, f"duplicate bibliography keys: {dupes}"
    cited = set()
    for f in list((REPO / "notebooks").glob("*.md")) + list((REPO / "book").glob("*.md")):
        for group in re.findall(r"\{cite:[a-z]+\}`([^`]+)`", f.read_text()):
            cited.update(k.strip() for k in group.split(","))
    assert cited - set(keys) == set()


def test_no_machine_paths_in_tracked_sources():
    # Built from parts so that this file does not itself name such a path.
    w, t, r, h = "work", "tmp", "root", "home"
    pattern = re.compile(rf"(/{w}/|/{t}/[A-Za-z]|/{r}/|/{h}/[a-z])")
    offenders = []
    for f in REPO.rglob("*"):
        if any(part in (".venv", "_build", ".git", "__pycache__", "_generated", ".pytest_cache", ".hypothesis")
               for part in f.parts) or not f.is_file() or f.suffix not in (".py", ".md", ".yml", ".toml", ".cfg"):
            continue
        if pattern.search(f.read_text(errors="ignore")):
            offenders.append(f.relative_to(REPO).as_posix())
    assert offenders == []


def test_citation_cff_matches_the_package_version():
    import tomllib
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert cff["cff-version"] == "1.2.0"
    assert str(cff["version"]) == project["version"]
    assert cff["title"] and cff["authors"]
