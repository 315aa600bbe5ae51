"""One look for every chart, and the export of a chart to its citable files.

`export` writes `<id>.svg`, `<id>.png` (vl-convert: byte-deterministic), `<id>.vl.json`
(the Vega-Lite spec with its data inline), `<id>.html` (self-contained interactive version
with the Vega libraries inlined, so it works offline) and returns the files' sha256.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import altair as alt
import vl_convert as vlc

from .hashing import sha256_bytes

FIG_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"
# Colour-blind-safe categorical palette (Okabe-Ito), fixed so that figures never shift colours.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
WIDTH, HEIGHT = 520, 340
FORMATS = ("svg", "png", "vl.json", "html")


@alt.theme.register("scalebook", enable=True)
def _theme() -> alt.theme.ThemeConfig:
    return {
        "config": {
            "view": {"continuousWidth": WIDTH, "continuousHeight": HEIGHT, "stroke": "#cccccc"},
            "font": FONT,
            "axis": {"labelFontSize": 12, "titleFontSize": 13, "grid": True, "gridColor": "#eeeeee",
                     "titleFontWeight": "normal"},
            "legend": {"labelFontSize": 12, "titleFontSize": 12, "symbolStrokeWidth": 2},
            "header": {"labelFontSize": 12, "titleFontSize": 13},
            "title": {"fontSize": 14, "anchor": "start", "fontWeight": "normal"},
            "range": {"category": PALETTE},
            "line": {"strokeWidth": 2},
            "point": {"size": 45, "filled": True},
        }
    }


# Chart data stays inline in the spec (the offline, citable form); no row limit for it.
alt.data_transformers.disable_max_rows()


def check_id(fig_id: str) -> str:
    if not FIG_ID.match(fig_id):
        raise ValueError(f"figure id {fig_id!r} must be kebab-case (lowercase letters, digits, hyphens)")
    return fig_id


def render(chart: alt.TopLevelMixin) -> dict[str, bytes]:
    """Render a chart to every exported format, as bytes."""
    spec = chart.to_dict()
    spec_json = json.dumps(spec, sort_keys=True, indent=1, ensure_ascii=False)
    return {
        "svg": vlc.vegalite_to_svg(spec).encode("utf-8"),
        "png": vlc.vegalite_to_png(spec, scale=2),
        "vl.json": (spec_json + "\n").encode("utf-8"),
        "html": vlc.vegalite_to_html(spec, bundle=True).encode("utf-8"),
    }


def export(chart: alt.TopLevelMixin, fig_id: str, outdir: str | Path) -> dict[str, str]:
    """Write the chart's files as `<outdir>/<id>.<fmt>`; return {fmt: sha256}."""
    check_id(fig_id)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for fmt, data in render(chart).items():
        (outdir / f"{fig_id}.{fmt}").write_bytes(data)
        hashes[fmt] = sha256_bytes(data)
    return hashes
