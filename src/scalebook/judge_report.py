"""The judge-statistics chapter's assembly: load a source, and say in words what the numbers show.

`load_source` turns any supported input (the bundled episode table, the PandaLM test set, LLMBar,
or a user's tidy rater-pair table) into rater pairs; the `*_text` functions choose the chapter's
sentences from the computed tables, so every number and verdict in the prose comes from code.
Seed 004's published claims are in `PUBLISHED`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import raters, tables
from .errors import DataError

# Seed 004 (cross-family judge validation over 7 configurations, 2800 paired episodes).
PUBLISHED = {"min_kappa": 0.754, "min_agreement": 0.9325, "max_shift": 0.035, "n_configs": 7, "n_episodes": 2800}
POLICY_WORDS = {"drop": "dropped (agreement is then measured on the items where both verdicts parse)",
                "category": "kept as a category of their own ('invalid', which disagrees with every parsed label)",
                "error": "refused (the run fails if any occur)"}


@dataclass
class ChapterData:
    source: str
    label: str
    raw: pd.DataFrame
    pairs: pd.DataFrame
    episodes: pd.DataFrame | None
    rater_a: str
    rater_b: str
    group_noun: str
    invalid_policy: str

    @property
    def has_episodes(self) -> bool:
        return self.episodes is not None

    @property
    def skip_reason(self) -> str:
        return ("" if self.has_episodes else
                f"the {self.source} source holds rater pairs only: no configurations, conditions, tasks "
                f"or extractor, so there is no headline Delta to shift and no extractor to audit")


def load_source(source: str, data_path: str, *, design: str = "main", a_col: str = "judge_primary_pass",
                b_col: str = "judge_cross_pass", invalid_policy: str = "drop", llmbar_order: str = "original",
                group_by_subset: bool = False) -> ChapterData:
    """Read the chapter's input and return rater pairs before and after the invalid-verdict policy."""
    label = raters.describe_source(source, data_path)
    if invalid_policy not in raters.INVALID_POLICIES:
        raise DataError(f"invalid_policy must be one of {list(raters.INVALID_POLICIES)}, got {invalid_policy!r}")
    episodes = None
    if source == "episodes":
        episodes = tables.load_table(data_path, "episodes")
        for col in (a_col, b_col):
            if col not in episodes.columns:
                raise DataError(f"{data_path}: no column '{col}' to compare; the table has {list(episodes.columns)}")
        if "design" in episodes.columns and design:
            episodes = episodes[episodes["design"] == design].reset_index(drop=True)
            if episodes.empty:
                raise DataError(f"{data_path}: no rows with design '{design}'")
        raw = raters.episode_pairs(episodes, a_col, b_col)
        names, noun = (a_col, b_col), "configuration"
    elif source == "pandalm":
        raw = raters.load_pandalm(data_path, invalid="category")
        names, noun = ("the first-named rater", "the second-named rater"), "comparison"
    elif source == "llmbar":
        raw = raters.load_llmbar(data_path, order=llmbar_order, invalid="category")
        if group_by_subset:
            raw["comparison"] = raw["comparison"] + " / " + raw["subset"]
        names, noun = ("the first-named rater", "the second-named rater"), "comparison"
    else:
        raw = raters.load_pairs(data_path)
        names, noun = ("rater a", "rater b"), "comparison"
    pairs = raters.apply_invalid_policy(raw, invalid_policy, source=source)
    return ChapterData(source, label, raw, pairs, episodes, names[0], names[1], noun, invalid_policy)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _ci(lo: float, hi: float, fmt: str = "+.3f") -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "[undefined]"
    return f"[{lo:{fmt}}, {hi:{fmt}}]"


# ----------------------------------------------------------------------------------------------
# sentences
# ----------------------------------------------------------------------------------------------
def _span(lo: int, hi: int) -> str:
    return f"{lo:,}" if lo == hi else f"{lo:,} to {hi:,}"


def data_text(d: ChapterData) -> str:
    p = d.pairs
    n_groups = p["comparison"].nunique()
    per = p.groupby("comparison", sort=False)
    size, clus = per.size(), per["cluster"].nunique()
    return (f"The input is {d.label}: {len(p):,} rated items in {n_groups} {d.group_noun}s "
            f"({_span(size.min(), size.max())} items each, in {_span(clus.min(), clus.max())} clusters that the "
            f"bootstrap resamples).")


def invalid_text(d: ChapterData) -> str:
    inv = raters.invalid_summary(d.raw)
    inv = inv[inv["n_invalid"] > 0]
    policy = f"Policy for unparseable verdicts: {d.invalid_policy}, i.e. {POLICY_WORDS[d.invalid_policy]}."
    if inv.empty:
        return "No verdict in this input is unparseable. " + policy
    parts = [f"{r.rater}: {r.n_invalid} of {r.n} ({_pct(r.invalid_rate)})" for r in inv.itertuples()]
    return "Unparseable verdicts: " + "; ".join(parts) + ". " + policy


def extractor_text(bias: pd.DataFrame) -> str:
    pooled = bias.groupby("condition", sort=False).agg(n=("n", "sum"), judge_only=("judge_only", "sum"),
                                                       extractor_only=("extractor_only", "sum"))
    unp = bias.groupby("condition", sort=False)["unparseable_rate"]
    conds = list(pooled.index)
    parts = [f"{unp.min()[c]:.1%} to {unp.max()[c]:.1%} per configuration under {c}" for c in conds]
    disc = [f"{c}: {int(pooled.loc[c, 'judge_only'])} judged passes failed by the extractor against "
            f"{int(pooled.loc[c, 'extractor_only'])} the other way" for c in conds]
    sig = bias.assign(s=bias["mcnemar_p_exact_holm"] < 0.05).groupby("condition", sort=False)["s"].sum()
    n_cfg = bias["config"].nunique()
    wide = bias.pivot(index="config", columns="condition", values="diff")
    text = ("Episodes with no parseable ANSWER line: " + ", ".join(parts) + ". Among the episodes where the two scorers disagree (pooled over configurations) "
            + "; ".join(disc) + ". " +
            "McNemar's exact test, Holm-adjusted over all configuration-condition cells, finds a significant "
            "difference in " + " and ".join(f"{int(sig[c])} of {n_cfg} {c} cells" for c in conds) + ".")
    if len(conds) == 2:
        a, b = conds
        worse = int((wide[b] < wide[a]).sum())
        text += (f" The extractor's under-count (extractor minus judge pass rate) is larger under {b} than "
                 f"under {a} in {worse} of {n_cfg} configurations (mean {wide[b].mean():+.3f} vs "
                 f"{wide[a].mean():+.3f}): the bias is against the {b} condition.")
    return text


def scoring_text(variant_shifts: pd.DataFrame, extractor_share: float | None) -> str:
    """`variant_shifts`: long table of headline_shift frames with columns path, policy, config, shift..."""
    out = []
    bench = variant_shifts[variant_shifts["path"] == "bench"]
    if extractor_share is not None and not bench.empty:
        out.append(f"The bench scored {extractor_share:.1%} of tasks with the extractor.")
    for path, label in (("bench", "as the bench scored it (extractor on extractor-path tasks)"),
                        ("extractor", "with the extractor on every task")):
        sub = variant_shifts[variant_shifts["path"] == path]
        if sub.empty:
            continue
        phrases = []
        for pol, g in sub.groupby("policy", sort=False):
            i = g["shift"].abs().idxmax()
            r = g.loc[i]
            neg = int((g["shift"] < 0).sum())
            phrases.append(f"unparseable answers {'failing' if pol == 'fail' else 'dropped' if pol == 'drop' else 'deferred to the judge'}: "
                           f"largest shift {r['shift']:+.3f} at {r['config']} "
                           f"(95% CI {_ci(r['shift_boot_lower'], r['shift_boot_upper'])}), {neg} of {len(g)} "
                           f"shifts negative, smallest Holm-adjusted p {g['p_holm'].min():.3g}")
        out.append(f"Scored {label}, relative to LLM-only scoring: " + "; ".join(phrases) + ".")
    return " ".join(out)


def agreement_text(tab: pd.DataFrame, noun: str) -> str:
    i_k, i_a = tab["kappa"].idxmin(), tab["percent_agreement"].idxmin()
    lo = tab["kappa_boot_lower"].idxmin() if "kappa_boot_lower" in tab else i_k
    ratio = ((tab["kappa_boot_upper"] - tab["kappa_boot_lower"]) /
             (tab["kappa_asym_upper"] - tab["kappa_asym_lower"])) if "kappa_boot_upper" in tab else None
    s = (f"Across the {len(tab)} {noun}s, agreement ranges from {_pct(tab.loc[i_a, 'percent_agreement'])} "
         f"({tab.loc[i_a, 'comparison']}) to {_pct(tab['percent_agreement'].max())}, and Cohen's kappa from "
         f"{tab.loc[i_k, 'kappa']:.3f} ({tab.loc[i_k, 'comparison']}) to {tab['kappa'].max():.3f}. "
         f"The lowest cluster-bootstrap lower bound of kappa is {tab.loc[lo, 'kappa_boot_lower']:.3f} "
         f"({tab.loc[lo, 'comparison']}).")
    if ratio is not None and np.isfinite(ratio).any():
        s += (f" The cluster-bootstrap intervals are {np.nanmin(ratio):.2f} to {np.nanmax(ratio):.2f} times as wide "
              f"as the asymptotic ones, which assume independent items.")
    und = tab[tab["undefined"].astype(str) != ""]
    if len(und):
        s += " Undefined: " + "; ".join(f"{r.comparison}: {r.undefined}" for r in und.itertuples()) + "."
    return s


def prevalence_text(tab: pd.DataFrame) -> str:
    ok = tab[np.isfinite(tab["kappa"])]
    if ok.empty:
        return "Kappa is undefined in every comparison, so there is no prevalence effect to discuss."
    r = ok.loc[ok["kappa"].idxmin()]
    gap = r["ac1"] - r["kappa"]
    verdict = ("kappa understates agreement here because the categories are unbalanced (the high-prevalence "
               "regime)" if gap > 0.05 and r["chance_kappa"] > 0.5 else
               "the coefficients tell the same story here; prevalence does not distort kappa much")
    return (f"At {r['comparison']}, the lowest kappa ({r['kappa']:.3f}) comes with {_pct(r['percent_agreement'])} "
            f"agreement, because the raters' marginals make chance agreement {r['chance_kappa']:.3f}; "
            f"the prevalence-robust coefficients are AC1 = {r['ac1']:.3f} and PABAK = {r['pabak']:.3f}, and "
            f"the largest kappa these marginals allow (kappa_max) is {r['kappa_max']:.3f}: {verdict}.")


def published_agreement_text(tab: pd.DataFrame, shift: pd.DataFrame | None) -> str:
    mk, ma = tab["kappa"].min(), tab["percent_agreement"].min()
    ok_k = round(mk, 3) >= PUBLISHED["min_kappa"]
    ok_a = round(ma, 4) >= PUBLISHED["min_agreement"]
    s = (f"Seed 004 reports kappa >= {PUBLISHED['min_kappa']} and agreement >= {_pct(PUBLISHED['min_agreement'])} "
         f"over {PUBLISHED['n_configs']} configurations; this table gives minimum kappa {mk:.4f} "
         f"({'consistent' if ok_k else 'NOT consistent'} at the published precision) and minimum agreement "
         f"{_pct(ma)} ({'consistent' if ok_a else 'NOT consistent'})")
    if shift is not None:
        mx = shift["shift"].abs().max()
        ok_s = round(mx, 3) <= PUBLISHED["max_shift"]
        s += (f", and the largest headline shift is {mx:.3f} against the published <= {PUBLISHED['max_shift']} "
              f"({'consistent' if ok_s else 'NOT consistent'})")
    return s + "."


def mcnemar_text(tab: pd.DataFrame, rater_b: str) -> str:
    p = tab["mcnemar_p_exact_holm"] if tab["mcnemar_method"].eq("mcnemar").all() else holm_bowker(tab)
    i = p.idxmin()
    name = "McNemar exact" if tab["mcnemar_method"].eq("mcnemar").all() else "McNemar/Bowker"
    verdict = ("no evidence that one rater gives some label systematically more often than the other"
               if p.min() >= 0.05 else
               f"evidence of a systematic difference in the raters' label rates at {int((p < 0.05).sum())} "
               f"{'comparison' if int((p < 0.05).sum()) == 1 else 'comparisons'}")
    return (f"Marginal homogeneity ({name}, Holm-adjusted across {len(tab)}): smallest adjusted p = {p.min():.3g} "
            f"({tab.loc[i, 'comparison']}); {verdict}.")


def holm_bowker(tab: pd.DataFrame) -> pd.Series:
    """Holm over each row's McNemar exact p (2x2) or Bowker chi-square p (k x k)."""
    from .judges import holm

    p = np.where(tab["mcnemar_method"] == "mcnemar", tab["mcnemar_p_exact"], tab["mcnemar_p"])
    return pd.Series(holm(p), index=tab.index)


def shift_text(frame: pd.DataFrame, label_a: str, label_b: str) -> str:
    i = frame["shift"].abs().idxmax()
    r = frame.loc[i]
    widest = float(np.nanmax(np.abs(frame[["shift_boot_lower", "shift_boot_upper"]].to_numpy())))
    same = int((np.sign(frame["delta_a"]) == np.sign(frame["delta_b"])).sum())
    zero = int(((frame["delta_a"] == 0) | (frame["delta_b"] == 0)).sum())
    verdict = ("no shift is distinguishable from zero" if frame["p_holm"].min() >= 0.05 else
               f"{int((frame['p_holm'] < 0.05).sum())} shift(s) are distinguishable from zero")
    return (f"Replacing {label_a} with {label_b} moves the headline Delta by at most {abs(r['shift']):.3f} "
            f"({r['config'] if 'config' in r else i}: {r['shift']:+.3f}, 95% cluster-bootstrap CI "
            f"{_ci(r['shift_boot_lower'], r['shift_boot_upper'])}); after Holm adjustment across the "
            f"{len(frame)} configurations {verdict} (smallest adjusted p {frame['p_holm'].min():.3g}). "
            f"The intervals reach {widest:.3f} in absolute value, so this design cannot rule out judge-induced "
            f"shifts of that size. Delta has the same sign under both scorers in {same} of {len(frame)} "
            f"configurations" + (f" ({zero} with a Delta of exactly 0 under one scorer)" if zero else "") + ".")


def marginal_text(long: pd.DataFrame, rater_b: str, rater_a: str) -> str:
    if long.empty:
        return "No marginal shifts to report."
    i = long["estimate"].abs().idxmax()
    r = long.loc[i]
    excl = long[(long["lower"] > 0) | (long["upper"] < 0)]
    return (f"With rater pairs only, the analogue of a headline shift is the change in a label's share when "
            f"{rater_b} replaces {rater_a}. The largest is {r['estimate']:+.3f} for label '{r['category']}' in "
            f"{r['comparison']} (95% cluster-bootstrap CI {_ci(r['lower'], r['upper'])}); "
            f"{len(excl)} of {len(long)} label shifts have intervals excluding 0.")


def establishes_text(d: ChapterData, tab: pd.DataFrame, shift: pd.DataFrame | None) -> str:
    n = len(tab)
    above = int((tab["kappa_boot_lower"] > 0).sum()) if "kappa_boot_lower" in tab else 0
    s = (f"What it establishes, on this input: the two raters agree beyond chance in {above} of {n} "
         f"{d.group_noun}s (cluster-bootstrap interval of kappa above 0; lowest lower bound "
         f"{tab['kappa_boot_lower'].min():.3f}, lowest AC1 {tab['ac1'].min():.3f})")
    if shift is not None:
        widest = float(np.nanmax(np.abs(shift[["shift_boot_lower", "shift_boot_upper"]].to_numpy())))
        s += (f", and swapping the judge moves no headline Delta by more than {shift['shift'].abs().max():.3f}, "
              f"with 95% intervals inside +/-{widest:.3f}")
    return s + "."


# ----------------------------------------------------------------------------------------------
# display tables
# ----------------------------------------------------------------------------------------------
def _ci_col(lo: pd.Series, hi: pd.Series, fmt: str = ".3f") -> list[str]:
    return [_ci(a, b, fmt) for a, b in zip(lo, hi)]


def agreement_display(tab: pd.DataFrame, shift: pd.DataFrame | None = None, *, group_label: str = "comparison"
                      ) -> pd.DataFrame:
    """The per-group table the chapter shows: agreement, kappa with both intervals, the prevalence-robust
    coefficients, McNemar (Bowker for k > 2) and, with episodes, the headline shift."""
    two = tab["mcnemar_method"].eq("mcnemar")
    out = pd.DataFrame({
        group_label: tab["comparison"].astype(str),
        "n": tab["n"], "clusters": tab["n_clusters"],
        "agreement": tab["percent_agreement"],
        "kappa": tab["kappa"],
        "kappa 95% CI (asymptotic)": _ci_col(tab["kappa_asym_lower"], tab["kappa_asym_upper"]),
        "kappa 95% CI (cluster bootstrap)": _ci_col(tab["kappa_boot_lower"], tab["kappa_boot_upper"]),
        "kappa_max": tab["kappa_max"], "PABAK": tab["pabak"], "AC1": tab["ac1"],
        "Krippendorff alpha": tab["alpha"],
        "McNemar p (exact / Bowker)": np.where(two, tab["mcnemar_p_exact"], tab["mcnemar_p"]),
        "McNemar mid-p": tab["mcnemar_p_midp"],
        "McNemar p, Holm": holm_bowker(tab).to_numpy(),
    })
    if shift is not None:
        s = shift.set_index(shift.columns[0]).reindex(out[group_label])
        out["Delta a"] = s["delta_a"].to_numpy()
        out["Delta b"] = s["delta_b"].to_numpy()
        out["shift"] = s["shift"].to_numpy()
        out["shift 95% CI"] = _ci_col(s["shift_boot_lower"], s["shift_boot_upper"], "+.3f")
        out["shift p, Holm"] = s["p_holm"].to_numpy()
    return out


def extractor_display(bias: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "configuration": bias["config"], "condition": bias["condition"], "n": bias["n"],
        "both pass": bias["both_pass"], "judge pass, extractor fail": bias["judge_only"],
        "extractor pass, judge fail": bias["extractor_only"], "both fail": bias["both_fail"],
        "unparseable": bias["unparseable_rate"],
        "unparseable 95% CI": _ci_col(bias["unparseable_lower"], bias["unparseable_upper"]),
        "extractor - judge": bias["diff"],
        "95% CI": _ci_col(bias["diff_lower"], bias["diff_upper"], "+.3f"),
        "McNemar exact p": bias["mcnemar_p_exact"], "mid-p": bias["mcnemar_p_midp"],
        "clustered p": bias["mcnemar_p_clustered"], "exact p, Holm": bias["mcnemar_p_exact_holm"],
    })


def variants_display(vs: pd.DataFrame) -> pd.DataFrame:
    """Headline Delta per configuration under each scoring variant, beside LLM-only scoring."""
    return pd.DataFrame({
        "configuration": vs["config"], "path": vs["path"], "unparseable": vs["policy"],
        "task pairs": vs["n_tasks"], "Delta, LLM-only": vs["delta_a"], "Delta, this path": vs["delta_b"],
        "shift": vs["shift"], "shift 95% CI": _ci_col(vs["shift_boot_lower"], vs["shift_boot_upper"], "+.3f"),
        "p, Holm": vs["p_holm"],
    })
