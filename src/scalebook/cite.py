"""Citations of figures: BibTeX, APA and CFF, from a figure's provenance record.

The same function feeds the "Cite this figure" block under every figure in the book and the
`scalebook cite` command, so the two never disagree.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import config, paths

FORMATS = ("bibtex", "apa", "cff")


def figure_urls(fig_id: str, run_id: str, base_url: str = "") -> dict[str, str]:
    """Stable ('latest') and immutable (per-run) URLs of a figure's files, relative to the site root."""
    base = base_url.rstrip("/") + "/" if base_url else ""
    return {"latest": f"{base}figures/{fig_id}.svg", "run": f"{base}runs/{run_id}/figures/{fig_id}.svg"}


def _year(meta: dict) -> str:
    return str(meta.get("started_utc") or meta.get("year") or "")[:4] or "n.d."


def citation(meta: dict, fmt: str = "bibtex", *, report: config.ReportConfig | None = None) -> str:
    """Format a figure citation. `meta` is the figure's `<id>.json` record (plus `started_utc`)."""
    report = report or config.load()
    if fmt not in FORMATS:
        raise ValueError(f"unknown citation format {fmt!r}; use one of {', '.join(FORMATS)}")
    fig_id, run_id = meta["id"], meta["run_id"]
    urls = figure_urls(fig_id, run_id, report.base_url)
    authors = list(report.authors) or ["The scalebook authors"]
    title = f"Figure {fig_id}: {meta['caption'].split('. ')[0].rstrip('.')}"
    version = meta.get("report_version", "")
    year = _year(meta)
    note = f"notebook {meta.get('notebook')}, parameter set {meta.get('set')}, run {run_id}, commit {meta.get('commit')}"
    if fmt == "bibtex":
        key = f"scalebook-{fig_id}"
        return (f"@misc{{{key},\n"
                f"  title        = {{{{{title}}}}},\n"
                f"  author       = {{{' and '.join('{' + a + '}' for a in authors)}}},\n"
                f"  year         = {{{year}}},\n"
                f"  howpublished = {{{report.short_title} {version}}},\n"
                f"  version      = {{{version}}},\n"
                f"  url          = {{{urls['run']}}},\n"
                f"  note         = {{{note}}}\n"
                f"}}")
    if fmt == "apa":
        return (f"{', '.join(authors)}. ({year}). {title} [Figure]. In {report.title} "
                f"(Version {version}; {note}). {urls['run']}")
    return ("cff-version: 1.2.0\n"
            f"message: If you use this figure, please cite it as below.\n"
            f"title: \"{title}\"\n"
            f"type: dataset\n"
            f"version: \"{version}\"\n"
            f"date-released: \"{str(meta.get('started_utc', ''))[:10]}\"\n"
            f"url: \"{urls['run']}\"\n"
            f"authors:\n" + "".join(f"  - name: \"{a}\"\n" for a in authors) +
            f"notes: \"{note}\"\n")


def figure_record(fig_id: str) -> dict:
    """The provenance record of the figure in the latest run of its notebook."""
    from . import execute

    report = config.load()
    owner = report.figure_owner(fig_id)
    run_dir = execute.latest(owner.name)
    if run_dir is None:
        from .errors import ScalebookError
        raise ScalebookError(f"figure '{fig_id}' comes from notebook '{owner.name}', which has no run yet; "
                             f"run `scalebook run {owner.name}` first")
    meta = json.loads((run_dir / "figures" / f"{fig_id}.json").read_text())
    prov = json.loads((run_dir / "provenance.json").read_text())
    meta["started_utc"] = prov["started_utc"]
    return meta
