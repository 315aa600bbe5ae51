"""The notebook side of a run: record results, publish figures and tables.

A chapter notebook does::

    from scalebook.report import Report
    report = Report.current()
    report.result("alpha_moba", fit.params["alpha"], fmt=".3f")   # quoted in prose via glue
    report.figure("loss-compute-projection", chart, caption="...")
    report.table("power-law-params", df, caption="...")
    report.save()

When papermill runs the notebook, the executor has written `context.json` into the working
folder (run id, notebook, parameters, data hashes, registered figure ids); `Report.current()`
reads it. Run interactively, the report writes into `./_scratch/<notebook>`.

Figures and tables are displayed as outputs carrying `scalebook` metadata; `scalebook book`
turns them into numbered MyST `{figure}` / `{table}` directives with a citation block, so
the notebook source holds no figure paths or hand-typed captions.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import figures as _figures
from .errors import ScalebookError

CONTEXT_FILE = "context.json"
RESULTS_FILE = "results.json"


class Text(str):
    """A pre-formatted string for `{glue:text}`.

    myst-nb passes glued plain text through `ast.literal_eval` before showing it, so a bare
    "2,000" would render as "(2, 0)"; a quoted repr evaluates back to exactly this string.
    """

    def __repr__(self) -> str:
        return repr(str(self))

    def _repr_pretty_(self, p, cycle):
        p.text(repr(str(self)))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None  # undefined statistics are null, never a number
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        return [_jsonable(v) for v in list(value)]
    return value


def format_value(value: Any, fmt: str | None) -> str:
    """Format a number for prose; NaN/None become 'undefined' rather than a plausible number."""
    if value is None or (isinstance(value, (float, np.floating)) and not math.isfinite(float(value))):
        return "undefined"
    return str(value) if fmt is None else format(value, fmt)


class Report:
    def __init__(self, context: dict, workdir: Path):
        self.context = context
        self.workdir = workdir
        self.results: dict[str, Any] = {}
        self.figures: dict[str, dict] = {}
        self.tables: dict[str, dict] = {}

    @classmethod
    def current(cls, notebook: str | None = None) -> "Report":
        ctx_path = Path(os.environ.get("SCALEBOOK_CONTEXT", CONTEXT_FILE))
        if ctx_path.exists():
            context = json.loads(ctx_path.read_text(encoding="utf-8"))
            return cls(context, ctx_path.parent.resolve())
        name = notebook or "interactive"
        workdir = Path("_scratch") / name
        workdir.mkdir(parents=True, exist_ok=True)
        return cls({"notebook": name, "run_id": "interactive", "set": None, "parameters": {},
                    "data": {}, "figures": None}, workdir.resolve())

    # -- numbers ---------------------------------------------------------------------------
    def result(self, name: str, value: Any, *, fmt: str | None = None) -> None:
        """Record a number the prose quotes; glue its formatted text under the same name.

        Returns None so that a cell ending in `report.result(...)` displays nothing.
        """
        if not name.replace("_", "").isalnum():
            raise ValueError(f"result name {name!r} must be an identifier-like string")
        self.results[name] = _jsonable(value)
        self._glue(name, Text(format_value(value, fmt)))

    def text(self, name: str, value: str) -> None:
        """Record a sentence or phrase chosen by the computation (a verdict, a data label)."""
        self.results[name] = str(value)
        self._glue(name, Text(value))

    @staticmethod
    def _glue(name: str, value: Any) -> None:
        try:
            from myst_nb import glue
        except ImportError:  # pragma: no cover - myst-nb ships with jupyter-book
            return
        glue(name, value, display=False)

    # -- figures and tables ----------------------------------------------------------------
    def figure(self, fig_id: str, chart, *, caption: str, alt: str | None = None) -> None:
        """Export a chart to its files and display it for the book."""
        _figures.check_id(fig_id)
        registered = self.context.get("figures")
        if registered is not None and fig_id not in registered:
            raise ScalebookError(f"figure id '{fig_id}' is not registered for notebook "
                                 f"'{self.context['notebook']}' in report.yml (registered: {registered})")
        hashes = _figures.export(chart, fig_id, self.workdir / "figures")
        meta = {"id": fig_id, "caption": caption, "alt": alt or caption.split(". ")[0],
                "notebook": self.context.get("notebook"), "run_id": self.context.get("run_id"),
                "set": self.context.get("set"), "parameters": self.context.get("parameters"),
                "data": self.context.get("data"), "commit": self.context.get("commit"),
                "report_version": self.context.get("report_version"),
                "packages": self.context.get("packages"), "files": hashes}
        (self.workdir / "figures" / f"{fig_id}.json").write_text(
            json.dumps(_jsonable(meta), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        self.figures[fig_id] = meta
        svg = (self.workdir / "figures" / f"{fig_id}.svg").read_text(encoding="utf-8")
        _display({"image/svg+xml": svg, "text/plain": f"Figure {fig_id}: {caption}"},
                 {"scalebook": {"figure": fig_id, "caption": caption, "alt": meta["alt"]}})

    def table(self, tbl_id: str, df: pd.DataFrame, *, caption: str, floatfmt: str = ".3g") -> None:
        """Save a table as CSV and display it; the book shows it as a numbered table."""
        _figures.check_id(tbl_id)
        outdir = self.workdir / "tables"
        outdir.mkdir(parents=True, exist_ok=True)
        from .tables import write_csv
        write_csv(df, outdir / f"{tbl_id}.csv")
        shown = _without_negative_zeros(df, floatfmt)
        markdown = shown.to_markdown(index=False, floatfmt=floatfmt)
        self.tables[tbl_id] = {"id": tbl_id, "caption": caption}
        _display({"text/html": shown.to_html(index=False, float_format=lambda v: format(v, floatfmt)),
                  "text/markdown": markdown, "text/plain": df.to_string(index=False)},
                 {"scalebook": {"table": tbl_id, "caption": caption, "markdown": markdown}})

    # -- the end of a run --------------------------------------------------------------------
    def save(self) -> None:
        registered = self.context.get("figures")
        if registered is not None:
            missing = [f for f in registered if f not in self.figures]
            if missing:
                raise ScalebookError(f"notebook '{self.context['notebook']}' registers figure(s) "
                                     f"{missing} in report.yml but did not produce them")
        path = self.workdir / RESULTS_FILE
        path.write_text(json.dumps(self.results, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _without_negative_zeros(df: pd.DataFrame, floatfmt: str) -> pd.DataFrame:
    """The table as displayed: a value that rounds to zero at `floatfmt` shows as 0, not -0 (the CSV keeps it)."""
    spec = re.fullmatch(r"\.(\d+)f", floatfmt)
    out = df.copy()
    for col in out.columns[[pd.api.types.is_float_dtype(t) for t in out.dtypes]]:
        values = out[col].round(int(spec.group(1))) if spec else out[col]
        out[col] = values + 0.0  # -0.0 + 0.0 is +0.0
    return out


def _display(bundle: dict, metadata: dict) -> None:
    try:
        from IPython.display import display
    except ImportError:  # pragma: no cover
        return
    display(bundle, raw=True, metadata=metadata)
