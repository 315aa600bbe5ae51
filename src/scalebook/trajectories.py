"""Procedural-skill SFT across model sizes: pass rates, paired Deltas, the SFT lift and its resolution.

The design (seed 004): configurations (model size x stage {base, sft}, a frontier reference, and
optional recipe variants) each solve the same holdout tasks under two conditions, `baseline` and
`curated` (the task plus a procedural-skill block). Tasks are grouped in skills. The quantities:

* pass rate of a configuration under a condition;
* procedural Delta of a configuration = curated pass rate - baseline pass rate, estimated as the
  mean over tasks of the paired difference d_t = curated_t - baseline_t;
* SFT-attributable lift of a size = Delta(sft) - Delta(base), a difference in differences paired on
  task: the mean over tasks of d_t(sft) - d_t(base);
* the trajectory shape: the sign pattern of successive Deltas across increasing size (optionally
  ending at the frontier reference);
* the recipe band: the spread of the curated pass rate across recipe variants.

Intervals come from one paired cluster bootstrap: skills are resampled with replacement and every
task of a drawn skill keeps all its episodes (both conditions, every configuration), so pairing by
task, the shared tasks between base and SFT and the within-skill correlation are all preserved.
The resamples are a matrix of multinomial cluster counts W (B x G); every statistic is a ratio of
linear cluster sums, so the B replicates are two matrix products. Intervals are percentile
intervals. Each Delta and lift is cross-checked against a cluster-robust OLS (statsmodels,
intercept-only regression of the per-task contrast, `cov_type="cluster"` on skill, CR1).

Minimum detectable effect (two-sided level alpha, power 1 - beta), per contrast with task-level
values x_t (d_t or the lift differences), n tasks in G skills of mean size m:

    MDE = (z_{1-alpha/2} + z_{1-beta}) * sqrt(s^2 * DEFF / n),   DEFF = 1 + (m - 1) * ICC,

s^2 the sample variance of x_t and ICC the one-way ANOVA intraclass correlation of x_t within
skills (truncated at 0). The tasks that make an effect e detectable, holding m, s^2 and ICC fixed
(adding whole skills): n(e) = (z_{1-alpha/2} + z_{1-beta})^2 s^2 DEFF / e^2, rounded up to whole
skills.

Scorers (`scorer`): `judge_primary` (the matched-path LLM-only judge, the headline scorer),
`judge_cross` (the cross-family judge), `extractor` (the bench's mixed path: `extractor_pass` on
tasks whose `scoring_path` is `extractor`, `judge_primary_pass` on `llm`-path tasks).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import altair as alt
import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from . import figures, paths, tables
from .errors import DataError, FitError, ParameterError, format_rows

SCHEMA = "episodes"
CONDITIONS = ("baseline", "curated")
SCORERS = ("judge_primary", "judge_cross", "extractor")
SCORER_LABELS = {"judge_primary": "primary LLM judge (matched path)",
                 "judge_cross": "cross-family LLM judge",
                 "extractor": "bench mixed path (ANSWER-line extractor where the bench uses it)"}
SCORER_SHORT = {"judge_primary": "primary judge", "judge_cross": "cross judge",
                "extractor": "extractor (mixed path)"}
FRONTIER = "frontier"
STAGE_LABELS = {"base": "pre-SFT (base)", "sft": "post-SFT"}
SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([MBT])$", re.IGNORECASE)
_SCALE = {"M": 1e-3, "B": 1.0, "T": 1e3}

# Seed 004's published headline numbers: (claim group, size) -> value.
PUBLISHED = {
    ("pre-SFT Delta", "0.8B"): -0.075, ("pre-SFT Delta", "2B"): 0.060, ("pre-SFT Delta", "4B"): -0.010,
    ("pre-SFT Delta", FRONTIER): 0.030,
    ("post-SFT Delta", "0.8B"): -0.005, ("post-SFT Delta", "2B"): 0.100, ("post-SFT Delta", "4B"): 0.065,
    ("SFT lift", "0.8B"): 0.070, ("SFT lift", "2B"): 0.040, ("SFT lift", "4B"): 0.075,
    ("recipe band", "0.8B"): 0.020,
}
PUBLISHED_BAND = 0.020


def size_value(size: str) -> float:
    """Billions of parameters from a size label ('0.8B' -> 0.8, '350M' -> 0.35); frontier is +inf."""
    if size == FRONTIER:
        return math.inf
    m = SIZE_RE.match(str(size).strip())
    if not m:
        raise DataError(f"size label {size!r} is neither '<number>B'/'<number>M' nor 'frontier'")
    return float(m.group(1)) * _SCALE[m.group(2).upper()]


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------
def load_episodes(path: str, *, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Read an episode table, validate it (schema `episodes` plus the design checks) and return it."""
    df = tables.read_table(path)
    return validate_episodes(df, source=paths.display_path(paths.resolve(path)), columns=columns)


def _constant_within(df: pd.DataFrame, key: str, col: str, source: str, what: str) -> None:
    n = df.groupby(key, sort=False)[col].transform("nunique")
    tables.check_rows((n > 1).to_numpy(), source, f"each {key} must have a single {col} ({what})")


def validate_episodes(df: pd.DataFrame, *, source: str = "episode table",
                      columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Schema checks, then the design: pairs complete, tasks nested in skills, a common task set.

    Row numbers in messages are 1-based data rows of the table as given.
    """
    df = tables.validate(df, SCHEMA, source=source, columns=columns)
    if "design" not in df.columns:
        df["design"] = "main"
    # A (config, task) seen under only one condition breaks the pairing.
    n_cond = df.groupby(["config", "task_id"], sort=False)["condition"].transform("nunique")
    tables.check_rows((n_cond < 2).to_numpy(), source,
                      "every (config, task_id) needs both a 'baseline' and a 'curated' episode "
                      "(missing pair)")
    _constant_within(df, "task_id", "skill_id", source, "tasks are nested in skills")
    if "scoring_path" in df.columns:
        _constant_within(df, "task_id", "scoring_path", source, "the scoring path is a property of the task")
    for col in ("size", "stage", "design"):
        _constant_within(df, "config", col, source, "a configuration is one model")
    bad_size = ~df["size"].map(lambda s: s == FRONTIER or bool(SIZE_RE.match(str(s)))).to_numpy()
    tables.check_rows(bad_size, source, "column 'size' must hold '<number>B', '<number>M' or 'frontier'")
    mismatch = ((df["size"] == FRONTIER) != (df["stage"] == FRONTIER)).to_numpy()
    tables.check_rows(mismatch, source, "stage 'frontier' goes with size 'frontier' and only with it")
    if {"answer_line_present", "extractor_pass"} <= set(df.columns):
        tables.check_rows(((df["extractor_pass"] == 1) & (df["answer_line_present"] == 0)).to_numpy(), source,
                          "extractor_pass must be 0 where answer_line_present is 0 (nothing to parse)")
    main = df[df["design"] == "main"]
    if main.empty:
        raise DataError(f"{source}: no rows with design 'main'; the trajectory needs the main design")
    cells = main.groupby(["size", "stage"])["config"].nunique()
    dup = cells[cells > 1]
    if len(dup):
        (size, stage), _ = next(iter(dup.items()))
        configs = sorted(main.loc[(main["size"] == size) & (main["stage"] == stage), "config"].unique())
        raise DataError(f"{source}: size {size} stage {stage} has several main configurations {configs}; "
                        f"mark all but one with design 'recipe_variant'")
    all_tasks = set(df["task_id"])
    per_config = df.groupby("config", sort=False)["task_id"].agg(set)
    short = {c: sorted(all_tasks - t) for c, t in per_config.items() if t != all_tasks}
    if short:
        c, miss = next(iter(short.items()))
        rows = np.flatnonzero((df["config"] == c).to_numpy()) + 1
        raise DataError(f"{source}: every configuration must be run on the same tasks (the contrasts pair on "
                        f"task); config '{c}' ({format_rows(rows)}) lacks {len(miss)} task(s), e.g. "
                        f"{miss[:5]}" + (f"; {len(short) - 1} more config(s) are incomplete" if len(short) > 1 else ""))
    return df


def scored(df: pd.DataFrame, scorer: str = "judge_primary") -> pd.Series:
    """The pass indicator of every episode under `scorer` (see the module docstring)."""
    if scorer not in SCORERS:
        raise ParameterError(f"scorer must be one of {list(SCORERS)}, got {scorer!r}")
    if scorer == "judge_primary":
        return df["judge_primary_pass"].astype(int)
    if scorer == "judge_cross":
        if "judge_cross_pass" not in df.columns:
            raise DataError("scorer 'judge_cross' needs the column 'judge_cross_pass', which the table lacks")
        return df["judge_cross_pass"].astype(int)
    missing = [c for c in ("extractor_pass", "scoring_path") if c not in df.columns]
    if missing:
        raise DataError(f"scorer 'extractor' (the bench's mixed path) needs column(s) {missing}, which the "
                        f"table lacks")
    return pd.Series(np.where(df["scoring_path"] == "extractor", df["extractor_pass"], df["judge_primary_pass"]),
                     index=df.index, name="pass").astype(int)


# --------------------------------------------------------------------------------------------
# The cluster bootstrap and the cluster-robust regression
# --------------------------------------------------------------------------------------------
def cluster_weights(n_clusters: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """Multinomial counts (B x G): how often each cluster is drawn in each resample."""
    if n_bootstrap < 1:
        raise ParameterError(f"n_bootstrap must be a positive integer, got {n_bootstrap}")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_bootstrap)


def cluster_bootstrap_means(values: np.ndarray, clusters: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Bootstrap replicates (B x Q) of the column means of `values` (n x Q) under cluster resampling.

    `clusters` holds integer codes 0..G-1 per row; `weights` comes from `cluster_weights`.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    n_clusters = weights.shape[1]
    sums = np.zeros((n_clusters, values.shape[1]))
    np.add.at(sums, clusters, values)
    sizes = np.bincount(clusters, minlength=n_clusters).astype(float)
    return (weights @ sums) / (weights @ sizes)[:, None]


def percentile_interval(draws: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2], axis=0)
    return lo, hi


def cluster_ols(values, clusters, alpha: float = 0.05) -> dict:
    """Intercept-only OLS of per-task contrasts with skill-clustered (CR1) errors: estimate, SE, CI, p."""
    y = np.asarray(values, dtype=float)
    groups = pd.factorize(np.asarray(clusters))[0]
    if len(np.unique(groups)) < 2:
        raise FitError("a cluster-robust standard error needs at least two skills")
    fit = sm.OLS(y, np.ones((y.size, 1))).fit(cov_type="cluster", cov_kwds={"groups": groups})
    lo, hi = fit.conf_int(alpha=alpha)[0]
    return {"estimate": float(fit.params[0]), "se": float(fit.bse[0]), "lower": float(lo), "upper": float(hi),
            "p_value": float(fit.pvalues[0]), "df": int(len(np.unique(groups)) - 1)}


def icc_oneway(values, clusters) -> float:
    """One-way ANOVA intraclass correlation of `values` within clusters (unequal sizes allowed)."""
    s = pd.Series(np.asarray(values, dtype=float))
    g = pd.Series(pd.factorize(np.asarray(clusters))[0])
    n, k = s.size, g.nunique()
    if k < 2 or n <= k:
        return math.nan
    sizes = g.value_counts().to_numpy(dtype=float)
    means = s.groupby(g).transform("mean")
    msb = ((s.groupby(g).mean() - s.mean()) ** 2 * s.groupby(g).size()).sum() / (k - 1)
    msw = ((s - means) ** 2).sum() / (n - k)
    m0 = (n - (sizes ** 2).sum() / n) / (k - 1)
    denom = msb + (m0 - 1) * msw
    return float((msb - msw) / denom) if denom > 0 else math.nan


def mde(variance: float, n: int, n_clusters: int, icc: float, *, alpha: float = 0.05, power: float = 0.8) -> dict:
    """Minimum detectable effect of a clustered paired mean (formula in the module docstring)."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ParameterError(f"alpha and power must lie in (0, 1); got alpha={alpha}, power={power}")
    m = n / n_clusters
    icc_used = 0.0 if not np.isfinite(icc) else max(icc, 0.0)
    deff = 1 + (m - 1) * icc_used
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return {"sd": math.sqrt(variance), "icc": icc, "deff": deff,
            "mde": z * math.sqrt(variance * deff / n), "z_sum": z, "cluster_size": m}


def tasks_needed(effect: float, variance: float, deff: float, cluster_size: float, *, alpha: float = 0.05,
                 power: float = 0.8) -> float:
    """Tasks (whole skills of the current size) for `effect` to be detectable; inf for a zero effect."""
    if effect == 0 or not np.isfinite(effect):
        return math.inf
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    n = z ** 2 * variance * deff / effect ** 2
    return float(math.ceil(n / cluster_size - 1e-9) * cluster_size)


# --------------------------------------------------------------------------------------------
# The fit
# --------------------------------------------------------------------------------------------
def _config_order(info: pd.DataFrame) -> list[str]:
    key = info.assign(_v=info["size"].map(size_value),
                      _s=info["stage"].map({"base": 0, "sft": 1, FRONTIER: 2}),
                      _d=(info["design"] != "main").astype(int))
    return key.sort_values(["_d", "_v", "_s", "config"]).index.tolist()


@dataclass
class TrajectoryResult:
    """The fitted trajectory analysis. `params`/`bse`/`conf_int` cover every Delta and lift."""

    scorer: str
    alpha: float
    power: float
    n_bootstrap: int
    seed: int
    n_tasks: int
    n_skills: int
    configs: pd.DataFrame          # config -> design, size, stage (ordered)
    rates: pd.DataFrame            # pass rate per config x condition with interval
    deltas: pd.DataFrame           # Delta per config: bootstrap and cluster-robust OLS
    lifts: pd.DataFrame            # SFT lift per size
    shapes: pd.DataFrame           # sign pattern per trajectory and its bootstrap share
    recipes: pd.DataFrame          # curated pass rate per 0.8B-style recipe (variants + main)
    band: dict                     # recipe band: width, pairwise differences, interval
    power_table: pd.DataFrame      # MDE and tasks needed per contrast
    draws: pd.DataFrame = field(repr=False)  # bootstrap replicates of every rate, Delta and lift

    @property
    def params(self) -> pd.Series:
        return pd.concat([self.deltas.set_index("contrast")["estimate"],
                          self.lifts.set_index("contrast")["estimate"]])

    @property
    def bse(self) -> pd.Series:
        return pd.concat([self.deltas.set_index("contrast")["se"], self.lifts.set_index("contrast")["se"]])

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """Percentile cluster-bootstrap interval of every Delta and lift (at the fit's alpha by default)."""
        a = self.alpha if alpha is None else alpha
        names = self.params.index
        lo, hi = percentile_interval(self.draws[names].to_numpy(), a)
        return pd.DataFrame({"lower": lo, "upper": hi}, index=names)

    def predict(self, df: pd.DataFrame) -> pd.Series:
        """Fitted pass rate for each row's (config, condition)."""
        lookup = self.rates.set_index(["config", "condition"])["pass_rate"]
        keys = pd.MultiIndex.from_frame(df[["config", "condition"]])
        missing = ~keys.isin(lookup.index)
        if missing.any():
            raise DataError(f"predict: unknown (config, condition) at {format_rows(np.flatnonzero(missing) + 1)}")
        return pd.Series(lookup.reindex(keys).to_numpy(), index=df.index, name="pass_rate")

    def summary(self) -> pd.DataFrame:
        cols = ["contrast", "estimate", "se", "lower", "upper", "ols_se", "ols_lower", "ols_upper", "mde", "verdict"]
        pw = self.power_table.set_index("contrast")["mde"]
        out = pd.concat([self.deltas, self.lifts], ignore_index=True)
        out["mde"] = out["contrast"].map(pw)
        return out[cols]


def fit_trajectories(df: pd.DataFrame, *, scorer: str = "judge_primary", n_bootstrap: int = 2000, seed: int = 0,
                     alpha: float = 0.05, power: float = 0.8) -> TrajectoryResult:
    """Pass rates, Deltas, lifts, shapes, the recipe band and the power analysis of a validated table."""
    if not 0 < alpha < 1:
        raise ParameterError(f"alpha must lie in (0, 1), got {alpha}")
    passed = scored(df, scorer)
    info = df.groupby("config", sort=False)[["design", "size", "stage"]].first()
    order = _config_order(info)
    info = info.loc[order]
    wide = (df.assign(_pass=passed)
              .pivot_table(index=["task_id", "skill_id"], columns=["config", "condition"], values="_pass",
                           aggfunc="first")
              .sort_index())
    tasks = wide.index.get_level_values("task_id").to_numpy()
    skills = wide.index.get_level_values("skill_id").to_numpy()
    codes, skill_labels = pd.factorize(skills, sort=True)
    G, n = len(skill_labels), len(tasks)
    if G < 2:
        raise FitError("the cluster bootstrap needs at least two skills")

    # Task-level matrix: pass indicators per (config, condition), paired differences, lift differences.
    cols: dict[str, np.ndarray] = {}
    for c in order:
        for cond in CONDITIONS:
            cols[f"rate[{c}|{cond}]"] = wide[(c, cond)].to_numpy(dtype=float)
        cols[f"delta[{c}]"] = cols[f"rate[{c}|curated]"] - cols[f"rate[{c}|baseline]"]
    main = info[info["design"] == "main"]
    sizes_with_both = [s for s in main["size"].unique()
                       if {"base", "sft"} <= set(main.loc[main["size"] == s, "stage"])]
    sizes_with_both.sort(key=size_value)
    lift_config = {}
    for s in sizes_with_both:
        base = main.index[(main["size"] == s) & (main["stage"] == "base")][0]
        sft = main.index[(main["size"] == s) & (main["stage"] == "sft")][0]
        lift_config[s] = (base, sft)
        cols[f"lift[{s}]"] = cols[f"delta[{sft}]"] - cols[f"delta[{base}]"]
    X = pd.DataFrame(cols)
    W = cluster_weights(G, n_bootstrap, seed)
    draws = pd.DataFrame(cluster_bootstrap_means(X.to_numpy(), codes, W), columns=X.columns)
    est = X.mean()
    lo, hi = percentile_interval(draws.to_numpy(), alpha)
    lo, hi = pd.Series(lo, index=X.columns), pd.Series(hi, index=X.columns)
    se = draws.std(ddof=1)

    rates = pd.DataFrame([{"config": c, **info.loc[c].to_dict(), "condition": cond, "n_tasks": n,
                           "passes": int(X[f"rate[{c}|{cond}]"].sum()), "pass_rate": est[f"rate[{c}|{cond}]"],
                           "lower": lo[f"rate[{c}|{cond}]"], "upper": hi[f"rate[{c}|{cond}]"]}
                          for c in order for cond in CONDITIONS])

    def contrast_rows(names: list[str], extra: list[dict]) -> pd.DataFrame:
        rows = []
        for name, ex in zip(names, extra):
            ols = cluster_ols(X[name], skills, alpha=alpha)
            excl = lo[name] > 0 or hi[name] < 0
            rows.append({"contrast": name, **ex, "estimate": est[name], "se": se[name], "lower": lo[name],
                         "upper": hi[name], "ols_estimate": ols["estimate"], "ols_se": ols["se"],
                         "ols_lower": ols["lower"], "ols_upper": ols["upper"], "ols_p_value": ols["p_value"],
                         "share_positive": float((draws[name] > 0).mean()),
                         "verdict": _verdict(est[name], excl)})
        return pd.DataFrame(rows)

    deltas = contrast_rows([f"delta[{c}]" for c in order],
                           [{"config": c, **info.loc[c].to_dict(),
                             "baseline_rate": est[f"rate[{c}|baseline]"], "curated_rate": est[f"rate[{c}|curated]"]}
                            for c in order])
    lifts = contrast_rows([f"lift[{s}]" for s in sizes_with_both],
                          [{"size": s, "base_config": b, "sft_config": t} for s, (b, t) in lift_config.items()])
    if lifts.empty:
        lifts = pd.DataFrame(columns=["contrast", "size", "base_config", "sft_config", "estimate", "se", "lower",
                                      "upper", "ols_estimate", "ols_se", "ols_lower", "ols_upper", "ols_p_value",
                                      "share_positive", "verdict"])

    shapes = _shapes(main, draws, est)
    recipes, band = _recipes(info, draws, est, lo, hi, alpha)
    power_table = _power(X, skills, deltas, lifts, G, alpha, power)
    return TrajectoryResult(scorer=scorer, alpha=alpha, power=power, n_bootstrap=n_bootstrap, seed=seed,
                            n_tasks=n, n_skills=G, configs=info.reset_index(), rates=rates, deltas=deltas,
                            lifts=lifts, shapes=shapes, recipes=recipes, band=band, power_table=power_table,
                            draws=draws)


def _verdict(estimate: float, excludes_zero: bool) -> str:
    if excludes_zero:
        return "resolved (positive)" if estimate > 0 else "resolved (negative)"
    return "within noise"


def _signs(values: np.ndarray) -> np.ndarray:
    return np.sign(np.round(np.diff(values, axis=-1), 12)).astype(int)


def _pattern(signs) -> str:
    return "".join({1: "+", -1: "-", 0: "0"}[int(s)] for s in signs)


def _shapes(main: pd.DataFrame, draws: pd.DataFrame, est: pd.Series) -> pd.DataFrame:
    """Sign pattern of successive Deltas per trajectory, and the share of resamples that keep it."""
    frontier = main.index[main["stage"] == FRONTIER].tolist()
    rows = []
    for stage, with_frontier in (("base", True), ("base", False), ("sft", False)):
        sub = main[main["stage"] == stage]
        configs = sorted(sub.index, key=lambda c: size_value(sub.loc[c, "size"]))
        if with_frontier:
            if not frontier:
                continue
            configs = configs + frontier[:1]
        if len(configs) < 2:
            continue
        names = [f"delta[{c}]" for c in configs]
        observed = _signs(est[names].to_numpy())
        boot = _signs(draws[names].to_numpy())
        keep_each = (boot == observed).mean(axis=0)
        labels = [main.loc[c, "size"] for c in configs]
        rows.append({"trajectory": STAGE_LABELS[stage] + (" + frontier" if with_frontier else ""),
                     "stage": stage, "with_frontier": with_frontier, "points": " -> ".join(labels),
                     "pattern": _pattern(observed), "share_kept": float((boot == observed).all(axis=1).mean()),
                     "share_kept_each": ", ".join(f"{a}->{b}: {k:.2f}" for a, b, k in
                                                  zip(labels[:-1], labels[1:], keep_each))})
    return pd.DataFrame(rows, columns=["trajectory", "stage", "with_frontier", "points", "pattern", "share_kept",
                                       "share_kept_each"])


def _recipes(info, draws, est, lo, hi, alpha):
    """Curated pass rate of each recipe variant (and the main SFT of the same size) and the band."""
    variants = info.index[info["design"] == "recipe_variant"].tolist()
    empty = pd.DataFrame(columns=["config", "size", "role", "curated_rate", "lower", "upper"])
    if not variants:
        return empty, {"available": False}
    size = info.loc[variants[0], "size"]
    main_sft = info.index[(info["design"] == "main") & (info["size"] == size) & (info["stage"] == "sft")].tolist()
    rows = [{"config": c, "size": info.loc[c, "size"], "role": "recipe variant" if c in variants else "main SFT",
             "curated_rate": est[f"rate[{c}|curated]"], "lower": lo[f"rate[{c}|curated]"],
             "upper": hi[f"rate[{c}|curated]"]} for c in variants + main_sft]
    names = [f"rate[{c}|curated]" for c in variants]
    rates = est[names].to_numpy()
    width = float(rates.max() - rates.min())
    pairs = []
    for i in range(len(variants)):
        for j in range(i + 1, len(variants)):
            diff = draws[names[i]] - draws[names[j]]
            plo, phi = np.quantile(diff, [alpha / 2, 1 - alpha / 2])
            pairs.append({"a": variants[i], "b": variants[j], "difference": rates[i] - rates[j],
                          "lower": float(plo), "upper": float(phi)})
    pairs = pd.DataFrame(pairs)
    if len(pairs):
        # Equivalence within the band needs every pairwise interval inside +-band.
        worst = float(max(pairs["upper"].max(), -pairs["lower"].min()))
    else:
        worst = math.nan
    return pd.DataFrame(rows), {"available": True, "size": size, "variants": variants, "width": width,
                                "pairs": pairs, "max_abs_bound": worst,
                                "lower": float(-worst) if np.isfinite(worst) else math.nan,
                                "upper": worst}


def _power(X, skills, deltas, lifts, G, alpha, power):
    rows = []
    for name in list(deltas["contrast"]) + list(lifts["contrast"]):
        x = X[name].to_numpy()
        var = float(np.var(x, ddof=1))
        icc = icc_oneway(x, skills)
        m = mde(var, x.size, G, icc, alpha=alpha, power=power)
        e = float(x.mean())
        rows.append({"contrast": name, "estimate": e, "sd": m["sd"], "icc": icc, "deff": m["deff"],
                     "mde": m["mde"], "detectable": abs(e) >= m["mde"],
                     "tasks_needed": tasks_needed(e, var, m["deff"], m["cluster_size"], alpha=alpha, power=power)})
    return pd.DataFrame(rows)


def design_mde(result: TrajectoryResult, *, design: str = "main") -> dict:
    """The design's MDE for a Delta: pooled variance and design effect over the main configurations' Deltas."""
    pt = result.power_table[result.power_table["contrast"].str.startswith("delta[")]
    mains = set(result.configs.loc[result.configs["design"] == design, "config"])
    pt = pt[pt["contrast"].str[6:-1].isin(mains)]
    var = float((pt["sd"] ** 2).mean())
    deff = float(pt["deff"].mean())
    z = stats.norm.ppf(1 - result.alpha / 2) + stats.norm.ppf(result.power)
    return {"mde": z * math.sqrt(var * deff / result.n_tasks), "sd": math.sqrt(var), "deff": deff,
            "mde_no_clustering": z * math.sqrt(var / result.n_tasks), "n_tasks": result.n_tasks,
            "n_skills": result.n_skills}


# --------------------------------------------------------------------------------------------
# Claims: published beside reproduced, with a verdict
# --------------------------------------------------------------------------------------------
def claims(result: TrajectoryResult) -> pd.DataFrame:
    """One row per headline claim of seed 004: published value, reproduced value, interval, verdict."""
    pw = result.power_table.set_index("contrast")
    rows = []
    for _, r in result.deltas[result.deltas["design"] == "main"].iterrows():
        group = "pre-SFT Delta" if r["stage"] in ("base", FRONTIER) else "post-SFT Delta"
        rows.append(_claim_row(group, r["size"], r, pw.loc[r["contrast"]]))
    for _, r in result.lifts.iterrows():
        rows.append(_claim_row("SFT lift", r["size"], r, pw.loc[r["contrast"]]))
    if result.band.get("available"):
        b = result.band
        within = np.isfinite(b["max_abs_bound"]) and b["max_abs_bound"] <= PUBLISHED_BAND
        rows.append({"claim": "recipe band", "size": b["size"],
                     "published": PUBLISHED.get(("recipe band", b["size"]), math.nan),
                     "reproduced": b["width"], "lower": b["lower"], "upper": b["upper"], "mde": math.nan,
                     "tasks_needed": math.nan,
                     "verdict": ("resolved: every pairwise difference is inside the band" if within else
                                 "within noise: pairwise intervals are wider than the band"),
                     "matches_published": bool(round(b["width"], 3) <= PUBLISHED_BAND)})
    out = pd.DataFrame(rows)
    group_order = {"pre-SFT Delta": 0, "post-SFT Delta": 1, "SFT lift": 2, "recipe band": 3}
    out["_g"] = out["claim"].map(group_order)
    out["_s"] = out["size"].map(size_value)
    return out.sort_values(["_g", "_s"], kind="stable").drop(columns=["_g", "_s"]).reset_index(drop=True)


def _claim_row(group, size, r, p) -> dict:
    published = PUBLISHED.get((group, size), math.nan)
    return {"claim": group, "size": size, "published": published, "reproduced": r["estimate"],
            "lower": r["lower"], "upper": r["upper"], "mde": p["mde"], "tasks_needed": p["tasks_needed"],
            "verdict": r["verdict"],
            "matches_published": bool(np.isfinite(published) and round(r["estimate"], 3) == round(published, 3))}


# --------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------
_X_SCALE = alt.Scale(type="log", domain=[0.5, 6.5])
_NUDGE = {"base": 0.965, "sft": 1.035}


def trajectory_chart(result: TrajectoryResult, *, data_label: str = "") -> alt.LayerChart:
    """Procedural Delta against size, pre- and post-SFT, with intervals; the frontier as a horizontal rule."""
    d = result.deltas[(result.deltas["design"] == "main") & (result.deltas["stage"] != FRONTIER)].copy()
    d["params_b"] = d["size"].map(size_value) * d["stage"].map(_NUDGE)
    d["trajectory"] = d["stage"].map(STAGE_LABELS)
    d["published"] = [PUBLISHED.get(("pre-SFT Delta" if s == "base" else "post-SFT Delta", z), None)
                      for s, z in zip(d["stage"], d["size"])]
    keep = ["params_b", "size", "trajectory", "estimate", "lower", "upper", "published", "verdict"]
    d = d[keep].sort_values(["trajectory", "params_b"]).reset_index(drop=True)
    colour = alt.Color("trajectory:N", title=None, sort=list(STAGE_LABELS.values()),
                       scale=alt.Scale(domain=list(STAGE_LABELS.values()), range=figures.PALETTE[:2]))
    x = alt.X("params_b:Q", scale=_X_SCALE, title="Model size (billions of parameters, log scale)",
              axis=alt.Axis(values=[0.8, 2, 4], format="~g"))
    base = alt.Chart(d)
    tooltip = ["size:N", "trajectory:N", alt.Tooltip("estimate:Q", format="+.3f"),
               alt.Tooltip("lower:Q", format="+.3f"), alt.Tooltip("upper:Q", format="+.3f"), "verdict:N"]
    layers = [
        alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#999999", strokeDash=[2, 2]).encode(y="y:Q"),
        base.mark_errorbar(ticks=True).encode(x=x, y=alt.Y("lower:Q", title="Procedural Delta (curated - baseline)"),
                                              y2="upper:Q", color=colour),
        base.mark_line().encode(x=x, y="estimate:Q", color=colour, detail="trajectory:N"),
        base.mark_point(size=70, filled=True).encode(x=x, y="estimate:Q", color=colour, tooltip=tooltip),
    ]
    if d["published"].notna().any():
        layers.append(base.transform_filter("isValid(datum.published)").mark_point(
            shape="diamond", size=110, filled=False, color="#000000", strokeWidth=1).encode(
            x=x, y="published:Q", tooltip=["size:N", "trajectory:N", alt.Tooltip("published:Q", format="+.3f")]))
    fr = result.deltas[(result.deltas["design"] == "main") & (result.deltas["stage"] == FRONTIER)]
    if len(fr):
        f = fr.iloc[0]
        fdf = pd.DataFrame({"estimate": [f["estimate"]], "lower": [f["lower"]], "upper": [f["upper"]],
                            "label": [f"{f['config']} reference: {f['estimate']:+.3f} "
                                      f"[{f['lower']:+.3f}, {f['upper']:+.3f}]"]})
        layers += [
            alt.Chart(fdf).mark_rect(opacity=0.12, color=figures.PALETTE[2]).encode(y="lower:Q", y2="upper:Q"),
            alt.Chart(fdf).mark_rule(color=figures.PALETTE[2], strokeWidth=2).encode(y="estimate:Q"),
            alt.Chart(fdf).mark_text(align="left", dx=4, dy=-6, color=figures.PALETTE[2]).encode(
                x=alt.value(4), y="estimate:Q", text="label:N"),
        ]
    title = f"Procedural Delta by size, {SCORER_LABELS[result.scorer]}"
    return alt.layer(*layers).properties(width=figures.WIDTH, height=figures.HEIGHT,
                                         title=title + (f" ({data_label})" if data_label else ""))


def lift_chart(result: TrajectoryResult, *, data_label: str = "") -> alt.LayerChart:
    """SFT-attributable lift (difference in differences) per size with its paired cluster interval."""
    d = result.lifts.copy()
    d["params_b"] = d["size"].map(size_value)
    d["published"] = [PUBLISHED.get(("SFT lift", s), None) for s in d["size"]]
    d = d[["params_b", "size", "estimate", "lower", "upper", "published", "verdict"]].sort_values("params_b")
    x = alt.X("params_b:Q", scale=_X_SCALE, title="Model size (billions of parameters, log scale)",
              axis=alt.Axis(values=[0.8, 2, 4], format="~g"))
    base = alt.Chart(d)
    layers = [
        alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#999999", strokeDash=[2, 2]).encode(y="y:Q"),
        base.mark_errorbar(ticks=True, color=figures.PALETTE[0]).encode(
            x=x, y=alt.Y("lower:Q", title="SFT lift: Delta(sft) - Delta(base)"), y2="upper:Q"),
        base.mark_point(size=80, filled=True, color=figures.PALETTE[0]).encode(
            x=x, y="estimate:Q", tooltip=["size:N", alt.Tooltip("estimate:Q", format="+.3f"),
                                          alt.Tooltip("lower:Q", format="+.3f"),
                                          alt.Tooltip("upper:Q", format="+.3f"), "verdict:N"]),
    ]
    if d["published"].notna().any():
        layers.append(base.transform_filter("isValid(datum.published)").mark_point(
            shape="diamond", size=110, filled=False, color="#000000", strokeWidth=1).encode(
            x=x, y="published:Q"))
    title = f"SFT-attributable lift by size, {SCORER_LABELS[result.scorer]}"
    return alt.layer(*layers).properties(width=figures.WIDTH, height=figures.HEIGHT,
                                         title=title + (f" ({data_label})" if data_label else ""))


def recipe_band_chart(result: TrajectoryResult, *, data_label: str = "") -> alt.LayerChart:
    """Curated pass rate of each SFT recipe at one size, with intervals and the observed band shaded."""
    if not result.band.get("available"):
        # A chapter rerun on a table without variants still produces its registered figure.
        note = pd.DataFrame({"text": ["This table has no recipe variants (design 'recipe_variant'): no band."]})
        return alt.layer(alt.Chart(note).mark_text(fontSize=14).encode(text="text:N")).properties(
            width=figures.WIDTH, height=figures.HEIGHT // 3)
    d = result.recipes.copy()
    order = d["config"].tolist()
    v = d[d["role"] == "recipe variant"]["curated_rate"]
    band = pd.DataFrame({"lo": [v.min()], "hi": [v.max()], "pub_hi": [v.min() + PUBLISHED_BAND]})
    x = alt.X("config:N", sort=order, title=f"SFT recipe at {result.band['size']}", axis=alt.Axis(labelAngle=0))
    y = alt.Y("lower:Q", title="Curated pass rate", scale=alt.Scale(zero=False))
    colour = alt.Color("role:N", title=None, scale=alt.Scale(domain=["recipe variant", "main SFT"],
                                                               range=figures.PALETTE[:2]))
    layers = [
        alt.Chart(band).mark_rect(opacity=0.15, color=figures.PALETTE[2]).encode(y="lo:Q", y2="hi:Q"),
        alt.Chart(band).mark_rule(color=figures.PALETTE[2], strokeDash=[4, 3]).encode(y="pub_hi:Q"),
        alt.Chart(d).mark_errorbar(ticks=True).encode(x=x, y=y, y2="upper:Q", color=colour),
        alt.Chart(d).mark_point(size=80, filled=True).encode(
            x=x, y="curated_rate:Q", color=colour,
            tooltip=["config:N", alt.Tooltip("curated_rate:Q", format=".3f"), alt.Tooltip("lower:Q", format=".3f"),
                     alt.Tooltip("upper:Q", format=".3f")]),
    ]
    title = "Curated pass rate per recipe: observed band (shaded), 2-point band from its bottom (dashed)"
    return alt.layer(*layers).properties(width=figures.WIDTH, height=figures.HEIGHT,
                                         title=title + (f" ({data_label})" if data_label else ""))


def scorer_chart(comparison: pd.DataFrame, *, alpha: float = 0.05, data_label: str = "") -> alt.HConcatChart:
    """Each Delta and lift under every available scorer, with intervals (output of `compare_scorers`)."""
    d = comparison.copy()
    d["scorer_label"] = d["scorer"].map(SCORER_SHORT)
    order = [SCORER_SHORT[s] for s in SCORERS if s in set(d["scorer"])]
    colour = alt.Color("scorer_label:N", title="scorer", sort=order, legend=alt.Legend(orient="bottom"),
                       scale=alt.Scale(domain=order, range=figures.PALETTE[:len(order)]))
    y_scale = alt.Scale(domain=[float(min(d["lower"].min(), 0)) - 0.01, float(max(d["upper"].max(), 0)) + 0.01])
    panels = []
    for i, claim in enumerate(c for c in ("pre-SFT Delta", "post-SFT Delta", "SFT lift") if c in set(d["claim"])):
        sub = d[d["claim"] == claim][["size", "scorer_label", "estimate", "lower", "upper"]]
        sizes = sorted(sub["size"].unique(), key=size_value)
        x = alt.X("size:N", sort=sizes, title=None, axis=alt.Axis(labelAngle=0))
        off = alt.XOffset("scorer_label:N", sort=order)
        y_title = f"Estimate with {100 * (1 - alpha):g}% interval" if i == 0 else None
        panels.append(alt.layer(
            alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#999999", strokeDash=[2, 2]).encode(y="y:Q"),
            alt.Chart(sub).mark_errorbar(ticks=True).encode(
                x=x, xOffset=off, y=alt.Y("lower:Q", title=y_title, scale=y_scale), y2="upper:Q", color=colour),
            alt.Chart(sub).mark_point(filled=True, size=60).encode(
                x=x, xOffset=off, y="estimate:Q", color=colour,
                tooltip=["size:N", "scorer_label:N", alt.Tooltip("estimate:Q", format="+.3f"),
                         alt.Tooltip("lower:Q", format="+.3f"), alt.Tooltip("upper:Q", format="+.3f")]),
        ).properties(width=figures.WIDTH // 3, height=figures.HEIGHT - 60, title=claim))
    title = "Headline Deltas and lifts under each scorer" + (f" ({data_label})" if data_label else "")
    return alt.hconcat(*panels).properties(title=title)


# --------------------------------------------------------------------------------------------
# Scorer comparison, display tables and sentences for the chapter's prose
# --------------------------------------------------------------------------------------------
def available_scorers(df: pd.DataFrame) -> list[str]:
    """The scorers this table supports (columns present)."""
    out = ["judge_primary"]
    if "judge_cross_pass" in df.columns:
        out.append("judge_cross")
    if {"extractor_pass", "scoring_path"} <= set(df.columns):
        out.append("extractor")
    return out


def compare_scorers(df: pd.DataFrame, *, n_bootstrap: int = 2000, seed: int = 0, alpha: float = 0.05,
                    power: float = 0.8) -> pd.DataFrame:
    """Every Delta and lift claim under each available scorer (same resamples for all scorers)."""
    frames = []
    for s in available_scorers(df):
        c = claims(fit_trajectories(df, scorer=s, n_bootstrap=n_bootstrap, seed=seed, alpha=alpha, power=power))
        frames.append(c[c["claim"] != "recipe band"].assign(scorer=s))
    out = pd.concat(frames, ignore_index=True)
    return out.rename(columns={"reproduced": "estimate"})[
        ["claim", "size", "scorer", "published", "estimate", "lower", "upper", "verdict"]]


def _num(x: float, fmt: str = "+.3f") -> str:
    return "undefined" if x is None or not np.isfinite(x) else format(x, fmt)


def _ci(lo: float, hi: float, fmt: str = "+.3f") -> str:
    return f"[{_num(lo, fmt)}, {_num(hi, fmt)}]"


def _tasks(x: float) -> str:
    return "never (zero effect)" if not np.isfinite(x) else f"{int(x):,}"


def claims_display(cl: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """The claims table formatted for readers (signed numbers, intervals as text)."""
    level = f"{100 * (1 - alpha):g}% interval"
    rows = []
    for _, r in cl.iterrows():
        band = r["claim"] == "recipe band"
        rows.append({"claim": r["claim"], "size": r["size"],
                     "published": ("<= " + _num(r["published"], ".3f")) if band else _num(r["published"]),
                     "reproduced": _num(r["reproduced"], ".3f") if band else _num(r["reproduced"]),
                     level: ("largest pairwise difference within " + _ci(r["lower"], r["upper"])) if band
                     else _ci(r["lower"], r["upper"]),
                     "MDE (80% power)": "" if band else _num(r["mde"], ".3f"),
                     "tasks to detect": "" if band else _tasks(r["tasks_needed"]),
                     "matches published": "yes" if r["matches_published"] else "no",
                     "verdict": r["verdict"]})
    return pd.DataFrame(rows)


def rates_display(result: TrajectoryResult) -> pd.DataFrame:
    r = result.rates
    out = r.pivot_table(index="config", columns="condition", values="pass_rate", sort=False).reindex(
        result.configs["config"])
    lo = r.pivot_table(index="config", columns="condition", values="lower", sort=False)
    hi = r.pivot_table(index="config", columns="condition", values="upper", sort=False)
    d = result.deltas.set_index("config")
    return pd.DataFrame({
        "config": out.index,
        "design": result.configs.set_index("config").loc[out.index, "design"].to_numpy(),
        "baseline": [f"{out.loc[c, 'baseline']:.3f} {_ci(lo.loc[c, 'baseline'], hi.loc[c, 'baseline'], '.3f')}"
                     for c in out.index],
        "curated": [f"{out.loc[c, 'curated']:.3f} {_ci(lo.loc[c, 'curated'], hi.loc[c, 'curated'], '.3f')}"
                    for c in out.index],
        "Delta": [f"{_num(d.loc[c, 'estimate'])} {_ci(d.loc[c, 'lower'], d.loc[c, 'upper'])}" for c in out.index],
    })


def ols_check_display(result: TrajectoryResult) -> pd.DataFrame:
    """Bootstrap and cluster-robust OLS side by side for every Delta and lift."""
    d = pd.concat([result.deltas, result.lifts], ignore_index=True)
    G = result.n_skills
    return pd.DataFrame({
        "contrast": d["contrast"], "estimate": d["estimate"].map(_num), "OLS estimate": d["ols_estimate"].map(_num),
        "bootstrap SE": d["se"].map(lambda v: f"{v:.4f}"),
        "OLS CR1 SE": d["ols_se"].map(lambda v: f"{v:.4f}"),
        "SE ratio boot/CR0": (d["se"] / (d["ols_se"] * math.sqrt((G - 1) / G))).map(lambda v: f"{v:.3f}"),
        "bootstrap interval": [_ci(a, b) for a, b in zip(d["lower"], d["upper"])],
        "OLS interval": [_ci(a, b) for a, b in zip(d["ols_lower"], d["ols_upper"])],
    })


def scorer_display(comparison: pd.DataFrame) -> pd.DataFrame:
    c = comparison.assign(text=[f"{_num(e)} {_ci(a, b)}" for e, a, b in
                                zip(comparison["estimate"], comparison["lower"], comparison["upper"])])
    wide = c.pivot_table(index=["claim", "size"], columns="scorer", values="text", aggfunc="first", sort=False)
    pub = c.groupby(["claim", "size"], sort=False)["published"].first()
    wide.insert(0, "published", pub.map(_num))
    wide = wide[["published"] + [s for s in SCORERS if s in wide.columns]]
    return wide.rename(columns=SCORER_LABELS).reset_index()


def trajectory_text(result: TrajectoryResult, stage: str) -> str:
    d = result.deltas[(result.deltas["design"] == "main") & (result.deltas["stage"] == stage)]
    d = d.sort_values("size", key=lambda s: s.map(size_value))
    parts = [f"{_num(r['estimate'])} {_ci(r['lower'], r['upper'])} at {r['size']}" for _, r in d.iterrows()]
    return _join(parts) if parts else "not available (no configurations at this stage)"


def frontier_text(result: TrajectoryResult) -> str:
    d = result.deltas[(result.deltas["design"] == "main") & (result.deltas["stage"] == FRONTIER)]
    if d.empty:
        return "not in this table"
    r = d.iloc[0]
    return f"{_num(r['estimate'])} {_ci(r['lower'], r['upper'])} ({r['config']})"


def lift_text(result: TrajectoryResult) -> str:
    parts = [f"{_num(r['estimate'])} {_ci(r['lower'], r['upper'])} at {r['size']}" for _, r in result.lifts.iterrows()]
    return _join(parts) if parts else "not available (no size has both a base and an SFT configuration)"


def shape_text(result: TrajectoryResult) -> str:
    if result.shapes.empty:
        return "There are too few sizes for a trajectory shape."
    out = []
    for _, r in result.shapes.iterrows():
        out.append(f"{r['trajectory']} ({r['points']}): sign pattern {r['pattern']}, kept in its entirety by "
                   f"{100 * r['share_kept']:.0f}% of cluster-bootstrap resamples (step by step: {r['share_kept_each']})")
    return "Observed: " + "; ".join(out) + "."


def verdict_text(cl: pd.DataFrame) -> str:
    cl = cl[cl["claim"] != "recipe band"]
    res = [f"{r['claim']} at {r['size']}" for _, r in cl.iterrows() if r["verdict"].startswith("resolved")]
    noise = [f"{r['claim']} at {r['size']}" for _, r in cl.iterrows() if not r["verdict"].startswith("resolved")]
    return (f"Resolved (interval excludes zero): {_join(res) if res else 'none'}. "
            f"Within noise at this sample size: {_join(noise) if noise else 'none'}.")


def band_text(result: TrajectoryResult) -> str:
    b = result.band
    if not b.get("available"):
        return "This table has no recipe variants, so there is no recipe band to assess."
    level = f"{100 * (1 - result.alpha):g}%"
    within = np.isfinite(b["max_abs_bound"]) and b["max_abs_bound"] <= PUBLISHED_BAND
    return (f"The {len(b['variants'])} recipe variants at {b['size']} span {100 * b['width']:.1f} points of curated "
            f"pass rate. Their pairwise differences (paired on task, clustered by skill) have {level} intervals "
            f"reaching {100 * b['max_abs_bound']:.1f} points, so the data "
            + ("do establish that the recipes agree within a 2-point band." if within else
               "cannot distinguish a 2-point band from differences several times larger: the band is an "
               "observation, not a resolved equivalence."))


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def scorer_shift_text(comparison: pd.DataFrame, reference: str = "judge_primary") -> str:
    """Where each other scorer moves the headline numbers most, relative to `reference`."""
    ref = comparison[comparison["scorer"] == reference].set_index(["claim", "size"])["estimate"]
    out = []
    for s in [s for s in SCORERS if s != reference and s in set(comparison["scorer"])]:
        c = comparison[comparison["scorer"] == s].set_index(["claim", "size"])
        shift = (c["estimate"] - ref.reindex(c.index)).dropna()
        if shift.empty:
            continue
        (claim, size), v = shift.abs().idxmax(), shift.loc[shift.abs().idxmax()]
        flips = [f"{cl} at {sz}" for (cl, sz), e in c["estimate"].items()
                 if np.sign(e) != np.sign(ref.get((cl, sz), np.nan)) and np.isfinite(ref.get((cl, sz), np.nan))]
        out.append(f"under the {SCORER_LABELS[s]} the largest move is {_num(v)} ({claim} at {size})"
                   + (f" and the sign changes for {_join(flips)}" if flips else " and no sign changes"))
    return ("; ".join(out) + ".") if out else "No other scorer is available in this table."


def power_display(result: TrajectoryResult) -> pd.DataFrame:
    """The power table formatted for readers."""
    pt = result.power_table
    return pd.DataFrame({"contrast": pt["contrast"], "estimate": pt["estimate"].map(_num),
                         "sd": pt["sd"].map(lambda v: f"{v:.3f}"), "ICC": pt["icc"].map(lambda v: _num(v, ".3f")),
                         "DEFF": pt["deff"].map(lambda v: f"{v:.2f}"), "MDE": pt["mde"].map(lambda v: f"{v:.3f}"),
                         "tasks to detect": pt["tasks_needed"].map(_tasks)})


def se_agreement_text(result: TrajectoryResult) -> str:
    """Whether the bootstrap SEs match the CR0 SEs within Monte Carlo error (3 MC standard deviations)."""
    d = pd.concat([result.deltas, result.lifts], ignore_index=True)
    G = result.n_skills
    ratio = d["se"] / (d["ols_se"] * math.sqrt((G - 1) / G))
    mc = 1 / math.sqrt(2 * result.n_bootstrap)  # relative sd of a bootstrap SE from B resamples
    worst = float((ratio - 1).abs().max())
    verdict = "within" if worst <= 3 * mc else "outside"
    return (f"ranges from {ratio.min():.3f} to {ratio.max():.3f}; the largest departure from 1, {worst:.3f}, is "
            f"{verdict} three Monte Carlo standard errors of a bootstrap SE from {result.n_bootstrap:,} resamples "
            f"(3 x {mc:.3f})")


def published_match_text(cl: pd.DataFrame) -> str:
    """How many of the published headline numbers this table covers and reproduces."""
    covered = cl[cl["published"].notna()]
    if covered.empty:
        return "None of this table's claims has a published counterpart in seed 004 (other sizes or stages)."
    n_match = int(covered["matches_published"].sum())
    return (f"{n_match} of the {len(covered)} published headline numbers that this table covers "
            f"{'is' if n_match == 1 else 'are'} reproduced to the published three decimals.")
