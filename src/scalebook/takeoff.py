"""Takeoff thresholds: how much SFT data each model size needs before exact match takes off.

Input: item-level evaluation results aggregated per (model size, SFT ratio): ``correct`` items
out of ``total`` (schema ``takeoff_counts`` in ``data/datasets.yml``). Rows that repeat a
(size, ratio) pair (per-item rows, or several evaluation shards) are pooled by summing; pooling
treats all items of a cell as exchangeable Bernoulli trials of one fine-tuned model. Tables that
only report percentages are converted to counts explicitly with `counts_from_percent` (the GLM
needs counts; a percentage without its item count carries no sampling information).

Per size (`fit_size`, `fit_takeoff`):

- a binomial GLM with logit link (statsmodels) of correct/total on the ratio,
  ``logit p = b0 + b1 * ratio``;
- the takeoff ratio, the 50% point ``-b0/b1``, with three intervals: the delta method on the GLM
  covariance; Fieller's interval (the ratios at which the Wald test of ``logit p = 0`` does not
  reject; unbounded when the slope is not significant, see `inverse_prediction`); and an
  **item-resampling bootstrap**: within every (size, ratio) cell the items are resampled with
  replacement (equivalently ``correct* ~ Binomial(total, correct/total)``), the logistic curve is
  refitted, and the percentile interval of ``-b0*/b1*`` is reported. It resamples cells, not the
  fitted curve, so it does not assume the logistic shape is right. Draws whose refit has no
  finite maximum likelihood estimate (complete or quasi-complete separation) or a non-positive
  slope are dropped and counted (``boot_failed``); if more than `MAX_BOOT_FAILED` of the draws
  fail the interval is reported as undefined;
- lack of fit: the deviance of the logistic curve against the saturated model (one probability
  per ratio), its chi-square p-value and the Pearson dispersion. With ``scale="pearson"`` the
  GLM covariance is multiplied by the dispersion when it exceeds 1 (quasi-binomial), which treats
  lack of fit as extra-binomial (e.g. run-to-run) noise; the bootstrap is unaffected;
- a shape-free companion: where the monotone (isotonic) fit of the observed proportions crosses
  50%, by linear interpolation (`interpolated_crossing`; no interval).

Across sizes: Spearman and Kendall rank correlations of takeoff with size and their exact
permutation p-values (`rank_correlation`; no monotone law is forced), and the adjacent sizes whose
takeoffs reverse the size order with whether their intervals overlap (`size_reversals`).

Within a size, whether a dip is more than noise: `monotonicity_test` (see its docstring).

What the data can and cannot say: each (size, ratio) point is usually one fine-tuning run
evaluated on a fixed item set. The binomial model describes item-sampling noise only; without
replicate runs per point, run-to-run variation cannot be separated from a real effect of the ratio.
"""
from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize, special, stats

from . import axes, figures, inverse_prediction, paths, tables
from .errors import DataError, FitError, ParameterError, format_rows

SCHEMA = "takeoff_counts"
MAX_BOOT_FAILED = 0.05  # share of failed bootstrap refits above which the interval is undefined
TERMS = ["const", "ratio"]

_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
_SIZE_RE = re.compile(r"^\s*([+-]?(?:\d[\d,_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([KkMmBbGgTt]?)\s*$")


# -- input ------------------------------------------------------------------------------------

def parse_size(label) -> float:
    """A parameter count from a label: ``"68K"`` -> 68000.0, ``"4.8M"`` -> 4.8e6, ``"7B"``, ``"2e9"``.

    Suffixes K, M, B (or G) and T are case-insensitive; numbers pass through. Raises
    ``ValueError`` for text that is not a number with an optional suffix. The sign is kept (so
    that validation can report negative sizes rather than silently dropping the minus).
    """
    if isinstance(label, (int, float, np.integer, np.floating)) and not isinstance(label, bool):
        return float(label)
    m = _SIZE_RE.match(str(label))
    if not m:
        raise ValueError(f"cannot read {label!r} as a model size (expected e.g. 68K, 4.8M, 7B or 2e9)")
    return float(m.group(1).replace(",", "").replace("_", "")) * _SUFFIX[m.group(2).upper()]


def format_size(n: float) -> str:
    """The inverse of `parse_size` for display: 68000 -> '68K', 4.8e6 -> '4.8M'."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.3g}"


def counts_from_percent(df: pd.DataFrame, *, percent_col: str, n_items: int | None = None,
                        total_col: str | None = None, source: str = "table") -> pd.DataFrame:
    """Turn a percentage column into ``correct``/``total`` counts (the GLM needs counts).

    The item count comes from ``n_items`` (the same for every row) or from ``total_col``.
    ``correct = round(percent / 100 * total)``: exact only if the percentages carry enough
    decimals (with 500 items, one decimal suffices; whole percentages leave +-2.5 items of
    rounding). Percentages outside 0..100 raise `DataError` naming the column and rows; a column of
    fractions (all values <= 1) is not detected automatically: multiply it by 100 first.
    """
    if percent_col not in df.columns:
        raise DataError(f"{source}: no column '{percent_col}' (percent_col); the file has {list(df.columns)}")
    pct = pd.to_numeric(df[percent_col], errors="coerce")
    tables.check_rows(pct.isna().to_numpy(), source,
                      f"column '{percent_col}' must hold percentages (numbers in 0..100)")
    tables.check_rows((pct > 100).to_numpy(), source,
                      f"column '{percent_col}' holds percentages above 100 ({sorted(pct[pct > 100].tolist())[:3]}); "
                      f"a percentage must lie in 0..100")
    tables.check_rows((pct < 0).to_numpy(), source,
                      f"column '{percent_col}' holds negative percentages; a percentage must lie in 0..100")
    out = df.copy()
    if total_col is not None:
        if total_col not in df.columns:
            raise DataError(f"{source}: no column '{total_col}' (total_col); the file has {list(df.columns)}")
        total = pd.to_numeric(df[total_col], errors="coerce")
        tables.check_rows((total.isna() | (total <= 0) | (total % 1 != 0)).to_numpy(), source,
                          f"column '{total_col}' must hold whole item counts > 0")
    elif n_items is not None and n_items > 0 and float(n_items).is_integer():
        total = pd.Series(int(n_items), index=df.index)
    else:
        raise ParameterError(f"{source}: converting percentages to counts needs the number of items per "
                             f"point: pass n_items (a whole number > 0) or total_col; got n_items={n_items!r}")
    out["total"] = total.astype("int64")
    out["correct"] = np.rint(pct.to_numpy() / 100.0 * out["total"].to_numpy()).astype("int64")
    return out


def validate_results(df: pd.DataFrame, *, source: str = "table",
                     columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Validate a results table and return it pooled per (size, ratio), sorted by size then ratio.

    Output columns: ``size`` (label), ``n_params`` (parsed from the label), ``ratio``, ``correct``,
    ``total``. Raises `DataError` naming the column and rows for: unreadable or non-positive sizes,
    ``correct > total``, negative counts, sizes measured at fewer than two distinct ratios, and two
    labels denoting the same size.
    """
    columns = dict(columns or {})
    name = {c: columns.get(c, c) for c in ("size", "ratio", "correct", "total")}
    shown = {c: name[c] if name[c] == c else f"{name[c]}' ('{c}" for c in name}  # user's name first
    d = tables.validate(df, SCHEMA, source=source, columns=columns)
    parsed = []
    for label in d["size"]:
        try:
            parsed.append(parse_size(label))
        except ValueError:
            parsed.append(float("nan"))
    n_params = np.asarray(parsed)
    tables.check_rows(np.isnan(n_params), source,
                      f"column '{shown['size']}' must hold model sizes such as 68K, 4.8M, 7B or 2e9")
    tables.check_rows(n_params <= 0, source,
                      f"column '{shown['size']}' must hold positive model sizes; found {sorted(set(d['size'][n_params <= 0]))[:3]}")
    tables.check_rows((d["correct"] > d["total"]).to_numpy(), source,
                      f"column '{shown['correct']}' must not exceed column '{shown['total']}' "
                      f"(correct items out of total items)")
    d["n_params"] = n_params
    same = d.groupby("n_params")["size"].unique()
    clash = same[same.map(len) > 1]
    if len(clash):
        labels = [str(x) for x in clash.iloc[0]]
        rows = np.flatnonzero(d["size"].isin(labels).to_numpy()) + 1
        raise DataError(f"{source}: column '{shown['size']}' uses labels {labels} for the same size "
                        f"({format_size(clash.index[0])}) at {format_rows(rows)}; use one label per size")
    n_ratios = d.groupby("size")["ratio"].transform("nunique")
    single = (n_ratios < 2).to_numpy()
    if single.any():
        bad = sorted(set(d["size"][single]))
        raise DataError(f"{source}: column '{shown['ratio']}': size(s) {bad} have results at a single SFT "
                        f"ratio ({format_rows(np.flatnonzero(single) + 1)}); a takeoff curve needs results "
                        f"at two or more distinct ratios per size")
    pooled = (d.groupby(["n_params", "size", "ratio"], as_index=False)[["correct", "total"]].sum()
              .sort_values(["n_params", "ratio"], kind="mergesort").reset_index(drop=True))
    return pooled[["size", "n_params", "ratio", "correct", "total"]]


def load_results(path, *, size_col: str = "size", ratio_col: str = "ratio", correct_col: str = "correct",
                 total_col: str = "total", percent_col: str | None = None,
                 n_items: int | None = None) -> pd.DataFrame:
    """Read and validate a results table (see `validate_results`).

    Give ``percent_col`` (and ``n_items`` or ``total_col``) when the table holds percentages
    instead of counts; they are converted by `counts_from_percent`.
    """
    raw = tables.read_table(path)
    source = paths.display_path(paths.resolve(path))
    raw.columns = [str(c).strip() for c in raw.columns]
    columns = {"size": size_col, "ratio": ratio_col, "correct": correct_col, "total": total_col}
    if percent_col:
        tcol = total_col if total_col in raw.columns else None
        raw = counts_from_percent(raw, percent_col=percent_col, n_items=n_items, total_col=tcol, source=source)
        columns["correct"], columns["total"] = "correct", "total"
        if tcol is not None and tcol != "total":
            raw = raw.drop(columns=tcol)
    return validate_results(raw, source=source, columns=columns)


def size_order(data: pd.DataFrame) -> list[str]:
    """Size labels from smallest to largest."""
    return list(data.drop_duplicates("size").sort_values("n_params", kind="mergesort")["size"])


# -- the per-size logistic fit ----------------------------------------------------------------

def separation(ratio, correct, total) -> tuple[float, float] | None:
    """If the counts are (quasi-)completely separated in ``ratio``, the bracket of the 50% point.

    With one covariate the logistic MLE is finite iff some failure lies above some success and
    some success above some failure; otherwise the curve is a step and the 50% point is only known
    to lie between the last all-wrong ratio and the first all-right one. Returns that bracket (for
    an increasing step) or ``(nan, nan)`` for other degenerate cases; None when the MLE exists.
    """
    x = np.asarray(ratio, float)
    y = np.asarray(correct, float)
    n = np.asarray(total, float)
    succ, fail = y > 0, y < n
    if not succ.any() or not fail.any():
        return (float("nan"), float("nan"))
    if x[fail].max() > x[succ].min() and x[succ].max() > x[fail].min():
        return None
    if x[fail].max() <= x[succ].min():
        below = x[(y == 0)]
        above = x[(y == n)]
        return (float(below.max()) if below.size else float("nan"),
                float(above.min()) if above.size else float("nan"))
    return (float("nan"), float("nan"))


@dataclass
class SizeFit:
    """The logistic fit for one model size (statsmodels GLM results in ``glm``)."""

    size: str
    n_params: float
    data: pd.DataFrame
    glm: object
    scale: str = "binomial"

    @property
    def params(self) -> pd.Series:
        return pd.Series(np.asarray(self.glm.params), index=TERMS, name=self.size)

    @property
    def bse(self) -> pd.Series:
        return pd.Series(np.asarray(self.glm.bse), index=TERMS, name=self.size)

    def cov_params(self) -> np.ndarray:
        return np.asarray(self.glm.cov_params())

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        ci = np.asarray(self.glm.conf_int(alpha=alpha))
        return pd.DataFrame(ci, index=TERMS, columns=["lower", "upper"])

    def predict(self, ratio) -> np.ndarray:
        b0, b1 = self.params
        return special.expit(b0 + b1 * np.asarray(ratio, float))

    @property
    def takeoff(self) -> float:
        b0, b1 = self.params
        return inverse_prediction.solve(b0, b1, 0.0)

    @property
    def takeoff_se(self) -> float:
        b0, b1 = self.params
        return inverse_prediction.delta_se(b0, b1, self.cov_params(), 0.0)

    def takeoff_interval(self, alpha: float = 0.05, method: str = "delta") -> inverse_prediction.InverseInterval:
        """Delta-method (``"delta"``) or Fieller (``"fieller"``) interval for the 50% point."""
        z = stats.norm.ppf(1 - alpha / 2)
        b0, b1 = self.params
        if method == "delta":
            se = self.takeoff_se
            return inverse_prediction.InverseInterval(self.takeoff, self.takeoff - z * se, self.takeoff + z * se,
                                                      inverse_prediction.BOUNDED)
        if method == "fieller":
            return inverse_prediction.fieller(b0, b1, self.cov_params(), z, 0.0)
        raise ParameterError(f"unknown interval method {method!r}; use 'delta' or 'fieller'")

    @property
    def deviance(self) -> float:
        return float(self.glm.deviance)

    @property
    def df_resid(self) -> int:
        return int(round(self.glm.df_resid))

    @property
    def dispersion(self) -> float:
        """Pearson chi-square / residual df (about 1 when the logistic binomial model fits)."""
        return float(self.glm.pearson_chi2 / self.df_resid) if self.df_resid > 0 else float("nan")

    @property
    def gof_p(self) -> float:
        """Deviance goodness-of-fit p-value against the saturated model (chi-square, df = cells - 2)."""
        return float(stats.chi2.sf(self.deviance, self.df_resid)) if self.df_resid > 0 else float("nan")

    def summary(self):
        return self.glm.summary()


def fit_size(data: pd.DataFrame, size: str, *, scale: str = "binomial") -> SizeFit:
    """Binomial GLM (logit link) of correct/total on ratio for one size of a validated table.

    Raises `FitError` when the maximum likelihood estimate does not exist (separation) or the
    slope is not positive (no takeoff).
    """
    if scale not in ("binomial", "pearson"):
        raise ParameterError(f"scale must be 'binomial' or 'pearson', got {scale!r}")
    d = data[data["size"] == size].sort_values("ratio", kind="mergesort").reset_index(drop=True)
    if d.empty:
        raise ParameterError(f"no size {size!r} in the data; sizes are {size_order(data)}")
    sep = separation(d["ratio"], d["correct"], d["total"])
    if sep is not None:
        lo, hi = sep
        where = (f"it lies between ratio {lo:g} (all wrong) and {hi:g} (all right)"
                 if np.isfinite(lo) and np.isfinite(hi) else "it cannot be located")
        raise FitError(f"size {size}: the results are completely separated in the ratio (a step, not a "
                       f"curve), so the logistic fit has no finite estimate; {where}")
    X = pd.DataFrame({"const": 1.0, "ratio": d["ratio"].to_numpy(float)})
    endog = np.column_stack([d["correct"].to_numpy(float), (d["total"] - d["correct"]).to_numpy(float)])
    model = sm.GLM(endog, X, family=sm.families.Binomial())
    res = model.fit()
    if scale == "pearson" and res.df_resid > 0:
        # Never below 1: cells at 0% or 100% add almost nothing to Pearson's chi-square, so an
        # apparent underdispersion would shrink the intervals for no good reason.
        res = model.fit(scale=max(1.0, float(res.pearson_chi2 / res.df_resid)))
    if not np.all(np.isfinite(res.params)):
        raise FitError(f"size {size}: the logistic fit did not converge")
    if res.params.iloc[1] <= 0:
        raise FitError(f"size {size}: exact match does not increase with the ratio (slope "
                       f"{res.params.iloc[1]:.3g}); there is no takeoff to locate")
    return SizeFit(size=size, n_params=float(d["n_params"].iloc[0]), data=d, glm=res, scale=scale)


def logistic_mle_batch(x, y, n, start, *, max_iter: int = 100, tol: float = 1e-10):
    """Maximum likelihood logistic fits of many count vectors at once (Newton with step halving).

    ``x`` (k,), ``y`` (B, k) successes, ``n`` (k,) trials; ``start`` (b0, b1). Returns (b0, b1,
    converged) arrays of length B. Used for bootstrap refits, where thousands of statsmodels fits
    would dominate the run time; the tests check it against statsmodels.
    """
    x = np.asarray(x, float)
    y = np.atleast_2d(np.asarray(y, float))
    n = np.asarray(n, float)
    xm = x.mean()
    xc = x - xm  # centring keeps the 2x2 Hessian well conditioned
    a = np.tile([start[0] + start[1] * xm, start[1]], (y.shape[0], 1))

    def loglik(a):
        eta = a[:, :1] + a[:, 1:] * xc
        return (y * eta - n * np.logaddexp(0.0, eta)).sum(axis=1)

    ll = loglik(a)
    converged = np.zeros(y.shape[0], bool)
    for _ in range(max_iter):
        p = special.expit(a[:, :1] + a[:, 1:] * xc)
        r = y - n * p
        w = n * p * (1 - p)
        g0, g1 = r.sum(1), (r * xc).sum(1)
        h00, h01, h11 = w.sum(1), (w * xc).sum(1), (w * xc * xc).sum(1)
        det = h00 * h11 - h01 ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.column_stack([(h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det])
        step[~np.isfinite(step)] = 0.0
        t = np.ones(len(a))
        for _ in range(40):
            new = a + t[:, None] * step
            ll_new = loglik(new)
            worse = ll_new < ll - 1e-12 * np.abs(ll)
            if not worse.any():
                break
            t = np.where(worse, t / 2, t)
        a, ll = new, ll_new
        converged = np.abs(t[:, None] * step).max(axis=1) < tol * (1 + np.abs(a).max(axis=1))
        if converged.all():
            break
    return a[:, 0] - a[:, 1] * xm, a[:, 1], converged


def bootstrap_takeoff(fit: SizeFit, n_bootstrap: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Item-resampling bootstrap draws of the 50% point; returns (draws of successful refits, failures)."""
    d = fit.data
    x, y, n = d["ratio"].to_numpy(float), d["correct"].to_numpy(float), d["total"].to_numpy(float)
    ystar = rng.binomial(n.astype(np.int64), y / n, size=(n_bootstrap, len(n))).astype(float)
    succ, fail = ystar > 0, ystar < n
    # Vectorised version of `separation`: the MLE exists iff a failure lies above a success and
    # a success above a failure.
    big = np.inf
    ok = (np.where(fail, x, -big).max(1) > np.where(succ, x, big).min(1)) & \
         (np.where(succ, x, -big).max(1) > np.where(fail, x, big).min(1))
    draws = np.full(n_bootstrap, np.nan)
    if ok.any():
        b0, b1, conv = logistic_mle_batch(x, ystar[ok], n, tuple(fit.params))
        t = np.where(conv & (b1 > 0), -b0 / b1, np.nan)
        draws[ok] = t
    good = np.isfinite(draws)
    return draws[good], int((~good).sum())


def _size_rng(seed: int, size: str) -> np.random.Generator:
    # One stream per size label, so a size's interval does not change when other sizes are added.
    return np.random.default_rng([int(seed), zlib.crc32(size.encode("utf-8"))])


@dataclass
class TakeoffResult:
    """Per-size logistic fits, takeoff ratios and their intervals (``table``)."""

    data: pd.DataFrame
    fits: dict[str, SizeFit]
    table: pd.DataFrame
    boot: dict[str, np.ndarray]
    alpha: float
    n_bootstrap: int
    seed: int
    scale: str
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def sizes(self) -> list[str]:
        return list(self.table["size"])

    @property
    def params(self) -> pd.Series:
        return pd.concat({s: f.params for s, f in self.fits.items()}, names=["size", "term"])

    @property
    def bse(self) -> pd.Series:
        return pd.concat({s: f.bse for s, f in self.fits.items()}, names=["size", "term"])

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        a = self.alpha if alpha is None else alpha
        return pd.concat({s: f.conf_int(a) for s, f in self.fits.items()}, names=["size", "term"])

    def predict(self, df: pd.DataFrame) -> pd.Series:
        """Fitted probability of a correct item for rows with columns ``size`` and ``ratio``."""
        out = np.full(len(df), np.nan)
        for i, (s, r) in enumerate(zip(df["size"], df["ratio"])):
            if s in self.fits:
                out[i] = self.fits[s].predict(r)
        return pd.Series(out, index=df.index, name="p_correct")

    def summary(self) -> pd.DataFrame:
        return self.table


def fit_takeoff(data: pd.DataFrame, *, n_bootstrap: int = 2000, seed: int = 0, alpha: float = 0.05,
                scale: str = "binomial") -> TakeoffResult:
    """Fit every size of a validated table (see `validate_results`); one row per size in ``table``.

    Sizes whose fit is undefined (separation, no increase) stay in the table with NaN estimates and
    the reason in ``note``: they are never given a plausible-looking number.
    """
    if not 0 < alpha < 1:
        raise ParameterError(f"alpha must lie in (0, 1), got {alpha}")
    if n_bootstrap < 1:
        raise ParameterError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    fits, boot, failures, rows = {}, {}, {}, []
    for size in size_order(data):
        d = data[data["size"] == size]
        row = {"size": size, "n_params": float(d["n_params"].iloc[0]), "n_ratios": int(d["ratio"].nunique()),
               "n_items": int(d["total"].sum())}
        try:
            f = fit_size(data, size, scale=scale)
        except FitError as exc:
            failures[size] = str(exc)
            rows.append({**row, "note": str(exc)})
            continue
        fits[size] = f
        delta = f.takeoff_interval(alpha, "delta")
        fiel = f.takeoff_interval(alpha, "fieller")
        draws, failed = bootstrap_takeoff(f, n_bootstrap, _size_rng(seed, size))
        boot[size] = draws
        if failed > MAX_BOOT_FAILED * n_bootstrap or draws.size < 2:
            blo = bhi = float("nan")
        else:
            blo, bhi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
        notes = []
        lo_r, hi_r = d["ratio"].min(), d["ratio"].max()
        if not lo_r <= f.takeoff <= hi_r:
            notes.append(f"50% point outside the measured ratios {lo_r:g}-{hi_r:g} (extrapolated)")
        if failed:
            notes.append(f"{failed} of {n_bootstrap} bootstrap refits undefined"
                         + (" (interval withheld)" if np.isnan(blo) else ""))
        if not fiel.bounded:
            notes.append("Fieller interval unbounded")
        crossing = interpolated_crossing(f.data["ratio"], f.data["correct"], f.data["total"])
        rows.append({**row, "b0": f.params["const"], "b1": f.params["ratio"], "takeoff": f.takeoff,
                     "crossing": crossing,
                     "se_delta": f.takeoff_se, "delta_lo": delta.lower, "delta_hi": delta.upper,
                     "fieller_lo": fiel.lower, "fieller_hi": fiel.upper, "boot_lo": float(blo),
                     "boot_hi": float(bhi), "boot_failed": failed, "deviance": f.deviance,
                     "df_resid": f.df_resid, "dispersion": f.dispersion, "gof_p": f.gof_p,
                     "note": "; ".join(notes)})
    cols = ["size", "n_params", "n_ratios", "n_items", "b0", "b1", "takeoff", "crossing", "se_delta", "delta_lo",
            "delta_hi", "fieller_lo", "fieller_hi", "boot_lo", "boot_hi", "boot_failed", "deviance",
            "df_resid", "dispersion", "gof_p", "note"]
    table = pd.DataFrame(rows).reindex(columns=cols)
    table["note"] = table["note"].fillna("")
    return TakeoffResult(data=data, fits=fits, table=table, boot=boot, alpha=alpha,
                         n_bootstrap=n_bootstrap, seed=seed, scale=scale, failures=failures)


# -- across sizes ---------------------------------------------------------------------------

def _spearman(x, y):
    return stats.spearmanr(x, y).statistic


def rank_correlation(result: TakeoffResult) -> pd.DataFrame:
    """Spearman's rho and Kendall's tau of takeoff against size, with exact permutation p-values.

    With few sizes the t-approximation of `scipy.stats.spearmanr` is poor, so its p-value is the
    exact two-sided permutation p-value (all n! orders for n <= 8, else 100000 random ones);
    Kendall's uses scipy's exact null distribution when there are no ties. The smallest attainable
    two-sided p-value is reported too: with five sizes it is 2/120, so "not significant" partly
    reflects how few sizes there are. Sizes without a takeoff estimate are left out.
    """
    t = result.table.dropna(subset=["takeoff"])
    n = len(t)
    if n < 3:
        raise FitError(f"a rank correlation needs takeoffs for at least 3 sizes; have {n}")
    x, y = t["n_params"].to_numpy(), t["takeoff"].to_numpy()
    perm = stats.permutation_test((y,), lambda v: _spearman(x, v), permutation_type="pairings",
                                  n_resamples=100000 if n > 8 else math.factorial(n),
                                  alternative="two-sided", random_state=np.random.default_rng(result.seed))
    kt = stats.kendalltau(x, y, method="auto")
    min_p = 2.0 / math.factorial(n) if n <= 8 else float("nan")
    return pd.DataFrame([
        {"statistic": "Spearman rho", "value": float(_spearman(x, y)), "p_value": float(perm.pvalue),
         "n_sizes": n, "min_attainable_p": min_p, "method": "exact permutation" if n <= 8 else "Monte Carlo permutation"},
        {"statistic": "Kendall tau-b", "value": float(kt.statistic), "p_value": float(kt.pvalue),
         "n_sizes": n, "min_attainable_p": min_p, "method": "scipy kendalltau (exact when no ties)"},
    ])


def _overlap(a_lo, a_hi, b_lo, b_hi):
    if any(np.isnan(v) for v in (a_lo, a_hi, b_lo, b_hi)):
        return None
    return bool(a_lo <= b_hi and b_lo <= a_hi)


def size_reversals(result: TakeoffResult) -> pd.DataFrame:
    """Adjacent sizes (in size order) whose takeoff is lower for the larger model.

    One row per reversal with both takeoffs, whether their delta-method and bootstrap intervals
    overlap, and a z-test of the difference using the two delta-method standard errors (the sizes
    are fitted on separate runs, so their estimates are independent). Overlapping 95% intervals
    do not imply a non-significant difference; the z-test is the direct comparison.
    """
    t = result.table.dropna(subset=["takeoff"]).reset_index(drop=True)
    rows = []
    for i in range(len(t) - 1):
        a, b = t.iloc[i], t.iloc[i + 1]
        if b["takeoff"] < a["takeoff"]:
            diff = a["takeoff"] - b["takeoff"]
            se = math.hypot(a["se_delta"], b["se_delta"])
            z = diff / se
            rows.append({"smaller": a["size"], "larger": b["size"], "takeoff_smaller": a["takeoff"],
                         "takeoff_larger": b["takeoff"], "difference": diff, "se_difference": se, "z": z,
                         "p_value": float(2 * stats.norm.sf(abs(z))),
                         "delta_overlap": _overlap(a["delta_lo"], a["delta_hi"], b["delta_lo"], b["delta_hi"]),
                         "boot_overlap": _overlap(a["boot_lo"], a["boot_hi"], b["boot_lo"], b["boot_hi"])})
    cols = ["smaller", "larger", "takeoff_smaller", "takeoff_larger", "difference", "se_difference", "z",
            "p_value", "delta_overlap", "boot_overlap"]
    return pd.DataFrame(rows, columns=cols)


def format_p(p: float) -> str:
    """A p-value for prose: 'p = 0.031', 'p < 1e-10' for vanishing ones, 'p undefined' for NaN."""
    if p is None or not np.isfinite(p):
        return "p undefined"
    return "p < 1e-10" if p < 1e-10 else f"p = {p:.2g}"


def describe_reversals(reversals: pd.DataFrame, alpha: float = 0.05, fmt: str = ".2f") -> str:
    """A sentence stating whether the takeoff is monotone in size, chosen from the numbers."""
    if reversals.empty:
        return "The takeoff ratio increases with every step up in size: no adjacent pair of sizes reverses the order."
    parts = []
    for _, r in reversals.iterrows():
        overlap = r["boot_overlap"] if r["boot_overlap"] is not None else r["delta_overlap"]
        how = "their intervals overlap" if overlap else "their intervals do not overlap"
        sig = ("the difference is significant" if r["p_value"] < alpha else "the difference is within noise")
        parts.append(f"{r['larger']} takes off before {r['smaller']} ({r['takeoff_larger']:{fmt}} against "
                     f"{r['takeoff_smaller']:{fmt}}): {how} and {sig}, z-test {format_p(r['p_value'])}")
    return "The takeoff is not monotone in size: " + "; ".join(parts) + "."


# -- is a dip more than noise? ----------------------------------------------------------------

def isotonic_binomial(correct, total) -> np.ndarray:
    """Maximum likelihood non-decreasing success probabilities (cells in ratio order).

    For binomial counts the order-restricted MLE is the weighted isotonic regression of the
    observed proportions with the item counts as weights (Robertson, Wright & Dykstra 1988).
    """
    y, n = np.asarray(correct, float), np.asarray(total, float)
    return np.asarray(optimize.isotonic_regression(y / n, weights=n, increasing=True).x)


def interpolated_crossing(ratio, correct, total, level: float = 0.5) -> float:
    """Where the monotone (isotonic) fit of the observed proportions first reaches `level`.

    Linear interpolation between the two ratios around the crossing; NaN when the fit never
    reaches `level` or starts above it. A shape-free companion to the logistic 50% point.
    """
    x = np.asarray(ratio, float)
    p = isotonic_binomial(correct, total)
    if p[0] >= level or p[-1] < level:
        return float("nan")
    j = int(np.argmax(p >= level))
    return float(x[j - 1] + (level - p[j - 1]) * (x[j] - x[j - 1]) / (p[j] - p[j - 1]))


def _binom_loglik(y, n, p):
    return special.xlogy(y, p) + special.xlogy(n - y, 1 - p)


def monotone_lr(correct, total) -> float:
    """Likelihood-ratio statistic of 'p non-decreasing in ratio' against one free p per ratio."""
    y, n = np.asarray(correct, float), np.asarray(total, float)
    p_sat = y / n
    p_iso = isotonic_binomial(y, n)
    return float(2 * (_binom_loglik(y, n, p_sat) - _binom_loglik(y, n, p_iso)).sum())


@dataclass
class MonotonicityTest:
    """Result of `monotonicity_test` for one size."""

    size: str
    lr: float
    p_value: float
    n_bootstrap: int
    cells: pd.DataFrame
    peak_ratio: float
    dip_ratio: float
    peak_pct: float
    dip_pct: float
    pair_p: float
    n_pairs: int
    pair_p_bonferroni: float

    def verdict(self, alpha: float = 0.05) -> str:
        floor = self.p_value <= 1.0 / (self.n_bootstrap + 1) + 1e-12
        lr_p = (f"likelihood-ratio p = {self.p_value:.2g}, the smallest possible with {self.n_bootstrap} "
                f"bootstrap draws since no draw reached the observed statistic" if floor else
                f"likelihood-ratio p = {self.p_value:.2g}, parametric bootstrap with {self.n_bootstrap} draws")
        if np.isnan(self.peak_ratio):
            return (f"Exact match for {self.size} never drops as the ratio grows: there is no dip to test.")
        dip = (f"the drop from {self.peak_pct:.1f}% at ratio {self.peak_ratio:g} to {self.dip_pct:.1f}% at "
               f"{self.dip_ratio:g}")
        pair = f"Bonferroni-adjusted exact test of that pair {format_p(self.pair_p_bonferroni)}"
        if self.p_value < alpha:
            return (f"For {self.size}, {dip} is more than item-sampling noise: a non-decreasing curve is "
                    f"rejected ({lr_p}; {pair}).")
        return (f"For {self.size}, {dip} is within item-sampling noise: a non-decreasing curve is not rejected "
                f"({lr_p}; {pair}).")


def monotonicity_test(data: pd.DataFrame, size: str, *, n_bootstrap: int = 2000,
                      seed: int = 0) -> MonotonicityTest:
    """Is the exact-match curve of one size non-monotone beyond item-sampling noise?

    Null hypothesis: the probability of a correct item is non-decreasing in the SFT ratio (any
    shape, not only logistic). Alternative: one free probability per ratio. The statistic is the
    likelihood ratio between the unrestricted binomial MLE (observed proportions) and the
    order-restricted MLE (`isotonic_binomial`). Its null distribution is a chi-bar-square mixture
    that depends on the unknown probabilities, so the p-value comes from a parametric bootstrap:
    counts are drawn from the fitted non-decreasing curve and the statistic recomputed,
    ``p = (1 + #{LR* >= LR}) / (B + 1)``.

    Why this test and not the others one might reach for:

    - the deviance of the logistic fit against the saturated model rejects any departure from
      the logistic *shape*, including perfectly monotone asymmetric curves, so it cannot tell a
      dip from a misfit (it is reported per size as ``gof_p`` in `fit_takeoff`);
    - comparing the highest point before the dip with the dip (a two-proportion or exact test)
      is the natural question, but that pair is chosen after looking at the data; it is valid only
      with a correction for the choice. Reported alongside: the one-sided Fisher exact test of
      the most significant reversed pair (earlier ratio higher than a later one), Bonferroni-
      adjusted for the number of ordered pairs that could have been chosen.

    Caveat: each point is typically one fine-tuning run. The test says whether the dip exceeds the
    item-sampling noise of evaluating those runs; it cannot say whether re-running SFT at that
    ratio would reproduce it (that needs replicate runs).
    """
    d = data[data["size"] == size].sort_values("ratio", kind="mergesort")
    if d.empty:
        raise ParameterError(f"no size {size!r} in the data; sizes are {size_order(data)}")
    x = d["ratio"].to_numpy(float)
    y = d["correct"].to_numpy(float)
    n = d["total"].to_numpy(float)
    lr = monotone_lr(y, n)
    p_iso = isotonic_binomial(y, n)
    rng = _size_rng(seed, "monotone:" + size)
    ystar = rng.binomial(n.astype(np.int64), p_iso, size=(n_bootstrap, len(n))).astype(float)
    lr_star = np.array([monotone_lr(row, n) for row in ystar])
    # Tiny tolerance so that draws equal to the observed statistic up to rounding count as ">=".
    p_value = float((1 + np.sum(lr_star >= lr - 1e-9 * max(1.0, lr))) / (n_bootstrap + 1))

    best = (np.nan, np.nan, 1.0)
    n_pairs = len(x) * (len(x) - 1) // 2
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if y[i] / n[i] > y[j] / n[j]:
                p = stats.fisher_exact([[y[i], n[i] - y[i]], [y[j], n[j] - y[j]]], alternative="greater").pvalue
                if p < best[2]:
                    best = (i, j, float(p))
    i, j, pair_p = best
    cells = pd.DataFrame({"ratio": x, "correct": y.astype(int), "total": n.astype(int),
                          "observed_pct": 100 * y / n, "monotone_fit_pct": 100 * p_iso})
    if np.isnan(i):
        peak_r = dip_r = peak_pct = dip_pct = float("nan")
        pair_p = float("nan")
    else:
        i, j = int(i), int(j)
        peak_r, dip_r, peak_pct, dip_pct = x[i], x[j], 100 * y[i] / n[i], 100 * y[j] / n[j]
    return MonotonicityTest(size=size, lr=lr, p_value=p_value, n_bootstrap=n_bootstrap, cells=cells,
                            peak_ratio=float(peak_r), dip_ratio=float(dip_r), peak_pct=float(peak_pct),
                            dip_pct=float(dip_pct), pair_p=pair_p, n_pairs=n_pairs,
                            pair_p_bonferroni=float(min(1.0, pair_p * n_pairs)) if not np.isnan(pair_p) else float("nan"))


MONOTONICITY_LABELS = {"size": "Size", "lr": "LR statistic", "p_value": "p (bootstrap)", "p_holm": "p (Holm)",
                       "peak_ratio": "Peak ratio", "peak_pct": "Peak EM (%)", "dip_ratio": "Dip ratio",
                       "dip_pct": "Dip EM (%)", "pair_p_bonferroni": "Pair exact p (Bonferroni)"}
REVERSAL_LABELS = {"smaller": "Smaller size", "larger": "Larger size", "takeoff_smaller": "Takeoff (smaller)",
                   "takeoff_larger": "Takeoff (larger)", "difference": "Difference", "se_difference": "SE",
                   "z": "z", "p_value": "p", "delta_overlap": "Delta intervals overlap",
                   "boot_overlap": "Bootstrap intervals overlap"}


def monotonicity_table(data: pd.DataFrame, *, n_bootstrap: int = 2000, seed: int = 0) -> pd.DataFrame:
    """`monotonicity_test` for every size, with Holm-adjusted p-values across the sizes tested."""
    from statsmodels.stats.multitest import multipletests
    tests = [monotonicity_test(data, s, n_bootstrap=n_bootstrap, seed=seed) for s in size_order(data)]
    df = pd.DataFrame([{"size": t.size, "lr": t.lr, "p_value": t.p_value, "peak_ratio": t.peak_ratio,
                        "peak_pct": t.peak_pct, "dip_ratio": t.dip_ratio, "dip_pct": t.dip_pct,
                        "pair_p_bonferroni": t.pair_p_bonferroni} for t in tests])
    df.insert(3, "p_holm", multipletests(df["p_value"], method="holm")[1])
    return df


# -- tables and sentences for the chapter ---------------------------------------------------

def _interval_text(lo, hi, fmt=".3f") -> str:
    if np.isnan(lo) or np.isnan(hi):
        return "undefined"
    if np.isinf(lo) or np.isinf(hi):
        return "unbounded"
    return f"[{lo:{fmt}}, {hi:{fmt}}]"


def estimates_table(result: TakeoffResult, fmt: str = ".3f") -> pd.DataFrame:
    """The per-size results as the chapter shows them (intervals as text)."""
    t = result.table
    level = f"{100 * (1 - result.alpha):g}%"
    return pd.DataFrame({
        "Size": t["size"],
        "Takeoff (50% point)": t["takeoff"],
        f"Delta-method {level}": [_interval_text(a, b, fmt) for a, b in zip(t["delta_lo"], t["delta_hi"])],
        f"Bootstrap {level}": [_interval_text(a, b, fmt) for a, b in zip(t["boot_lo"], t["boot_hi"])],
        f"Fieller {level}": [_interval_text(a, b, fmt) for a, b in zip(t["fieller_lo"], t["fieller_hi"])],
        "Interpolated crossing": t["crossing"],
        "Slope (logit per ratio unit)": t["b1"],
        "Pearson dispersion": t["dispersion"],
        "Logistic fit p (deviance)": t["gof_p"],
        "Note": t["note"],
    })


def describe_rank(rank: pd.DataFrame, alpha: float = 0.05) -> str:
    """A sentence on the rank correlation, with its significance chosen from the numbers."""
    s, k = rank.iloc[0], rank.iloc[1]
    direction = "larger models take off later" if s["value"] > 0 else "larger models take off earlier"
    if s["value"] == 0:
        direction = "no tendency either way"
    sig = s["p_value"] < alpha
    text = (f"Across {int(s['n_sizes'])} sizes Spearman's rho is {s['value']:.2f} (exact permutation p = "
            f"{s['p_value']:.3g}) and Kendall's tau-b {k['value']:.2f} (p = {k['p_value']:.3g}): {direction}, ")
    text += "and the rank association is significant." if sig else "but the rank association is not significant"
    if not sig and np.isfinite(s["min_attainable_p"]):
        text += (f"; the smallest p-value {int(s['n_sizes'])} sizes can give is {s['min_attainable_p']:.3g} "
                 f"(a perfect ordering), so the test has little power.")
    elif not sig:
        text += "."
    return text


def describe_fit_quality(result: TakeoffResult, alpha: float = 0.05) -> str:
    """Which sizes the logistic curve does not describe (deviance test), chosen from the numbers."""
    t = result.table.dropna(subset=["gof_p"])
    bad = t[t["gof_p"] < alpha]
    if bad.empty:
        return (f"The logistic curve is not rejected for any size (deviance goodness-of-fit p >= {alpha:g} "
                f"throughout), so its intervals can be read at face value.")
    names = ", ".join(f"{r['size']} ({format_p(r['gof_p'])}, dispersion {r['dispersion']:.1f})" for _, r in bad.iterrows())
    return (f"The logistic curve is rejected for {names}. For these sizes the estimate is the 50% point of the "
            f"best logistic approximation, which need not be where the true curve crosses 50%; all three "
            f"intervals measure only item-sampling noise around that approximation (the GLM intervals also "
            f"assume the logistic variance, the bootstrap does not). The interpolated crossing of the monotone "
            f"fit in the table does not assume a shape.")


def truth_comparison(result: TakeoffResult, truth: Mapping[str, float]) -> pd.DataFrame:
    """Estimated against true takeoffs (for simulated data): is each truth inside each interval?"""
    rows = []
    for _, r in result.table.iterrows():
        if r["size"] not in truth:
            continue
        tv = float(truth[r["size"]])
        inside = lambda lo, hi: bool(lo <= tv <= hi) if np.isfinite(lo) and np.isfinite(hi) else None  # noqa: E731
        rows.append({"size": r["size"], "true_takeoff": tv, "estimate": r["takeoff"], "error": r["takeoff"] - tv,
                     "in_delta": inside(r["delta_lo"], r["delta_hi"]), "in_bootstrap": inside(r["boot_lo"], r["boot_hi"]),
                     "in_fieller": inside(r["fieller_lo"], r["fieller_hi"])})
    return pd.DataFrame(rows, columns=["size", "true_takeoff", "estimate", "error", "in_delta", "in_bootstrap",
                                       "in_fieller"])


def describe_truth(comparison: pd.DataFrame) -> str:
    """A sentence on how many true takeoffs the intervals cover (simulated data)."""
    if comparison.empty:
        return "The data are not a bundled simulation, so there is no ground truth to compare with."
    n = len(comparison)
    cover = {k: int(comparison[c].fillna(False).sum()) for k, c in
             (("delta-method", "in_delta"), ("bootstrap", "in_bootstrap"), ("Fieller", "in_fieller"))}
    missed = comparison[~comparison["in_bootstrap"].fillna(False).astype(bool)]["size"].tolist()
    text = ("The data are simulated, so the true 50% points are known: the intervals contain the truth for "
            + ", ".join(f"{v} of {n} sizes ({k})" for k, v in cover.items())
            + f"; the largest estimation error is {comparison['error'].abs().max():.3f} ratio units")
    if missed:
        text += f". Missed by the bootstrap interval: {', '.join(missed)}"
    return text + "."


# -- figures ----------------------------------------------------------------------------------

SHAPES = ["square", "circle", "diamond", "triangle-up", "cross", "triangle-down", "wedge", "stroke"]
DASHES = [[1, 0], [7, 3], [7, 2, 2, 2], [2, 2], [10, 4], [4, 4, 1, 4], [12, 2], [1, 3]]


def _size_scales(order: Sequence[str]):
    k = len(order)
    cyc = lambda seq: [seq[i % len(seq)] for i in range(k)]  # noqa: E731
    return (alt.Scale(domain=list(order), range=cyc(figures.PALETTE)),
            alt.Scale(domain=list(order), range=cyc(SHAPES)),
            alt.Scale(domain=list(order), range=cyc(DASHES)))


def curves_chart(result: TakeoffResult, *, ratio_title: str = "SFT ratio", alpha: float = 0.05,
                 n_grid: int = 200) -> alt.LayerChart:
    """Exact match (%) against ratio: observed points with Wilson intervals, fitted logistic curves.

    One colour, marker shape and line dash per size, sizes ordered from small to large.
    """
    from statsmodels.stats.proportion import proportion_confint
    data = result.data
    order = size_order(data)
    color, shape, dash = _size_scales(order)
    lo, hi = proportion_confint(data["correct"], data["total"], alpha=alpha, method="wilson")
    pts = pd.DataFrame({"size": data["size"], "ratio": data["ratio"], "em": 100 * data["correct"] / data["total"],
                        "lo": 100 * np.asarray(lo), "hi": 100 * np.asarray(hi),
                        "items": data["correct"].astype(str) + "/" + data["total"].astype(str)})
    curves = []
    for s, f in result.fits.items():
        grid = np.linspace(f.data["ratio"].min(), f.data["ratio"].max(), n_grid)
        curves.append(pd.DataFrame({"size": s, "ratio": grid, "em": 100 * f.predict(grid)}))
    curve = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=["size", "ratio", "em"])
    x = alt.X("ratio:Q", title=ratio_title, scale=alt.Scale(zero=False, nice=False))
    y = alt.Y("em:Q", title="Exact match (%)", scale=alt.Scale(domain=[0, 100]))
    legend = alt.Legend(title="Model size", orient="right", symbolSize=80, symbolStrokeWidth=2)
    lines = alt.Chart(curve).mark_line(strokeWidth=2).encode(
        x=x, y=y, color=alt.Color("size:N", scale=color, legend=legend, sort=order),
        strokeDash=alt.StrokeDash("size:N", scale=dash, legend=legend, sort=order),
        detail="size:N")
    bars = alt.Chart(pts).mark_rule(strokeWidth=1, opacity=0.6).encode(
        x=x, y="lo:Q", y2="hi:Q", color=alt.Color("size:N", scale=color, legend=None))
    points = alt.Chart(pts).mark_point(size=60, filled=True, opacity=0.9).encode(
        x=x, y=y, color=alt.Color("size:N", scale=color, legend=legend, sort=order),
        shape=alt.Shape("size:N", scale=shape, legend=legend, sort=order),
        tooltip=["size:N", "ratio:Q", alt.Tooltip("em:Q", format=".1f", title="exact match (%)"), "items:N"])
    return alt.layer(lines, bars, points).properties(width=figures.WIDTH, height=figures.HEIGHT)


def takeoff_size_chart(result: TakeoffResult, *, interval: str = "bootstrap",
                       ratio_title: str = "SFT ratio") -> alt.LayerChart:
    """Takeoff ratio against model size (log axis) with interval bars; sizes without an estimate are omitted."""
    cols = {"bootstrap": ("boot_lo", "boot_hi"), "delta": ("delta_lo", "delta_hi"),
            "fieller": ("fieller_lo", "fieller_hi")}
    if interval not in cols:
        raise ParameterError(f"interval must be one of {sorted(cols)}, got {interval!r}")
    lo, hi = cols[interval]
    t = result.table.dropna(subset=["takeoff"])
    df = pd.DataFrame({"size": t["size"], "n_params": t["n_params"], "takeoff": t["takeoff"],
                       "lo": t[lo], "hi": t[hi]})
    domain, ticks = axes.log_axis(df["n_params"], base=10)
    x = alt.X("n_params:Q", title="Model size (parameters, log scale)",
              scale=alt.Scale(type="log", domain=domain, nice=False),
              axis=alt.Axis(values=ticks, labelExpr=axes.SI_LABEL, grid=True))
    y = alt.Y("takeoff:Q", title=f"Takeoff (50% exact match), {ratio_title}", scale=alt.Scale(zero=False))
    base = alt.Chart(df)
    pts = base.mark_point(size=70, filled=False, strokeWidth=1.5, color=figures.PALETTE[0]).encode(
        x=x, y=y, tooltip=["size:N", alt.Tooltip("takeoff:Q", format=".3f"),
                           alt.Tooltip("lo:Q", format=".3f", title=f"{interval} lower"),
                           alt.Tooltip("hi:Q", format=".3f", title=f"{interval} upper")])
    bars = base.mark_errorbar(ticks=True, color=figures.PALETTE[1], thickness=1.5).encode(
        x=x, y=alt.Y("lo:Q", title=f"Takeoff (50% exact match), {ratio_title}"), y2="hi:Q")
    labels = base.mark_text(align="left", dx=9, dy=-9, fontSize=11).encode(x=x, y=y, text="size:N")
    return alt.layer(pts, bars, labels).properties(width=figures.WIDTH, height=figures.HEIGHT)
