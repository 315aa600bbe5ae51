"""Stage the chosen runs into `book/_generated/` and build the HTML book with jupyter-book.

Staging never executes code: for each notebook of `report.yml` it takes the run that
`latest.json` points at, rewrites the executed notebook for reading (parameter cells become a
"Run parameters and provenance" block; figure and table outputs become numbered MyST
`{figure}`/`{table}` directives with a citation block) and publishes the figure files at
stable URLs (`figures/<id>.<ext>`, the latest) and immutable ones (`runs/<run_id>/...`).
The build runs in a scratch folder and replaces `_build/html` only when it succeeded with
no warnings and no off-machine reference, so a failed build leaves the last good book.
"""
from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import nbformat

from . import audit, cite, config, execute, params, paths
from .errors import ScalebookError
from .hashing import files_sha256

STAMP = ".scalebook-book.json"
FIGURE_FORMATS = ("svg", "png", "vl.json", "html", "json")
BOOK_SOURCES = ("_config.yml", "_toc.yml")


def _escape_cell(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text.replace("|", "\\|").replace("\n", " ")


def _link(href: str, label: str) -> str:
    return f'<a href="{html.escape(href)}">{html.escape(label)}</a>'


def _provenance_cell(nb_name: str, param_source: str, prov: dict, root_rel: str) -> nbformat.NotebookNode:
    declared = params.parse_parameters(param_source, nb_name)
    rows = []
    for name, p in declared.items():
        value = prov["parameters"].get(name, p.default)
        changed = "" if value == p.default else f" (notebook default: `{_escape_cell(p.default)}`)"
        rows.append(f"| `{name}` | `{_escape_cell(value)}`{changed} | {_escape_cell(p.help)} |")
    data = "\n".join(f"- `{path}`: sha256 `{digest}`" for path, digest in prov["data_sha256"].items()) or "- none"
    run_base = f"{root_rel}runs/{prov['run_id']}/"
    links = " · ".join([
        _link(f"{run_base}{nb_name}.ipynb", "executed notebook"),
        _link(f"{root_rel}notebooks/{nb_name}.md", "notebook source"),
        _link(f"{run_base}results.json", "results.json"),
        _link(f"{run_base}provenance.json", "provenance.json"),
    ])
    dirty = {True: "yes", False: "no"}.get(prov.get("dirty"), "unknown")
    text = (
        ":::{admonition} Run parameters and provenance\n:class: dropdown\n\n"
        f"This chapter shows run `{prov['run_id']}` of notebook `{nb_name}`, parameter set "
        f"`{prov['set']}`, executed {prov['started_utc']} in {prov['duration_s']:.1f} s from commit "
        f"`{prov['commit'][:12]}` (uncommitted changes: {dirty}), scalebook {prov['report_version']}.\n\n"
        "| parameter | value | meaning |\n|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Input data:\n\n{data}\n\n"
        f"Rerun it: `scalebook run {nb_name} --set {prov['set']}` (add `-p name=value` to change a parameter).\n\n"
        f"<p>{links}</p>\n:::\n")
    return _markdown_cell(text, "scalebook-provenance", {"scalebook": "provenance"})


def _markdown_cell(text: str, cell_id: str, metadata: dict) -> nbformat.NotebookNode:
    # A fixed id (nbformat would draw a random one) keeps staging deterministic, so an unchanged
    # book is recognised as unchanged and not rebuilt.
    cell = nbformat.v4.new_markdown_cell(text, metadata=metadata)
    cell["id"] = cell_id
    return cell


def _cite_block(meta: dict, root_rel: str, report: config.ReportConfig) -> str:
    fig_id, run_id = meta["id"], meta["run_id"]
    files = " · ".join(
        [_link(f"{root_rel}figures/{fig_id}.{ext}", label) for ext, label in
         (("svg", "SVG"), ("png", "PNG"), ("vl.json", "Vega-Lite spec + data"), ("html", "interactive"),
          ("json", "provenance"))]
        + [_link(f"{root_rel}runs/{run_id}/{meta['notebook']}.ipynb", "producing notebook")])
    bib = html.escape(cite.citation(meta, "bibtex", report=report))
    return (f'<details class="scalebook-cite" id="cite-{fig_id}">\n'
            f"<summary>Cite this figure (<code>{fig_id}</code>, run <code>{run_id}</code>) · files</summary>\n"
            f"<p>Files: {files}.<br/>Stable URL: <code>figures/{fig_id}.svg</code>; this run: "
            f"<code>runs/{run_id}/figures/{fig_id}.svg</code>; report version {html.escape(str(meta.get('report_version')))}.</p>\n"
            f"<pre>{bib}</pre>\n</details>\n")


def _figure_cell(meta: dict, root_rel: str, report: config.ReportConfig) -> nbformat.NotebookNode:
    alt = meta.get("alt", "").replace("\n", " ")
    text = (f":::{{figure}} figures/{meta['id']}.svg\n:name: fig-{meta['id']}\n:alt: {alt}\n:width: 100%\n\n"
            f"{meta['caption']}\n:::\n\n" + _cite_block(meta, root_rel, report))
    return _markdown_cell(text, f"scalebook-fig-{meta['id']}", {"scalebook": {"figure": meta["id"]}})


def _table_cell(marker: dict, run_id: str, root_rel: str) -> nbformat.NotebookNode:
    tid = marker["table"]
    text = (f":::{{table}} {marker['caption']}\n:name: tbl-{tid}\n\n{marker['markdown']}\n:::\n\n"
            f"<p class=\"scalebook-table-files\">{_link(f'{root_rel}runs/{run_id}/tables/{tid}.csv', 'table as CSV')}</p>\n")
    return _markdown_cell(text, f"scalebook-tbl-{tid}", {"scalebook": {"table": tid}})


def transform(nb: nbformat.NotebookNode, run_dir: Path, name: str, report: config.ReportConfig,
              root_rel: str = "../../") -> nbformat.NotebookNode:
    """Rewrite an executed notebook for the book (see the module docstring)."""
    prov = json.loads((run_dir / execute.PROVENANCE).read_text())
    cells = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags:
            continue
        if "parameters" in tags:
            cells.append(_provenance_cell(name, cell.source, prov, root_rel))
            continue
        after = []
        if cell.cell_type == "code":
            kept = []
            for out in cell.get("outputs", []):
                marker = out.get("metadata", {}).get("scalebook") if out.get("output_type") == "display_data" else None
                if marker and "figure" in marker:
                    meta = json.loads((run_dir / "figures" / f"{marker['figure']}.json").read_text())
                    after.append(_figure_cell(meta, root_rel, report))
                elif marker and "table" in marker:
                    after.append(_table_cell(marker, prov["run_id"], root_rel))
                else:
                    kept.append(out)
            cell.outputs = kept
        cells.append(cell)
        cells.extend(after)
    nb.cells = cells
    return nb


def stage(report: config.ReportConfig | None = None,
          progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> list[dict]:
    """Copy the latest run of every notebook into `book/_generated/`; return the staged runs."""
    report = report or config.load()
    gen = paths.generated_dir()
    tmp = gen.with_name(f".generated-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "figures").mkdir(parents=True)
    extra = tmp / "extra"
    (extra / "figures").mkdir(parents=True)
    (extra / "notebooks").mkdir(parents=True)
    staged = []
    missing = [n for n in report.notebooks if execute.latest(n) is None]
    if missing:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ScalebookError(f"no successful run yet for notebook(s) {', '.join(missing)}; "
                             f"run `scalebook run --all` (or `scalebook run NAME`) first. `scalebook book` "
                             f"never executes notebooks itself.")
    try:
        for name, entry in report.notebooks.items():
            run_dir = execute.latest(name)
            prov = json.loads((run_dir / execute.PROVENANCE).read_text())
            nb = nbformat.read(run_dir / f"{name}.ipynb", as_version=4)
            nbformat.write(transform(nb, run_dir, name, report), tmp / f"{name}.ipynb")
            run_pub = extra / "runs" / prov["run_id"]
            shutil.copytree(run_dir, run_pub, ignore=shutil.ignore_patterns("context.json"))
            shutil.copy2(entry.source, extra / "notebooks" / f"{name}.md")
            for fig_id in entry.figures:
                for ext in FIGURE_FORMATS:
                    src = run_dir / "figures" / f"{fig_id}.{ext}"
                    shutil.copy2(src, extra / "figures" / src.name)
                shutil.copy2(run_dir / "figures" / f"{fig_id}.svg", tmp / "figures" / f"{fig_id}.svg")
            staged.append({"notebook": name, "title": entry.title, "set": prov["set"], "run_id": prov["run_id"],
                           "duration_s": prov["duration_s"], "started_utc": prov["started_utc"],
                           "commit": prov["commit"], "packages": prov["packages"],
                           "figures": list(entry.figures)})
            progress(f"  staged {name} (set {prov['set']}, run {prov['run_id']})")
        (tmp / "status_runs.md").write_text(_status_markdown(staged), encoding="utf-8")
        (tmp / "datasets.md").write_text(_datasets_markdown(), encoding="utf-8")
        (extra / "runs.json").write_text(json.dumps(staged, indent=1, sort_keys=True) + "\n")
        paths.replace_dir(tmp, gen)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return staged


def _status_markdown(staged: list[dict]) -> str:
    rows = "\n".join(f"| {s['title']} | `{s['notebook']}` | `{s['set']}` | `{s['run_id']}` | "
                     f"{s['duration_s']:.1f} s | {s['started_utc']} | `{s['commit'][:12]}` |" for s in staged)
    pkgs = staged[0]["packages"] if staged else {}
    env = "\n".join(f"| {k} | {v} |" for k, v in sorted(pkgs.items()))
    return ("## Runs behind this book\n\n"
            "| chapter | notebook | set | run_id | duration | executed (UTC) | commit |\n"
            "|---|---|---|---|---|---|---|\n" + rows + "\n\n"
            "## Environment\n\nPackage versions recorded by the runs (from the lock file `requirements.lock`):\n\n"
            "| package | version |\n|---|---|\n" + env + "\n")


def _datasets_markdown() -> str:
    from . import datasets, tables

    reg = tables.registry()
    out = ["## Bundled datasets\n", "| dataset | file | kind | schema | sha256 |", "|---|---|---|---|---|"]
    for name, e in datasets.entries().items():
        out.append(f"| {name} | `{e['file']}` | {e.get('kind', '')} | {e['schema']} | `{str(e.get('sha256', ''))[:16]}…` |")
    for name, e in datasets.entries().items():
        out += ["", f"### {name}", "", " ".join(str(e.get("description", "")).split())]
        if e.get("generator"):
            out += ["", f"Generator: `{e['generator']}` with seed {e.get('seed', 0)}."]
        if e.get("source"):
            out += ["", f"Source: {e['source']}."]
    out += ["", "## Schemas", ""]
    for name, spec in (reg.get("schemas") or {}).items():
        sch = tables.Schema.from_dict(name, spec)
        out += [f"### `{name}`", "", " ".join(sch.description.split()), "",
                "| column | type | expected | required | meaning |", "|---|---|---|---|---|"]
        out += [f"| `{c.name}` | {c.type} | {_escape_cell(c.expected())} | {'yes' if c.required else 'no'} | "
                f"{_escape_cell(c.description)} |" for c in sch.columns]
        if sch.unique:
            out += ["", f"Rows are unique by {', '.join(f'`{u}`' for u in sch.unique)}."]
        out.append("")
    return "\n".join(out) + "\n"


def _inputs_key() -> str:
    root = paths.root()
    files = [root / f for f in BOOK_SOURCES]
    files += sorted(f for f in (root / "book").rglob("*") if f.is_file() and not f.name.startswith("."))
    return files_sha256(root, files)


def build(*, force: bool = False, report: config.ReportConfig | None = None,
          progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> Path:
    """Stage the latest runs and build the HTML book into `_build/html` (atomically)."""
    report = report or config.load()
    staged = stage(report, progress)
    key = _inputs_key()
    html_dir = paths.html_dir()
    stamp = html_dir / STAMP
    if not force and stamp.exists() and json.loads(stamp.read_text()).get("key") == key:
        progress("= book: up to date (no staged run or page changed); nothing rebuilt")
        return html_dir
    out = paths.build_dir() / f".book-{os.getpid()}"
    shutil.rmtree(out, ignore_errors=True)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(paths.root()), "--path-output", str(out),
           "--builder", "html", "-W", "-n", "--keep-going"]
    progress("> book: building HTML with jupyter-book (-W -n: warnings are errors)")
    t0 = time.monotonic()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=paths.root())
        built = out / "_build" / "html"
        if res.returncode != 0 or not (built / "index.html").exists():
            log = (res.stdout + res.stderr).strip()
            warnings = [ln for ln in log.splitlines() if "WARNING" in ln or "ERROR" in ln]
            raise ScalebookError("the book build failed; the last good book in _build/html is unchanged.\n"
                                 + "\n".join(warnings[:30] or log.splitlines()[-30:]))
        remote = audit.remote_references(built)
        if remote:
            raise ScalebookError("the built book loads resources from off the machine; the last good book is "
                                 "unchanged:\n" + "\n".join(remote[:30]))
        local = audit.machine_paths(built, paths.root())
        if local:
            raise ScalebookError("the built book shows paths of this machine (rerun the notebooks named, whose "
                                 "runs predate the path scrubbing, or remove what prints them); the last good "
                                 "book is unchanged:\n" + "\n".join(local[:30]))
        (built / STAMP).write_text(json.dumps({"key": key, "runs": staged}, indent=1, sort_keys=True) + "\n")
        paths.replace_dir(built, html_dir)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    progress(f"+ book: built in {time.monotonic() - t0:.1f} s -> {paths.display_path(html_dir / 'index.html')}")
    return html_dir
