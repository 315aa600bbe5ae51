"""Charts of the judge-statistics chapter: agreement with intervals, headline shifts, extractor bias.

Each function takes the tables that `scalebook.judges` and `scalebook.raters` return and gives an
Altair chart in the report's theme; the group order on the y axis is the order of the table.
"""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from . import figures

AGREEMENT_STATS = (  # (label, estimate column, lower column, upper column)
    ("agreement", "percent_agreement", "percent_agreement_boot_lower", "percent_agreement_boot_upper"),
    ("kappa, asymptotic CI", "kappa", "kappa_asym_lower", "kappa_asym_upper"),
    ("kappa, cluster-bootstrap CI", "kappa", "kappa_boot_lower", "kappa_boot_upper"),
    ("Gwet's AC1", "ac1", "ac1_boot_lower", "ac1_boot_upper"),
    ("PABAK", "pabak", "pabak_boot_lower", "pabak_boot_upper"),
)


def _title(text: str, data_label: str) -> str:
    return text + (f", {data_label}" if data_label else "")


def _row_height(n_groups: int, per_group: int) -> int:
    return int(max(figures.HEIGHT, n_groups * per_group * 9))


def _dodged(row: str, rows: list[str], sub: str, subs: list[str], *, title: str | None,
            palette: list[str] = figures.PALETTE, legend: alt.Legend | None = None):
    """The y, y-offset and colour encodings of an interval chart: one band per `row` value, in it one
    interval per `sub` value, coloured by `sub` (legend titled `title`) in the given orders."""
    y = alt.Y(f"{row}:N", sort=rows, title=None, axis=alt.Axis(labelLimit=420))
    off = alt.YOffset(f"{sub}:N", sort=subs)
    colour = alt.Color(f"{sub}:N", sort=subs, title=title, scale=alt.Scale(domain=subs, range=palette[:len(subs)]),
                       legend=legend or alt.Legend(orient="bottom"))
    return y, off, colour


def _zero_rule() -> alt.Chart:
    return alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="#999999", strokeDash=[2, 2]).encode(x="x:Q")


def agreement_chart(tab: pd.DataFrame, *, group_col: str = "comparison", data_label: str = "",
                    references: dict[str, float] | None = None) -> alt.LayerChart:
    """Agreement, kappa (asymptotic and cluster-bootstrap intervals), AC1 and PABAK per group.

    `references`: labelled vertical rules (e.g. a published minimum kappa).
    """
    order = [str(g) for g in tab[group_col]]
    labels = [s[0] for s in AGREEMENT_STATS]
    rows = []
    for _, r in tab.iterrows():
        for label, est, lo, hi in AGREEMENT_STATS:
            rows.append({"group": str(r[group_col]), "statistic": label, "estimate": r[est],
                         "lower": r.get(lo, np.nan), "upper": r.get(hi, np.nan)})
    d = pd.DataFrame(rows)
    y, y_off, colour = _dodged("group", order, "statistic", labels, title=None,
                               legend=alt.Legend(orient="bottom", columns=3, labelLimit=400))
    x = alt.X("lower:Q", title="Coefficient (95% interval)", scale=alt.Scale(zero=False))
    base = alt.Chart(d)
    tooltip = ["group:N", "statistic:N", alt.Tooltip("estimate:Q", format=".3f"),
               alt.Tooltip("lower:Q", format=".3f"), alt.Tooltip("upper:Q", format=".3f")]
    layers = [base.mark_rule(strokeWidth=2).encode(x=x, x2="upper:Q", y=y, yOffset=y_off, color=colour),
              base.mark_point(filled=True, size=40).encode(x="estimate:Q", y=y, yOffset=y_off, color=colour,
                                                          tooltip=tooltip)]
    if references:
        ref = pd.DataFrame({"value": list(references.values()), "label": list(references)})
        layers.append(alt.Chart(ref).mark_rule(color="#555555", strokeDash=[4, 3]).encode(
            x="value:Q", tooltip=["label:N", alt.Tooltip("value:Q", format=".4g")]))
        layers.append(alt.Chart(ref).mark_text(align="left", dx=3, dy=-4, angle=0, color="#555555", baseline="top"
                                               ).encode(x="value:Q", y=alt.value(2), text="label:N"))
    return alt.layer(*layers).properties(width=figures.WIDTH, height=_row_height(len(order), len(labels)),
                                         title=_title("Agreement between the two raters", data_label))


def shift_chart(frame: pd.DataFrame, *, group_col: str = "config", label_a: str = "scorer a",
                label_b: str = "scorer b", data_label: str = "", bound: float | None = None) -> alt.HConcatChart:
    """Left: the headline Delta under each scorer per group; right: the shift (b - a), both with
    cluster-bootstrap intervals. `bound`: a published largest |shift|, drawn as dashed rules."""
    order = [str(g) for g in frame[group_col]]
    rows = []
    for _, r in frame.iterrows():
        for lab, key in ((label_a, "delta_a"), (label_b, "delta_b")):
            rows.append({"group": str(r[group_col]), "scorer": lab, "estimate": r[key],
                         "lower": r[f"{key}_boot_lower"], "upper": r[f"{key}_boot_upper"]})
    d = pd.DataFrame(rows)
    y = alt.Y("group:N", sort=order, title=None, axis=alt.Axis(labelLimit=420))
    colour = alt.Color("scorer:N", sort=[label_a, label_b], title=None,
                       scale=alt.Scale(domain=[label_a, label_b], range=figures.PALETTE[:2]),
                       legend=alt.Legend(orient="bottom", labelLimit=400))
    zero = _zero_rule()
    tt = ["group:N", alt.Tooltip("estimate:Q", format="+.3f"), alt.Tooltip("lower:Q", format="+.3f"),
          alt.Tooltip("upper:Q", format="+.3f")]
    left = alt.layer(
        zero,
        alt.Chart(d).mark_rule(strokeWidth=2).encode(x=alt.X("lower:Q", title="Headline Delta (curated - baseline)"),
                                                     x2="upper:Q", y=y, yOffset=alt.YOffset("scorer:N"), color=colour),
        alt.Chart(d).mark_point(filled=True, size=50).encode(x="estimate:Q", y=y, yOffset=alt.YOffset("scorer:N"),
                                                             color=colour, tooltip=["scorer:N", *tt]),
    ).properties(width=figures.WIDTH // 2, height=_row_height(len(order), 2), title="Delta under each scorer")
    s = pd.DataFrame({"group": order, "estimate": frame["shift"].to_numpy(),
                      "lower": frame["shift_boot_lower"].to_numpy(), "upper": frame["shift_boot_upper"].to_numpy(),
                      "p_holm": frame["p_holm"].to_numpy()})
    right_layers = [zero,
                    alt.Chart(s).mark_rule(strokeWidth=2, color=figures.PALETTE[2]).encode(
                        x=alt.X("lower:Q", title=f"Shift: Delta({label_b}) - Delta({label_a})"), x2="upper:Q", y=y),
                    alt.Chart(s).mark_point(filled=True, size=60, color=figures.PALETTE[2]).encode(
                        x="estimate:Q", y=y, tooltip=[*tt, alt.Tooltip("p_holm:Q", format=".3f")])]
    if bound is not None:
        b = pd.DataFrame({"x": [-bound, bound]})
        right_layers.append(alt.Chart(b).mark_rule(color="#555555", strokeDash=[4, 3]).encode(x="x:Q"))
    right = alt.layer(*right_layers).properties(width=figures.WIDTH // 2, height=_row_height(len(order), 2),
                                                title="Shift under the scorer swap")
    return alt.hconcat(left, right).resolve_scale(color="independent", yOffset="independent").properties(
        title=_title("Headline Delta under two scorers", data_label))


def marginal_shift_chart(long: pd.DataFrame, *, group_col: str = "comparison", data_label: str = "",
                         rater_a: str = "first-named rater", rater_b: str = "second-named rater") -> alt.LayerChart:
    """Rater b's share of each category minus rater a's, per group, with cluster-bootstrap intervals
    (the rater-data analogue of a headline shift: how a rate moves when one rater replaces the other)."""
    order = list(dict.fromkeys(str(g) for g in long[group_col]))
    cats = list(dict.fromkeys(str(c) for c in long["category"]))
    d = long.assign(group=long[group_col].astype(str), category=long["category"].astype(str))
    y, off, colour = _dodged("group", order, "category", cats, title="label")
    layers = [
        _zero_rule(),
        alt.Chart(d).mark_rule(strokeWidth=2).encode(
            x=alt.X("lower:Q", title=f"Share of the label: {rater_b} minus {rater_a}"), x2="upper:Q", y=y,
            yOffset=off, color=colour),
        alt.Chart(d).mark_point(filled=True, size=45).encode(
            x="estimate:Q", y=y, yOffset=off, color=colour,
            tooltip=["group:N", "category:N", alt.Tooltip("estimate:Q", format="+.3f"),
                     alt.Tooltip("lower:Q", format="+.3f"), alt.Tooltip("upper:Q", format="+.3f")]),
    ]
    return alt.layer(*layers).properties(width=figures.WIDTH, height=_row_height(len(order), len(cats)),
                                         title=_title("Marginal shift between the raters", data_label))


def extractor_bias_chart(bias: pd.DataFrame, shifts: pd.DataFrame, *, data_label: str = "") -> alt.HConcatChart:
    """Left: extractor minus judge pass rate per configuration and condition; right: how the headline
    Delta moves when the bench's mixed path replaces LLM-only scoring, per policy for unparseable
    answers. Intervals: paired cluster bootstrap over skills."""
    order = list(dict.fromkeys(str(c) for c in bias["config"]))
    conds = list(dict.fromkeys(str(c) for c in bias["condition"]))
    b = bias.assign(config=bias["config"].astype(str), condition=bias["condition"].astype(str))
    y, off1, c1 = _dodged("config", order, "condition", conds, title="condition")
    zero = _zero_rule()
    left = alt.layer(
        zero,
        alt.Chart(b).mark_rule(strokeWidth=2).encode(
            x=alt.X("diff_lower:Q", title="Extractor - judge pass rate"), x2="diff_upper:Q", y=y,
            yOffset=off1, color=c1),
        alt.Chart(b).mark_point(filled=True, size=50).encode(
            x="diff:Q", y=y, yOffset=off1, color=c1,
            tooltip=["config:N", "condition:N", alt.Tooltip("diff:Q", format="+.3f"),
                     alt.Tooltip("unparseable_rate:Q", format=".3f", title="unparseable")]),
    ).properties(width=figures.WIDTH // 2, height=_row_height(len(order), 2),
                 title="Extractor vs judge, per condition")
    pols = list(dict.fromkeys(str(p) for p in shifts["policy"]))
    s = shifts.assign(config=shifts["config"].astype(str), policy=shifts["policy"].astype(str))
    _, off2, c2 = _dodged("config", order, "policy", pols, title="unparseable answers", palette=figures.PALETTE[2:])
    right = alt.layer(
        zero,
        alt.Chart(s).mark_rule(strokeWidth=2).encode(
            x=alt.X("shift_boot_lower:Q", title="Delta(bench path) - Delta(LLM-only)"), x2="shift_boot_upper:Q",
            y=y, yOffset=off2, color=c2),
        alt.Chart(s).mark_point(filled=True, size=50).encode(
            x="shift:Q", y=y, yOffset=off2, color=c2,
            tooltip=["config:N", "policy:N", alt.Tooltip("shift:Q", format="+.3f"),
                     alt.Tooltip("n_tasks:Q", title="task pairs")]),
    ).properties(width=figures.WIDTH // 2, height=_row_height(len(order), len(pols)),
                 title="Headline Delta: bench path vs LLM-only")
    return alt.hconcat(left, right).resolve_scale(color="independent", yOffset="independent").properties(
        title=_title("The ANSWER-line extractor against the judge", data_label))


def invalid_chart(long: pd.DataFrame, *, data_label: str = "") -> alt.LayerChart:
    """Share of unparseable verdicts per rater, by the label the other rater gave, with
    cluster-bootstrap intervals: whether parse failures depend on the answer (the rater-data
    analogue of the extractor's condition-dependent failures)."""
    d = long.assign(rater=long["rater"].astype(str), other_label=long["other_label"].astype(str))
    order = list(dict.fromkeys(d["rater"]))
    labs = list(dict.fromkeys(d["other_label"]))
    y, off, colour = _dodged("rater", order, "other_label", labs, title="other rater's label")
    layers = [
        alt.Chart(d).mark_rule(strokeWidth=2).encode(x=alt.X("lower:Q", title="Share of unparseable verdicts"),
                                                     x2="upper:Q", y=y, yOffset=off, color=colour),
        alt.Chart(d).mark_point(filled=True, size=50).encode(
            x="estimate:Q", y=y, yOffset=off, color=colour,
            tooltip=["rater:N", "other_label:N", alt.Tooltip("estimate:Q", format=".3f"), "n:Q"]),
    ]
    return alt.layer(*layers).properties(width=figures.WIDTH, height=_row_height(len(order), len(labs)),
                                         title=_title("Unparseable verdicts by the other rater's label", data_label))


def message_chart(message: str, *, data_label: str = "") -> alt.Chart:
    """A figure slot that states why there is nothing to plot (so a registered figure id still resolves)."""
    return alt.Chart(pd.DataFrame({"text": [message]})).mark_text(size=14, color="#555555").encode(
        text="text:N").properties(width=figures.WIDTH, height=80, title=_title("Nothing to plot", data_label))
