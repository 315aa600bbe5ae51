"""How far two raters agree, and what swapping one scorer for another does to a headline number.

Seed 004 rests on its scorers: a deterministic ANSWER-line extractor and an LLM judge validated
against a judge of another family. This module measures that instead of asserting it:

- `agreement(a, b, clusters=...)`: percent agreement, Cohen's kappa (with the Fleiss-Cohen-Everitt
  large-sample SE, as `statsmodels.stats.inter_rater.cohens_kappa` reports it), kappa_max, PABAK
  (Brennan-Prediger / Bennett's S), Scott's pi, Gwet's AC1 (with Gwet's 2008 SE) and Krippendorff's
  alpha (nominal), the k x k table and marginals, McNemar (chi-square, exact and mid-p; Bowker's
  symmetry test for k > 2) and a clustered McNemar, with asymptotic, linearised cluster-robust and
  cluster-bootstrap intervals. The bootstrap resamples clusters (items are not independent when
  many share a task, skill or instruction) and is vectorised: per-cluster k x k count tables are
  built once, each resample is a vector of cluster multiplicities, and every statistic is computed
  for all resamples at once from the resampled tables.
- `agreement_table`: the same, one row per group (configuration, judge, subset), Holm-adjusted.
- `headline_shift`: a configuration's headline Delta (treatment pass rate - baseline pass rate,
  paired by task) under two scorers and the shift between them, with a paired, cluster-bootstrap
  interval (clusters = skills) and a cluster-robust t-test whose p-values are Holm-adjusted
  across configurations.
- `extractor_bias` and `scoring_variants`: the extractor-vs-judge 2x2 per condition, the
  unparseable rate, the direction of the bias (McNemar), and the score columns of each scoring
  path and policy for unparseable answers, whose headline Deltas `headline_shift` compares.

Undefined statistics are NaN with the reason in `result.undefined` and an
`UndefinedStatisticWarning`, never a plausible number; `FitError` when nothing chance-corrected
can be computed; `DataError` for malformed input.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .errors import DataError, FitError, format_rows
from .tables import check_rows

STATS = ("percent_agreement", "kappa", "kappa_max", "pabak", "scott_pi", "ac1", "alpha")
LABELS = {"percent_agreement": "agreement", "kappa": "Cohen's kappa", "kappa_max": "kappa_max",
          "pabak": "PABAK", "scott_pi": "Scott's pi", "ac1": "Gwet's AC1", "alpha": "Krippendorff's alpha"}
# Statistics with a closed-form large-sample variance (the others get bootstrap intervals only).
ASYMPTOTIC = ("percent_agreement", "kappa", "pabak", "scott_pi", "ac1")
# Cluster-bootstrap blocks hold about this many (resample x cluster) multiplicities at a time.
_BLOCK_CELLS = 2_000_000


class UndefinedStatisticWarning(RuntimeWarning):
    """A statistic is undefined for these data and is reported as NaN (reason attached)."""


# ----------------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------------
def _as_1d(x, name: str) -> np.ndarray:
    if isinstance(x, (pd.Series, pd.Index)):
        arr = x.to_numpy()
    else:
        arr = np.asarray(x, dtype=object if not isinstance(x, np.ndarray) else None)
    if arr.ndim != 1:
        raise DataError(f"{name}: expected a one-dimensional vector of ratings, got shape {arr.shape}")
    return arr


def _missing(arr: np.ndarray) -> np.ndarray:
    return np.asarray(pd.isna(pd.Series(arr, copy=False)))


def _sorted_labels(values: Iterable) -> list:
    uniq = list(dict.fromkeys(values))
    try:
        return sorted(uniq)
    except TypeError:  # mixed types: a stable, readable order
        return sorted(uniq, key=lambda v: (type(v).__name__, str(v)))


def _encode(a, b, categories) -> tuple[np.ndarray, np.ndarray, tuple]:
    a = _as_1d(a, "rater a")
    b = _as_1d(b, "rater b")
    if len(a) != len(b):
        raise DataError(f"the two raters must rate the same items: rater a has {len(a)} ratings, "
                        f"rater b has {len(b)}")
    if len(a) == 0:
        raise DataError("no ratings: both rater vectors are empty")
    for name, arr in (("rater a", a), ("rater b", b)):
        miss = _missing(arr)
        if miss.any():
            raise DataError(f"{name}: missing ratings at {format_rows(np.flatnonzero(miss) + 1)}; decide a "
                            f"policy for missing or unparseable verdicts (drop the items or code them as "
                            f"a category) before computing agreement")
    if categories is None:
        cats = _sorted_labels(pd.unique(np.concatenate([pd.unique(a), pd.unique(b)])).tolist())
    else:
        cats = list(categories)
        if len(set(cats)) != len(cats):
            raise DataError(f"categories must be distinct; got {cats}")
    known = pd.Index(cats)
    for name, arr in (("rater a", a), ("rater b", b)):
        seen = pd.unique(arr)
        outside = [v for v, ok in zip(seen, known.get_indexer(seen) >= 0) if not ok]
        if outside:
            bad = np.asarray(pd.Series(arr, copy=False).isin(outside))
            raise DataError(f"{name}: labels {_sorted_labels(outside)[:5]} at {format_rows(np.flatnonzero(bad) + 1)} "
                            f"are not among the declared categories {cats}")
    ca = pd.Categorical(a, categories=cats).codes.astype(np.int64)
    cb = pd.Categorical(b, categories=cats).codes.astype(np.int64)
    return ca, cb, tuple(cats)


def _encode_clusters(clusters, n: int) -> tuple[np.ndarray, int]:
    if clusters is None:
        return np.arange(n, dtype=np.int64), n
    c = _as_1d(clusters, "clusters")
    if len(c) != n:
        raise DataError(f"clusters: got {len(c)} cluster ids for {n} rated items; give one per item")
    miss = _missing(c)
    if miss.any():
        raise DataError(f"clusters: missing cluster ids at {format_rows(np.flatnonzero(miss) + 1)}")
    codes, uniq = pd.factorize(c, sort=True)
    return codes.astype(np.int64), len(uniq)


# ----------------------------------------------------------------------------------------------
# statistics of k x k tables, vectorised over leading axes
# ----------------------------------------------------------------------------------------------
def _table_stats(tables: np.ndarray) -> dict[str, np.ndarray]:
    """Every agreement statistic of count tables `(..., k, k)` (rows: rater a, columns: rater b).

    Undefined values are NaN: kappa and kappa_max when either rater is constant (kappa is then 0
    by construction, kappa_max = 0, and it says nothing about agreement); Scott's pi and alpha when
    every rating is the same category.
    """
    t = np.asarray(tables, dtype=float)
    k = t.shape[-1]
    n = t.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = t / n[..., None, None]
        row, col = p.sum(axis=-1), p.sum(axis=-2)
        po = np.trace(p, axis1=-2, axis2=-1)
        pe = (row * col).sum(axis=-1)
        constant = (row.max(axis=-1) >= 1 - 1e-12) | (col.max(axis=-1) >= 1 - 1e-12)
        kappa = np.where(constant, np.nan, (po - pe) / (1 - pe))
        pmax = np.minimum(row, col).sum(axis=-1)
        kappa_max = np.where(constant, np.nan, (pmax - pe) / (1 - pe))
        pi = (row + col) / 2
        pe_s = (pi ** 2).sum(axis=-1)
        single = pi.max(axis=-1) >= 1 - 1e-12
        scott = np.where(single, np.nan, (po - pe_s) / (1 - pe_s))
        # Krippendorff's nominal alpha for two coders and no missing values, from the coincidence
        # matrix: 1 - alpha = (2N - 1) / (2N) * (1 - po) / (1 - pe_scott).
        alpha = np.where(single, np.nan, 1 - (2 * n - 1) * (1 - po) / (2 * n * (1 - pe_s)))
        pe_g = (pi * (1 - pi)).sum(axis=-1) / (k - 1)
        ac1 = (po - pe_g) / (1 - pe_g)
        pabak = (k * po - 1) / (k - 1)
    return {"percent_agreement": po, "kappa": kappa, "kappa_max": kappa_max, "pabak": pabak,
            "scott_pi": scott, "ac1": ac1, "alpha": alpha, "pe_kappa": pe, "pe_scott": pe_s,
            "pe_ac1": pe_g, "row": row, "col": col}


def _influence_scores(p: np.ndarray, est: dict) -> dict[str, tuple[np.ndarray, float]]:
    """Per-cell influence scores `a_kl` and the denominator `1 - pe` of each statistic's linearisation.

    The large-sample variance of each statistic is Var(a) / (n (1 - pe)^2) where `a` takes the value
    `a_kl` on an item rated (k, l). For kappa this is the Fleiss-Cohen-Everitt (1969) variance, for
    AC1 Gwet's (2008), for Scott's pi and PABAK the two-rater forms of Gwet (2014). Summing the
    centred scores within clusters gives the cluster-robust version.
    """
    k = p.shape[0]
    row, col = est["row"], est["col"]
    eye = np.eye(k)
    pi = (row + col) / 2
    out = {"percent_agreement": (eye, 1.0), "pabak": (eye, (k - 1) / k)}
    kap, ac1, sp = float(est["kappa"]), float(est["ac1"]), float(est["scott_pi"])
    if np.isfinite(kap):
        out["kappa"] = (eye - (1 - kap) * (col[:, None] + row[None, :]), 1 - float(est["pe_kappa"]))
    if np.isfinite(sp):
        out["scott_pi"] = (eye - (1 - sp) * (pi[:, None] + pi[None, :]), 1 - float(est["pe_scott"]))
    out["ac1"] = (eye - 2 * (1 - ac1) * (1 - (pi[:, None] + pi[None, :]) / 2) / (k - 1),
                  1 - float(est["pe_ac1"]))
    return out


# ----------------------------------------------------------------------------------------------
# cluster bootstrap machinery
# ----------------------------------------------------------------------------------------------
def cluster_multiplicities(n_clusters: int, n_boot: int, seed: int | np.random.Generator
                           ) -> Iterator[np.ndarray]:
    """Blocks of cluster-bootstrap multiplicities: rows are resamples, columns clusters.

    Row r says how often each cluster is drawn when `n_clusters` clusters are drawn with
    replacement (a Multinomial(G, 1/G) vector). Blocks bound the memory for large G.
    """
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // max(n_clusters, 1))
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        idx = rng.integers(0, n_clusters, size=(b, n_clusters))
        idx += (np.arange(b, dtype=np.int64) * n_clusters)[:, None]
        yield np.bincount(idx.ravel(), minlength=b * n_clusters).reshape(b, n_clusters).astype(float)


def bootstrap_sums(per_cluster: np.ndarray, n_boot: int, seed) -> np.ndarray:
    """Cluster-bootstrap replicates of column sums of `per_cluster` (G x m) -> (n_boot x m)."""
    per_cluster = np.asarray(per_cluster, dtype=float)
    out = [w @ per_cluster for w in cluster_multiplicities(per_cluster.shape[0], n_boot, seed)]
    return np.vstack(out) if out else np.empty((0, per_cluster.shape[1]))


def _percentile(reps: np.ndarray, alpha: float) -> tuple[float, float, int]:
    """Percentile interval over the defined replicates; also how many were undefined."""
    ok = np.isfinite(reps)
    n_undef = int((~ok).sum())
    if ok.sum() == 0 or n_undef > 0.5 * len(reps):
        return np.nan, np.nan, n_undef
    lo, hi = np.quantile(reps[ok], [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi), n_undef


# ----------------------------------------------------------------------------------------------
# McNemar / Bowker
# ----------------------------------------------------------------------------------------------
@dataclass
class McNemarResult:
    """Test of marginal homogeneity (2x2: McNemar; k x k: Bowker's symmetry test).

    `statistic` is the uncorrected chi-square; `pvalue_exact` the two-sided binomial test on the
    discordant pairs (as statsmodels' `mcnemar(exact=True)`), `pvalue_midp` its mid-p version
    (Fagerland, Lydersen & Laake 2013); `pvalue_clustered` Durkalski et al.'s (2003) clustered
    McNemar, which reduces to the uncorrected McNemar when every cluster holds one item.
    `b` counts items with a = first category and b = second, `c` the reverse.
    """

    method: str
    statistic: float
    df: float
    pvalue: float
    pvalue_exact: float = np.nan
    pvalue_midp: float = np.nan
    statistic_clustered: float = np.nan
    pvalue_clustered: float = np.nan
    b: int | None = None
    c: int | None = None
    note: str = ""


def mcnemar_test(table: np.ndarray, cluster_tables: np.ndarray | None = None) -> McNemarResult:
    t = np.asarray(table)
    k = t.shape[0]
    if k == 2:
        b, c = int(t[0, 1]), int(t[1, 0])
        m = b + c
        if m == 0:
            return McNemarResult("mcnemar", np.nan, 1, np.nan, 1.0, 1.0, b=b, c=c,
                                 note="no discordant items: the chi-square is 0/0; the exact test "
                                      "gives p = 1")
        chi2 = (b - c) ** 2 / m
        x = min(b, c)
        exact = min(1.0, 2 * stats.binom.cdf(x, m, 0.5))
        midp = min(1.0, exact - stats.binom.pmf(x, m, 0.5))
        res = McNemarResult("mcnemar", chi2, 1, float(stats.chi2.sf(chi2, 1)), float(exact), float(midp),
                            b=b, c=c)
        if cluster_tables is not None:
            diff = cluster_tables[:, 0, 1] - cluster_tables[:, 1, 0]
            den = float((diff ** 2).sum())
            stat = float(diff.sum()) ** 2 / den if den > 0 else np.nan
            res.statistic_clustered = stat
            res.pvalue_clustered = float(stats.chi2.sf(stat, 1)) if np.isfinite(stat) else np.nan
        return res
    iu = np.triu_indices(k, 1)
    up, lo = t[iu].astype(float), t.T[iu].astype(float)
    pair = up + lo
    stat = float(np.sum(np.where(pair > 0, (up - lo) ** 2 / np.where(pair > 0, pair, 1), 0.0)))
    df = k * (k - 1) / 2
    empty = int((pair == 0).sum())
    note = "exact and mid-p tests are for 2x2 tables only"
    if empty:
        note += f"; {empty} off-diagonal pair(s) are empty and add 0 (df kept at k(k-1)/2, as statsmodels)"
    return McNemarResult("bowker", stat, df, float(stats.chi2.sf(stat, df)), note=note)


# ----------------------------------------------------------------------------------------------
# agreement
# ----------------------------------------------------------------------------------------------
@dataclass
class AgreementResult:
    """Agreement between rater a (table rows) and rater b (table columns).

    `params`: the point estimates (see `STATS`); `bse`: large-sample SEs assuming independent
    items (NaN where no closed form is used); `bse_cluster`: the same linearisation with
    influence scores summed within clusters (G/(G-1) small-sample factor), None without clusters;
    `boot`: the cluster-bootstrap replicates (one row per resample); `undefined`: statistic ->
    why it is NaN; `marginal_shift`: rater b's share of each category minus rater a's.
    """

    categories: tuple
    table: pd.DataFrame
    marginals: pd.DataFrame
    n: int
    n_clusters: int
    clustered: bool
    params: pd.Series
    bse: pd.Series
    bse_cluster: pd.Series | None
    chance: pd.Series
    mcnemar: McNemarResult
    boot: pd.DataFrame | None
    n_boot: int
    seed: int
    undefined: dict = field(default_factory=dict)

    @property
    def marginal_shift(self) -> pd.Series:
        return self.marginals["rater_b"] - self.marginals["rater_a"]

    def conf_int(self, alpha: float = 0.05, method: str = "bootstrap") -> pd.DataFrame:
        """Intervals per statistic: `asymptotic` (normal, iid items, clipped to [-1, 1]),
        `cluster` (normal with the cluster-robust SE) or `bootstrap` (cluster-bootstrap percentile).
        The bootstrap also covers the marginal shifts (rows `shift[<category>]`). Resamples in which a
        statistic is undefined (e.g. a rater constant within the resample) are left out and counted in
        `boot_undefined`; if they are more than half, the interval is NaN rather than a misleading one."""
        if method in ("asymptotic", "cluster"):
            se = self.bse if method == "asymptotic" else self.bse_cluster
            if se is None:
                raise FitError("no cluster-robust SE: agreement() was called without clusters")
            z = stats.norm.ppf(1 - alpha / 2)
            est = self.params.reindex(se.index)
            out = pd.DataFrame({"lower": (est - z * se).clip(-1, 1), "upper": (est + z * se).clip(-1, 1)})
            return out
        if method != "bootstrap":
            raise ValueError(f"method must be 'asymptotic', 'cluster' or 'bootstrap', got {method!r}")
        if self.boot is None:
            raise FitError("no bootstrap replicates: agreement() was called with n_boot=0")
        rows = {}
        for col in self.boot.columns:
            lo, hi, _ = _percentile(self.boot[col].to_numpy(), alpha)
            rows[col] = (lo, hi)
        return pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])

    @property
    def boot_undefined(self) -> pd.Series:
        """How many bootstrap resamples left each statistic undefined."""
        if self.boot is None:
            return pd.Series(dtype=int)
        return (~np.isfinite(self.boot)).sum()

    def summary(self, alpha: float = 0.05) -> pd.DataFrame:
        """Estimates with their SEs and intervals, one row per statistic."""
        out = pd.DataFrame({"estimate": self.params, "se": self.bse.reindex(self.params.index)})
        asym = self.conf_int(alpha, "asymptotic")
        out["asym_lower"], out["asym_upper"] = asym["lower"], asym["upper"]
        if self.bse_cluster is not None:
            out["se_cluster"] = self.bse_cluster.reindex(self.params.index)
        if self.boot is not None:
            bs = self.conf_int(alpha, "bootstrap")
            out["boot_lower"], out["boot_upper"] = bs["lower"], bs["upper"]
        out["note"] = [self.undefined.get(s, "") for s in out.index]
        return out

    def __str__(self) -> str:
        head = (f"Agreement of 2 raters on {self.n} items in {self.n_clusters} "
                f"{'clusters' if self.clustered else 'independent items'}; categories {list(self.categories)}")
        mc = self.mcnemar
        test = (f"{mc.method}: chi2 = {mc.statistic:.4g} (df {mc.df:g}), p = {mc.pvalue:.4g}"
                + (f", exact p = {mc.pvalue_exact:.4g}, mid-p = {mc.pvalue_midp:.4g}" if mc.method == "mcnemar" else ""))
        return "\n".join([head, self.table.to_string(), self.summary().to_string(), test])


def _warn_undefined(undefined: dict) -> None:
    by_reason: dict[str, list[str]] = {}
    for stat, reason in undefined.items():
        by_reason.setdefault(reason, []).append(LABELS.get(stat, stat))
    for reason, names in by_reason.items():
        verb = "is" if len(names) == 1 else "are"
        warnings.warn(f"{' and '.join(names)} {verb} undefined: {reason}", UndefinedStatisticWarning, stacklevel=3)


def agreement(a, b, *, clusters=None, n_boot: int = 2000, seed: int = 0, categories: Sequence | None = None,
              warn: bool = True) -> AgreementResult:
    """Agreement between two raters of the same items (binary or categorical, nominal).

    Parameters
    ----------
    a, b : sequences of labels, one per item (rater a = table rows, rater b = table columns).
    clusters : optional cluster id per item (task, skill, instruction). The bootstrap then resamples
        clusters and `bse_cluster` sums influence scores within clusters. Without it items are
        treated as independent (the bootstrap resamples items).
    n_boot : bootstrap resamples (0 skips the bootstrap).
    seed : seed of the bootstrap.
    categories : the declared label set (order = table order). Labels outside it raise DataError.
        Declaring categories matters for PABAK and AC1, whose chance terms depend on their number.
    """
    ca, cb, cats = _encode(a, b, categories)
    k = len(cats)
    if k < 2:
        raise FitError(f"only one category ({cats[0]!r}) in play: every chance-corrected agreement statistic "
                       f"is undefined; declare the full label set with categories=")
    n = len(ca)
    gcode, n_clusters = _encode_clusters(clusters, n)
    cell = ca * k + cb
    table = np.bincount(cell, minlength=k * k).reshape(k, k)
    est = _table_stats(table)
    params = pd.Series({s: float(est[s]) for s in STATS}, name="estimate")

    undefined = {}
    row, col = est["row"], est["col"]
    for who, marg in (("a", row), ("b", col)):
        if marg.max() >= 1 - 1e-12:
            label = cats[int(marg.argmax())]
            undefined.setdefault("kappa", f"rater {who} gives every item the same label ({label!r}): kappa is 0 "
                                          f"by construction whatever the other rater does (its maximum, "
                                          f"kappa_max, is 0 too), so it says nothing about agreement")
            undefined.setdefault("kappa_max", undefined["kappa"])
    if ((row + col) / 2).max() >= 1 - 1e-12:
        undefined["scott_pi"] = "every rating is the same category: expected and observed disagreement are both 0"
        undefined["alpha"] = undefined["scott_pi"]

    # Large-sample SEs (iid) and their cluster-robust versions from the same influence scores.
    p = table / n
    scores = _influence_scores(p, est)
    bse = pd.Series(np.nan, index=list(STATS), name="se")
    cluster_tables = None
    if clusters is not None:
        cluster_tables = np.bincount(gcode * (k * k) + cell, minlength=n_clusters * k * k).reshape(n_clusters, k, k)
    bse_cl = pd.Series(np.nan, index=list(STATS), name="se_cluster") if clusters is not None else None
    for s, (a_kl, denom) in scores.items():
        mean = float((p * a_kl).sum())
        var = float((p * (a_kl - mean) ** 2).sum()) / (n * denom ** 2)
        bse[s] = np.sqrt(max(var, 0.0))
        if cluster_tables is not None and n_clusters > 1:
            per_g = (cluster_tables * (a_kl - mean)).sum(axis=(1, 2))
            v = n_clusters / (n_clusters - 1) * float((per_g ** 2).sum()) / (n * denom) ** 2
            bse_cl[s] = np.sqrt(v)

    mc = mcnemar_test(table, cluster_tables if (clusters is not None and k == 2) else None)

    boot_df = None
    if n_boot > 0:
        if clusters is None:
            # Resampling n independent items is a Multinomial(n, p_hat) draw of the cell counts.
            rng = np.random.default_rng(seed)
            reps = rng.multinomial(n, p.ravel(), size=n_boot).reshape(n_boot, k, k)
        else:
            flat = cluster_tables.reshape(n_clusters, k * k)
            reps = bootstrap_sums(flat, n_boot, seed).reshape(n_boot, k, k)
        bst = _table_stats(reps)
        cols = {s: bst[s] for s in STATS}
        for j, c in enumerate(cats):
            cols[f"shift[{c}]"] = bst["col"][:, j] - bst["row"][:, j]
        boot_df = pd.DataFrame(cols)

    marginals = pd.DataFrame({"rater_a": row, "rater_b": col}, index=pd.Index(cats, name="category"))
    chance = pd.Series({"kappa": float(est["pe_kappa"]), "scott_pi": float(est["pe_scott"]),
                        "ac1": float(est["pe_ac1"]), "pabak": 1 / k}, name="chance_agreement")
    if k == 2:
        # Byrt, Bishop & Carlin (1993): how unbalanced the categories are, and how much the raters'
        # marginals differ; kappa = (PABAK - PI^2 + BI^2) / (1 - PI^2 + BI^2).
        chance["prevalence_index"] = (p[0, 0] - p[1, 1])
        chance["bias_index"] = (p[0, 1] - p[1, 0])
    res = AgreementResult(
        categories=cats,
        table=pd.DataFrame(table, index=pd.Index(cats, name="rater_a"), columns=pd.Index(cats, name="rater_b")),
        marginals=marginals, n=n, n_clusters=n_clusters, clustered=clusters is not None, params=params,
        bse=bse, bse_cluster=bse_cl, chance=chance, mcnemar=mc, boot=boot_df, n_boot=n_boot, seed=seed,
        undefined=undefined)
    if warn and undefined:
        _warn_undefined(undefined)
    return res


# ----------------------------------------------------------------------------------------------
# multiple testing
# ----------------------------------------------------------------------------------------------
def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries are left out of the family and stay NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adj
    return out


# ----------------------------------------------------------------------------------------------
# one row per group
# ----------------------------------------------------------------------------------------------
def agreement_table(df: pd.DataFrame, *, by: str | Sequence[str] = "comparison", a_col: str = "rater_a",
                    b_col: str = "rater_b", cluster_col: str | None = "cluster", categories: Sequence | None = None,
                    n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """`agreement` per group, one row each: estimates, asymptotic and bootstrap intervals, McNemar
    (with Holm-adjusted exact p across the groups) and the reasons for any undefined statistic.

    Categories default to the labels seen anywhere in `df`, so every group shares one label set.
    """
    by = [by] if isinstance(by, str) else list(by)
    need = by + [a_col, b_col] + ([cluster_col] if cluster_col else [])
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"agreement table: missing column(s) {missing}; the table has {list(df.columns)}")
    if len(df) == 0:
        raise DataError("agreement table: no rows")
    if categories is None:
        categories = _sorted_labels(pd.unique(pd.concat([df[a_col], df[b_col]]).dropna()))
    rows = []
    for key, g in df.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UndefinedStatisticWarning)
            res = agreement(g[a_col], g[b_col], clusters=g[cluster_col] if cluster_col else None,
                            categories=categories, n_boot=n_boot, seed=seed)
        for w in caught:
            warnings.warn(f"{dict(zip(by, key))}: {w.message}", UndefinedStatisticWarning, stacklevel=2)
        rows.append(_agreement_row(dict(zip(by, key)), res, alpha))
    out = pd.DataFrame(rows)
    out["mcnemar_p_exact_holm"] = holm(out["mcnemar_p_exact"])
    return out


def marginal_shifts(tab: pd.DataFrame, *, group_col: str = "comparison") -> pd.DataFrame:
    """The `shift[<category>]` columns of an `agreement_table` in long form: one row per group and
    category with estimate, lower, upper (rater b's share of the category minus rater a's)."""
    rows = []
    cats = [c[6:-1] for c in tab.columns if c.startswith("shift[") and c.endswith("]")]
    for _, r in tab.iterrows():
        for c in cats:
            rows.append({group_col: r[group_col], "category": c, "estimate": r[f"shift[{c}]"],
                         "lower": r.get(f"shift[{c}]_lower", np.nan), "upper": r.get(f"shift[{c}]_upper", np.nan)})
    return pd.DataFrame(rows)


def _agreement_row(key: dict, res: AgreementResult, alpha: float) -> dict:
    asym = res.conf_int(alpha, "asymptotic")
    row = dict(key)
    row.update(n=res.n, n_clusters=res.n_clusters)
    for s in STATS:
        row[s] = res.params[s]
    row["kappa_se"] = res.bse["kappa"]
    row["kappa_asym_lower"], row["kappa_asym_upper"] = asym.loc["kappa", "lower"], asym.loc["kappa", "upper"]
    if res.bse_cluster is not None:
        row["kappa_se_cluster"] = res.bse_cluster["kappa"]
    row["ac1_se"] = res.bse["ac1"]
    if res.boot is not None:
        bs = res.conf_int(alpha, "bootstrap")
        for s in ("percent_agreement", "kappa", "pabak", "ac1", "alpha"):
            row[f"{s}_boot_lower"], row[f"{s}_boot_upper"] = bs.loc[s, "lower"], bs.loc[s, "upper"]
    row["chance_kappa"] = res.chance["kappa"]
    shifts = res.marginal_shift
    for c in res.categories:
        row[f"shift[{c}]"] = shifts[c]
        if res.boot is not None:
            row[f"shift[{c}]_lower"], row[f"shift[{c}]_upper"] = bs.loc[f"shift[{c}]", "lower"], bs.loc[f"shift[{c}]", "upper"]
    mc = res.mcnemar
    row.update(mcnemar_method=mc.method, mcnemar_stat=mc.statistic, mcnemar_df=mc.df, mcnemar_p=mc.pvalue,
               mcnemar_p_exact=mc.pvalue_exact, mcnemar_p_midp=mc.pvalue_midp,
               mcnemar_p_clustered=mc.pvalue_clustered, mcnemar_b=mc.b, mcnemar_c=mc.c)
    row["undefined"] = "; ".join(f"{LABELS[s]}: {r}" for s, r in res.undefined.items()
                                 if s in ("kappa", "alpha"))
    return row


# ----------------------------------------------------------------------------------------------
# episodes: pairing by task, headline Delta and its shift
# ----------------------------------------------------------------------------------------------
def paired_differences(episodes: pd.DataFrame, score_cols: Sequence[str], *, group_col: str = "config",
                       task_col: str = "task_id", cluster_col: str = "skill_id", condition_col: str = "condition",
                       baseline: str = "baseline", treatment: str = "curated", source: str = "episodes"
                       ) -> pd.DataFrame:
    """One row per (group, task): the cluster and, per score column, treatment - baseline.

    Checks the pairing: every (group, task) must have exactly one baseline and one treatment row,
    and a task must sit in one cluster. A task with a missing score (NaN: e.g. dropped as
    unparseable) in either condition gets NaN for that score, so the pair is dropped as a whole.
    """
    need = [group_col, task_col, cluster_col, condition_col, *score_cols]
    missing = [c for c in need if c not in episodes.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; it has {list(episodes.columns)}")
    if len(episodes) == 0:
        raise DataError(f"{source}: no episodes")
    ep = episodes.reset_index(drop=True)
    check_rows(~ep[condition_col].isin([baseline, treatment]), source,
               f"column '{condition_col}' must be '{baseline}' or '{treatment}'")
    for s in score_cols:
        v = pd.to_numeric(ep[s], errors="coerce")
        check_rows(~(v.isin([0, 1]) | ep[s].isna()), source, f"score column '{s}' must hold 0, 1 or be empty")
    dup = ep.duplicated([group_col, task_col, condition_col], keep=False)
    check_rows(dup, source, f"each ({group_col}, {task_col}, {condition_col}) must appear once")
    counts = ep.groupby([group_col, task_col], sort=False)[condition_col].transform("size")
    check_rows(counts != 2, source, f"each ({group_col}, {task_col}) needs both a '{baseline}' and a "
                                    f"'{treatment}' episode (paired design)")
    nclus = ep.groupby(task_col)[cluster_col].transform("nunique")
    check_rows(nclus > 1, source, f"each {task_col} must belong to a single {cluster_col}")
    scores = ep[list(score_cols)].apply(pd.to_numeric, errors="coerce")
    sign = np.where(ep[condition_col] == treatment, 1.0, -1.0)
    signed = scores.mul(sign, axis=0)
    keys = [group_col, task_col]
    signed[keys] = ep[keys]
    # min_count=2 keeps a NaN in either condition as NaN instead of summing it away.
    out = signed.groupby(keys, sort=False).sum(min_count=2).reset_index()
    out = out.merge(ep[[task_col, cluster_col]].drop_duplicates(task_col), on=task_col, how="left")
    return out


@dataclass
class ShiftResult:
    """Headline Delta under scorer a and scorer b per group, and the shift (b - a).

    `frame`: one row per group with n_tasks, n_clusters, delta_a, delta_b, shift, their
    cluster-bootstrap percentile intervals, the cluster-robust SE of the shift (CR1, as
    statsmodels' OLS with cov_type='cluster'), a t-test with G - 1 df, and the Holm-adjusted p.
    """

    frame: pd.DataFrame
    group_col: str
    score_a: str
    score_b: str
    n_boot: int
    seed: int
    alpha: float = 0.05

    @property
    def params(self) -> pd.Series:
        return self.frame.set_index(self.group_col)["shift"]

    @property
    def bse(self) -> pd.Series:
        return self.frame.set_index(self.group_col)["shift_se"]

    def conf_int(self, alpha: float = 0.05, method: str = "bootstrap") -> pd.DataFrame:
        f = self.frame.set_index(self.group_col)
        if method == "bootstrap":
            if alpha != self.alpha:
                raise ValueError(f"bootstrap intervals were computed at alpha={self.alpha}; rerun headline_shift")
            return f[["shift_boot_lower", "shift_boot_upper"]].set_axis(["lower", "upper"], axis=1)
        if method == "cluster_t":
            q = stats.t.ppf(1 - alpha / 2, f["n_clusters"] - 1)
            return pd.DataFrame({"lower": f["shift"] - q * f["shift_se"], "upper": f["shift"] + q * f["shift_se"]})
        raise ValueError(f"method must be 'bootstrap' or 'cluster_t', got {method!r}")

    def summary(self) -> pd.DataFrame:
        return self.frame


def headline_shift(episodes: pd.DataFrame, score_a: str = "judge_primary_pass", score_b: str = "judge_cross_pass",
                   *, group_col: str = "config", task_col: str = "task_id", cluster_col: str = "skill_id",
                   condition_col: str = "condition", baseline: str = "baseline", treatment: str = "curated",
                   n_boot: int = 2000, seed: int = 0, alpha: float = 0.05, source: str = "episodes") -> ShiftResult:
    """Headline Delta (treatment - baseline pass rate, paired by task) under two scorers, per group.

    Delta_s = mean over tasks of (pass_s(treatment) - pass_s(baseline)); shift = Delta_b - Delta_a,
    itself the mean of a per-task paired quantity. The bootstrap resamples clusters (skills) with
    replacement, keeping each task's two conditions and two scorers together, and takes the ratio
    of resampled sums (clusters may differ in size). Tasks with a missing score under either scorer
    are dropped from both (the comparison stays paired). The same resamples serve every group.
    """
    d = paired_differences(episodes, [score_a, score_b], group_col=group_col, task_col=task_col,
                           cluster_col=cluster_col, condition_col=condition_col, baseline=baseline,
                           treatment=treatment, source=source)
    rows = []
    for key, g in d.groupby(group_col, sort=False):
        g = g.dropna(subset=[score_a, score_b])
        n_dropped = int(d[group_col].eq(key).sum() - len(g))
        if len(g) == 0:
            raise FitError(f"{source}: group {key!r} has no task scored under both {score_a} and {score_b}")
        codes, uniq = pd.factorize(g[cluster_col], sort=True)
        G = len(uniq)
        da, db = g[score_a].to_numpy(float), g[score_b].to_numpy(float)
        sh = db - da
        n = len(g)
        per = np.column_stack([np.bincount(codes, weights=x, minlength=G) for x in (da, db, sh)]
                              + [np.bincount(codes, minlength=G).astype(float)])
        est_a, est_b, est_s = da.mean(), db.mean(), sh.mean()
        resid = np.bincount(codes, weights=sh - est_s, minlength=G)
        se = np.sqrt(G / (G - 1) * float((resid ** 2).sum()) / n ** 2) if G > 1 else np.nan
        if G > 1 and se > 0:
            tstat = est_s / se
            p = float(2 * stats.t.sf(abs(tstat), G - 1))
        else:
            tstat, p = np.nan, (1.0 if est_s == 0 else np.nan)
        row = {group_col: key, "n_tasks": n, "n_tasks_dropped": n_dropped, "n_clusters": G,
               "delta_a": est_a, "delta_b": est_b, "shift": est_s, "shift_se": se, "t": tstat, "p": p}
        if n_boot > 0:
            sums = bootstrap_sums(per, n_boot, seed)
            with np.errstate(invalid="ignore", divide="ignore"):
                reps = sums[:, :3] / sums[:, 3:4]
            for j, name in enumerate(("delta_a", "delta_b", "shift")):
                lo, hi, _ = _percentile(reps[:, j], alpha)
                row[f"{name}_boot_lower"], row[f"{name}_boot_upper"] = lo, hi
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["p_holm"] = holm(frame["p"])
    return ShiftResult(frame=frame, group_col=group_col, score_a=score_a, score_b=score_b, n_boot=n_boot,
                       seed=seed, alpha=alpha)


def cluster_mean(values, clusters, *, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Mean of `values` with a cluster-bootstrap percentile interval (ratio of resampled sums)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        raise DataError("cluster_mean: no values")
    if np.isnan(v).any():
        raise DataError(f"cluster_mean: missing values at {format_rows(np.flatnonzero(np.isnan(v)) + 1)}")
    codes, G = _encode_clusters(clusters, len(v))
    per = np.column_stack([np.bincount(codes, weights=v, minlength=G), np.bincount(codes, minlength=G)])
    out = {"estimate": float(v.mean()), "n": len(v), "n_clusters": G, "lower": np.nan, "upper": np.nan}
    if n_boot > 0:
        s = bootstrap_sums(per, n_boot, seed)
        out["lower"], out["upper"], _ = _percentile(s[:, 0] / s[:, 1], alpha)
    return out


# ----------------------------------------------------------------------------------------------
# extractor vs judge
# ----------------------------------------------------------------------------------------------
POLICIES = ("fail", "drop", "judge")


def scoring_variants(episodes: pd.DataFrame, *, extractor_col: str = "extractor_pass",
                     judge_col: str = "judge_primary_pass", parsed_col: str = "answer_line_present",
                     path_col: str | None = "scoring_path", extractor_path: str = "extractor",
                     policies: Sequence[str] = POLICIES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score columns for each scoring path and each policy for unparseable answers.

    Paths: `judge` (the LLM judge on every episode), `extractor` (the ANSWER-line extractor on every
    episode) and, when `path_col` is given, `bench` (the extractor on episodes whose
    `path_col == extractor_path`, the judge elsewhere, as the benchmark scored them). Policies for an
    unparseable answer (`parsed_col == 0`) under the extractor: `fail` (scored 0), `drop` (left
    empty, so the task pair is dropped) and `judge` (deferred to the judge's verdict).
    Returns the episodes with the new columns and a table describing each column.
    """
    for c in [extractor_col, judge_col, parsed_col] + ([path_col] if path_col else []):
        if c not in episodes.columns:
            raise DataError(f"episodes: missing column '{c}'; it has {list(episodes.columns)}")
    bad = [p for p in policies if p not in POLICIES]
    if bad:
        raise DataError(f"unknown policy {bad} for unparseable answers; use {list(POLICIES)}")
    ep = episodes.copy()
    ext = ep[extractor_col].astype(float)
    jud = ep[judge_col].astype(float)
    unparsed = ep[parsed_col].astype(float) == 0
    variants = [{"score": "score_judge", "path": "judge", "policy": "n/a",
                 "description": "LLM judge on every episode"}]
    ep["score_judge"] = jud
    paths_ = [("extractor", pd.Series(True, index=ep.index))]
    if path_col:
        paths_.append(("bench", ep[path_col].astype(str) == extractor_path))
    for path, use_ext in paths_:
        for pol in policies:
            if pol == "fail":
                ext_p = ext.where(~unparsed, 0.0)
            elif pol == "drop":
                ext_p = ext.where(~unparsed, np.nan)
            else:
                ext_p = ext.where(~unparsed, jud)
            name = f"score_{path}_{pol}"
            ep[name] = ext_p.where(use_ext, jud)
            where = "every episode" if path == "extractor" else f"episodes with {path_col} = '{extractor_path}'"
            variants.append({"score": name, "path": path, "policy": pol,
                             "description": f"extractor on {where}; unparseable answers "
                                            + {"fail": "count as fail", "drop": "dropped (task pair removed)",
                                               "judge": "deferred to the judge"}[pol]})
    return ep, pd.DataFrame(variants)


def extractor_bias(episodes: pd.DataFrame, *, by: Sequence[str] = ("config", "condition"),
                   extractor_col: str = "extractor_pass", judge_col: str = "judge_primary_pass",
                   parsed_col: str = "answer_line_present", cluster_col: str = "skill_id",
                   n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Extractor vs judge per group (default: configuration x condition).

    Per group: the 2x2 counts (judge pass/fail x extractor pass/fail), the unparseable rate with a
    cluster-bootstrap interval, both pass rates and their difference (extractor - judge: negative
    means the extractor under-counts) with a paired cluster-bootstrap interval, McNemar exact and
    mid-p on the discordant pairs and Durkalski's clustered McNemar.
    """
    by = list(by)
    need = by + [extractor_col, judge_col, parsed_col, cluster_col]
    missing = [c for c in need if c not in episodes.columns]
    if missing:
        raise DataError(f"episodes: missing column(s) {missing}; it has {list(episodes.columns)}")
    rows = []
    for key, g in episodes.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        e = g[extractor_col].to_numpy(int)
        j = g[judge_col].to_numpy(int)
        codes, G = _encode_clusters(g[cluster_col], len(g))
        # Rows: judge (the reference), columns: extractor; category order fail, pass.
        cell = j * 2 + e
        tab = np.bincount(cell, minlength=4).reshape(2, 2)
        ctabs = np.bincount(codes * 4 + cell, minlength=G * 4).reshape(G, 2, 2)
        mc = mcnemar_test(tab, ctabs)
        unp = cluster_mean((g[parsed_col].to_numpy(float) == 0).astype(float), g[cluster_col],
                           n_boot=n_boot, seed=seed, alpha=alpha)
        diff = cluster_mean(e - j, g[cluster_col], n_boot=n_boot, seed=seed, alpha=alpha)
        row = dict(zip(by, key))
        row.update(n=len(g), n_clusters=G, both_pass=int(tab[1, 1]), judge_only=int(tab[1, 0]),
                   extractor_only=int(tab[0, 1]), both_fail=int(tab[0, 0]),
                   unparseable_rate=unp["estimate"], unparseable_lower=unp["lower"], unparseable_upper=unp["upper"],
                   extractor_rate=float(e.mean()), judge_rate=float(j.mean()),
                   diff=diff["estimate"], diff_lower=diff["lower"], diff_upper=diff["upper"],
                   mcnemar_p_exact=mc.pvalue_exact, mcnemar_p_midp=mc.pvalue_midp,
                   mcnemar_p_clustered=mc.pvalue_clustered)
        row["direction"] = ("extractor under-counts" if tab[1, 0] > tab[0, 1] else
                            "extractor over-counts" if tab[0, 1] > tab[1, 0] else "no net difference")
        rows.append(row)
    out = pd.DataFrame(rows)
    out["mcnemar_p_exact_holm"] = holm(out["mcnemar_p_exact"])
    return out


def variant_shifts(scored: pd.DataFrame, variants: pd.DataFrame, *, reference: str = "score_judge",
                   **kwargs) -> pd.DataFrame:
    """`headline_shift` of every scoring variant against the reference column, stacked long, with the
    variant's path and policy; Holm adjustment is within each variant (across configurations)."""
    frames = []
    for v in variants.itertuples():
        if v.score == reference:
            continue
        f = headline_shift(scored, reference, v.score, **kwargs).frame
        f.insert(0, "policy", v.policy)
        f.insert(0, "path", v.path)
        f.insert(0, "score", v.score)
        frames.append(f)
    if not frames:
        raise DataError("no scoring variant besides the reference to compare")
    return pd.concat(frames, ignore_index=True)
