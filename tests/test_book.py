"""The whole book, built from the smoke runs in a copy of the repository."""
from __future__ import annotations

import json
import re
import tarfile

import pytest
import yaml

from scalebook import audit, config

from conftest import scalebook_cli

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("book")]


def env(root):
    return {"SCALEBOOK_ROOT": str(root)}


def test_book_has_index_every_chapter_and_every_figure(smoke_book):
    html = smoke_book / "_build" / "html"
    assert (html / "index.html").exists()
    toc = yaml.safe_load((smoke_book / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for f in files:
        assert (html / f"{f}.html").exists(), f
    report = config.load(smoke_book / "report.yml")
    pages = {p: p.read_text(encoding="utf-8") for p in (html / "book" / "_generated").glob("*.html")}
    assert {p.stem for p in pages} == set(report.notebooks)
    for fig in report.figure_ids():
        for ext in ("svg", "png", "vl.json", "html", "json"):
            assert (html / "figures" / f"{fig}.{ext}").stat().st_size > 0, (fig, ext)
        holders = [p for p, text in pages.items() if f'id="fig-{fig}"' in text]
        assert len(holders) == 1, f"figure fig-{fig} should appear once as a labelled figure"
        text = pages[holders[0]]
        # Numbered: Sphinx writes "Fig. N" in the caption of a numbered figure.
        block = text[text.index(f'id="fig-{fig}"'):][:4000]
        assert re.search(r"Fig\. \d+", block), f"figure {fig} is not numbered"
        assert f'id="cite-{fig}"' in text, f"figure {fig} has no citation block"


def test_chapters_show_provenance_and_hide_parameter_cells(smoke_book):
    html = smoke_book / "_build" / "html" / "book" / "_generated"
    for page in html.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "Run parameters and provenance" in text, page.name
        assert "injected-parameters" not in text


def test_no_page_loads_anything_off_the_machine(smoke_book):
    assert audit.remote_references(smoke_book / "_build" / "html") == []


def test_no_page_or_published_notebook_names_the_build_machine(smoke_book):
    html = smoke_book / "_build" / "html"
    assert audit.machine_paths(html, smoke_book) == []
    notebooks = sorted((html / "runs").glob("*/*.ipynb"))
    assert notebooks
    for nb in notebooks:
        meta = json.loads(nb.read_text(encoding="utf-8"))["metadata"]["papermill"]
        assert meta["input_path"] == f"notebooks/{nb.stem}.md"
        assert meta["output_path"] == f"_build/runs/{nb.stem}/{nb.parent.name}/{nb.name}"


def test_audit_detects_a_machine_path(tmp_path):
    root = tmp_path / "checkout" / "scalebook"
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "page.html").write_text(f"<p>ok</p>\n<pre>{root}/src/scalebook/x.py:3: Warning</pre>")
    (tmp_path / "site" / "clean.html").write_text("<p>src/scalebook/x.py</p>")
    assert audit.machine_paths(tmp_path / "site", root) == [
        f"page.html, line 2: contains this machine's path {root.resolve()}"]


def test_audit_detects_a_cdn_script(tmp_path):
    (tmp_path / "a.html").write_text('<html><script src="https://cdn.jsdelivr.net/npm/vega@5"></script>'
                                     '<link rel="stylesheet" href="//fonts.example/x.css"></html>')
    (tmp_path / "b.css").write_text("@import url(https://fonts.example/y.css);")
    found = audit.remote_references(tmp_path)
    assert len(found) == 3


def test_no_change_rebuild_executes_nothing(smoke_book):
    res = scalebook_cli("run", "--all", "--set", "smoke", cwd=smoke_book, env=env(smoke_book))
    assert res.returncode == 0
    assert "0 executed" in res.stderr and "failed" in res.stderr
    res = scalebook_cli("book", cwd=smoke_book, env=env(smoke_book))
    assert res.returncode == 0 and "up to date" in res.stderr


def test_cite_every_figure_in_every_format(smoke_book):
    report = config.load(smoke_book / "report.yml")
    for fig in report.figure_ids():
        res = scalebook_cli("cite", fig, cwd=smoke_book, env=env(smoke_book))
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith(f"@misc{{scalebook-{fig},") and "run " in res.stdout
        for fmt in ("apa", "cff"):
            res = scalebook_cli("cite", fig, "--format", fmt, cwd=smoke_book, env=env(smoke_book))
            assert res.returncode == 0 and fig in res.stdout
    res = scalebook_cli("cite", "no-such-figure", cwd=smoke_book, env=env(smoke_book))
    assert res.returncode == 2 and "no figure with id 'no-such-figure'" in res.stderr


def test_figures_lists_every_id(smoke_book):
    res = scalebook_cli("figures", "--json", cwd=smoke_book, env=env(smoke_book))
    rows = json.loads(res.stdout)
    report = config.load(smoke_book / "report.yml")
    assert [r["id"] for r in rows] == report.figure_ids()
    assert all(r["set"] == "smoke" and r["run_id"] for r in rows)


def test_archive_has_manifest_and_checksum(smoke_book, tmp_path):
    out = tmp_path / "book.tar.gz"
    res = scalebook_cli("archive", "--output", str(out), cwd=smoke_book, env=env(smoke_book))
    assert res.returncode == 0, res.stderr
    digest = (tmp_path / "book.tar.gz.sha256").read_text().split()[0]
    import hashlib
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
    with tarfile.open(out) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile(next(n for n in names if n.endswith("MANIFEST.json"))))
    assert manifest["file_count"] == len(names) - 1
    assert any(n.endswith("/index.html") for n in names)
    again = tmp_path / "again.tar.gz"
    scalebook_cli("archive", "--output", str(again), cwd=smoke_book, env=env(smoke_book))
    assert again.read_bytes() == out.read_bytes()


def test_check_passes_on_a_clean_build_and_names_a_hand_edited_figure(smoke_book):
    res = scalebook_cli("check", "--jobs", "2", cwd=smoke_book, env=env(smoke_book), timeout=1800)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert "reproducible" in res.stdout
    report = config.load(smoke_book / "report.yml")
    fig = report.figure_ids()[0]
    svg = smoke_book / "_build" / "html" / "figures" / f"{fig}.svg"
    original = svg.read_bytes()
    try:
        svg.write_bytes(original.replace(b"</svg>", b"<!-- edited --></svg>"))
        res = scalebook_cli("check", "--jobs", "2", cwd=smoke_book, env=env(smoke_book), timeout=1800)
        assert res.returncode == 1
        assert f"_build/html/figures/{fig}.svg: differs" in res.stdout
    finally:
        svg.write_bytes(original)
