"""Benchmark score against model size: trend, outliers, effective size, flattening.

Input: one row per model with ``model``, ``params`` (billions of parameters) and ``score``
(schema ``size_scores`` in ``data/datasets.yml``). The regressor is ``log2(params)``, so every
slope reads as score points per doubling of parameters.

- `fit_size_regression` fits the trend three ways (statsmodels): OLS; a robust M-estimator (RLM
  with Huber's T norm, which down-weights models far off the line instead of letting them pull
  it); and a quantile regression at a high quantile (default q = 0.9) that traces the upper edge
  of the cloud ("what the best models of a size reach"). With few models the quantile fit rests
  on one or two points and its standard errors (statsmodels' kernel sandwich) are rough.
- Prediction intervals for a new model of a given size come from the OLS fit
  (``get_prediction(...).summary_frame``, ``obs_ci_*``).
- Outliers (`SizeRegression.outliers`): externally studentised residuals (each model's residual
  scaled by the residual spread of the fit without it), with a two-sided t-test per model and a
  Bonferroni adjustment for testing every model (statsmodels ``outlier_test``). A model is
  flagged only if its adjusted p-value is below ``alpha``: the highlighted point in the figure is
  chosen by this test, never by name.
- Effective size (`SizeRegression.effective_sizes`): the size at which the OLS line reaches the
  model's score, ``2 ** ((score - b0) / b1)``, with a **Fieller** interval (inverse prediction on
  the log2 scale, t critical value with the OLS residual df; see `inverse_prediction`). When the
  slope is not significantly positive the interval is unbounded and is reported as such.
  ``kind="prediction"`` adds the residual variance (treating the score as one noisy draw: which
  sizes are compatible with a model scoring this much), ``leave_one_out=True`` refits without the
  model so that an outlier does not pull the line towards itself.
- Flattening (`SizeRegression.flattening`): a hinge term ``max(0, log2(params) - log2(knot))``
  added to the OLS fit; its coefficient is the change in slope past the knot (default 16B),
  tested with a t-test. The test's power depends on how many models lie past the knot; the result
  reports that count and the smallest slope change detectable with 80% power.

A straight line in log2(params) is a description, not a law: benchmark accuracy is bounded below
by chance and above by 100, so over wide size ranges the trend bends for reasons of scale alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import altair as alt
import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.outliers_influence import OLSInfluence

from . import axes, figures, inverse_prediction, paths, tables
from .errors import DataError, FitError, ParameterError

SCHEMA = "size_scores"
TERMS = ["const", "log2_params"]


# -- input ------------------------------------------------------------------------------------

def validate_scores(df: pd.DataFrame, *, source: str = "table", columns: Mapping[str, str] | None = None,
                    params_scale: float = 1.0, score_scale: float = 1.0,
                    drop_missing: bool = False) -> pd.DataFrame:
    """Validate a score table and return columns model, params (billions), score, log2_params.

    ``params_scale`` multiplies the size column into billions (1.0 if it already holds billions,
    1e-9 for raw counts, 1e-3 for millions); ``score_scale`` multiplies the score (100 turns
    fractions into percent). With ``drop_missing`` rows with an empty size or score are dropped
    (their number is kept in ``attrs["dropped"]``); otherwise they are an error.
    """
    for name, v in (("params_scale", params_scale), ("score_scale", score_scale)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ParameterError(f"{name} must be a positive number, got {v!r}")
    columns = dict(columns or {})
    df = df.copy()
    df.columns = [str(c).strip() for c in df.columns]
    dropped = 0
    if drop_missing:
        need = [columns.get(c, c) for c in ("params", "score")]
        present = [c for c in need if c in df.columns]
        keep = df[present].notna().all(axis=1) if present else pd.Series(True, index=df.index)
        dropped = int((~keep).sum())
        df = df[keep].reset_index(drop=True)
    d = tables.validate(df, SCHEMA, source=source, columns=columns)
    if len(d) < 3:
        raise DataError(f"{source}: a size regression needs at least 3 models; the table has {len(d)}")
    out = pd.DataFrame({"model": d["model"].astype(str), "params": d["params"] * params_scale,
                        "score": d["score"] * score_scale})
    if out["params"].nunique() < 2:
        raise DataError(f"{source}: column '{columns.get('params', 'params')}' holds a single size; "
                        f"a trend against size needs at least two distinct sizes")
    out["log2_params"] = np.log2(out["params"])
    out.attrs["dropped"] = dropped
    return out


def load_scores(path, *, model_col: str = "model", params_col: str = "params", score_col: str = "score",
                params_scale: float = 1.0, score_scale: float = 1.0, drop_missing: bool = False) -> pd.DataFrame:
    """Read and validate a score table (see `validate_scores`)."""
    raw = tables.read_table(path)
    return validate_scores(raw, source=paths.display_path(paths.resolve(path)),
                           columns={"model": model_col, "params": params_col, "score": score_col},
                           params_scale=params_scale, score_scale=score_scale, drop_missing=drop_missing)


def _design(log2_params) -> pd.DataFrame:
    x = np.asarray(log2_params, float)
    return pd.DataFrame({"const": np.ones_like(x), "log2_params": x})


# -- results ----------------------------------------------------------------------------------

@dataclass
class FlatteningTest:
    """Slope change past a knot (hinge term in the OLS fit)."""

    knot: float
    n_beyond: int
    slope_before: float
    slope_change: float
    se_change: float
    t: float
    df: float
    p_value: float
    slope_after: float
    slope_after_lo: float
    slope_after_hi: float
    change_lo: float
    change_hi: float
    mde80: float
    alpha: float
    note: str
    fit: object | None = None

    def verdict(self) -> str:
        k = f"{self.knot:g}B"
        if self.n_beyond == 0:
            return f"Whether the trend flattens past {k} cannot be tested: no model in the table is larger than {k}."
        few = (f" Only {self.n_beyond} model lies past {k}, so the hinge coefficient is fixed by that one model: "
               f"the test asks whether it sits off the line." if self.n_beyond == 1 else "")
        power = (f" With {self.n_beyond} model{'s' if self.n_beyond != 1 else ''} past {k}, only a slope change larger "
                 f"than about {self.mde80:.2g} points per doubling would be detected with 80% power.")
        change = (f"the slope changes by {self.slope_change:+.2f} points per doubling past {k} "
                  f"({100 * (1 - self.alpha):g}% CI {self.change_lo:+.2f} to {self.change_hi:+.2f}; p = {self.p_value:.3g})")
        if self.p_value < self.alpha:
            word = "flattens" if self.slope_change < 0 else "steepens"
            return f"The trend {word} past {k}: {change}.{few}"
        return f"No significant change of slope past {k}: {change}.{few}{power}"


@dataclass
class SizeRegression:
    """OLS, robust (Huber RLM) and quantile fits of score on log2(params); see the module docstring."""

    data: pd.DataFrame
    ols: object
    rlm: object
    quantreg: object
    quantile: float
    alpha: float = 0.05

    @property
    def params(self) -> pd.Series:
        return pd.Series(np.asarray(self.ols.params), index=TERMS)

    @property
    def bse(self) -> pd.Series:
        return pd.Series(np.asarray(self.ols.bse), index=TERMS)

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        ci = np.asarray(self.ols.conf_int(alpha=self.alpha if alpha is None else alpha))
        return pd.DataFrame(ci, index=TERMS, columns=["lower", "upper"])

    def predict(self, params_b) -> np.ndarray:
        """OLS mean score at sizes given in billions."""
        b0, b1 = self.params
        return b0 + b1 * np.log2(np.asarray(params_b, float))

    def coefficients(self, alpha: float | None = None) -> pd.DataFrame:
        """Intercept and slope (points per doubling) of the three fits with intervals."""
        a = self.alpha if alpha is None else alpha
        rows = []
        qbw = getattr(self.quantreg, "bandwidth", None)
        for name, res, se_kind in (("OLS", self.ols, "classical"),
                                   ("Robust (Huber RLM)", self.rlm, "Huber sandwich (H1)"),
                                   (f"Quantile q={self.quantile:g}", self.quantreg,
                                    "kernel sandwich" + (f", bandwidth {qbw:.3g}" if qbw is not None else ""))):
            ci = np.asarray(res.conf_int(alpha=a))
            for k, term in enumerate(("intercept", "slope per doubling")):
                rows.append({"method": name, "term": term, "estimate": float(np.asarray(res.params)[k]),
                             "se": float(np.asarray(res.bse)[k]), "lower": ci[k, 0], "upper": ci[k, 1],
                             "p_value": float(np.asarray(res.pvalues)[k]), "se_method": se_kind})
        return pd.DataFrame(rows)

    def summary(self) -> pd.DataFrame:
        return self.coefficients()

    def prediction(self, params_b, alpha: float | None = None) -> pd.DataFrame:
        """OLS mean with its confidence band and the prediction band, plus the RLM and quantile lines."""
        a = self.alpha if alpha is None else alpha
        p = np.asarray(params_b, float)
        X = _design(np.log2(p))
        sf = self.ols.get_prediction(X).summary_frame(alpha=a)
        return pd.DataFrame({"params": p, "log2_params": np.log2(p), "mean": sf["mean"].to_numpy(),
                             "mean_lo": sf["mean_ci_lower"].to_numpy(), "mean_hi": sf["mean_ci_upper"].to_numpy(),
                             "obs_lo": sf["obs_ci_lower"].to_numpy(), "obs_hi": sf["obs_ci_upper"].to_numpy(),
                             "rlm": np.asarray(self.rlm.predict(X)), "quantreg": np.asarray(self.quantreg.predict(X))})

    def outliers(self, alpha: float | None = None) -> pd.DataFrame:
        """Per model: fitted value, residual, externally studentised residual, raw and Bonferroni p."""
        a = self.alpha if alpha is None else alpha
        infl = OLSInfluence(self.ols)
        ot = self.ols.outlier_test(method="bonferroni", alpha=a)
        d = self.data
        out = pd.DataFrame({"model": d["model"], "params": d["params"], "score": d["score"],
                            "fitted": np.asarray(self.ols.fittedvalues), "residual": np.asarray(self.ols.resid),
                            "student_resid": np.asarray(infl.resid_studentized_external),
                            "unadj_p": ot["unadj_p"].to_numpy(), "bonf_p": ot["bonferroni(p)"].to_numpy(),
                            "rlm_weight": np.asarray(self.rlm.weights)})
        out["outlier"] = out["bonf_p"] < a
        return out

    def effective_sizes(self, alpha: float | None = None, *, kind: str = "mean",
                        leave_one_out: bool = False) -> pd.DataFrame:
        """Per model: the size (billions) at which the OLS line reaches its score, with a Fieller interval."""
        if kind not in ("mean", "prediction"):
            raise ParameterError(f"kind must be 'mean' or 'prediction', got {kind!r}")
        a = self.alpha if alpha is None else alpha
        d = self.data.reset_index(drop=True)
        rows = []
        lo_p, hi_p = d["params"].min(), d["params"].max()
        for i, r in d.iterrows():
            res = self.ols
            if leave_one_out:
                keep = np.arange(len(d)) != i
                res = sm.OLS(d["score"][keep].to_numpy(), _design(d["log2_params"][keep])).fit()
            b0, b1 = (float(v) for v in np.asarray(res.params))
            crit = stats.t.ppf(1 - a / 2, res.df_resid)
            extra = float(res.scale) if kind == "prediction" else 0.0
            iv = inverse_prediction.fieller(b0, b1, np.asarray(res.cov_params()), crit, level=r["score"],
                                            extra_var=extra).transform(lambda v: 2.0 ** v)
            note = ""
            if iv.bounded and not lo_p <= iv.estimate <= hi_p:
                note = "beyond the sizes in the table (extrapolated)"
            rows.append({"model": r["model"], "params": r["params"], "score": r["score"],
                         "effective_params": iv.estimate if b1 != 0 else float("nan"),
                         "effective_lo": iv.lower, "effective_hi": iv.upper,
                         "ratio_to_actual": iv.estimate / r["params"] if b1 != 0 else float("nan"),
                         "interval": iv.describe(".3g"), "bounded": iv.bounded,
                         "gap_lo": iv.excluded[0] if iv.excluded else float("nan"),
                         "gap_hi": iv.excluded[1] if iv.excluded else float("nan"), "note": note})
        return pd.DataFrame(rows)

    def flattening(self, knot: float = 16.0, alpha: float | None = None) -> FlatteningTest:
        """Test a change of slope past ``knot`` billion parameters (see the module docstring)."""
        a = self.alpha if alpha is None else alpha
        if not knot > 0:
            raise ParameterError(f"knot must be a positive size in billions, got {knot!r}")
        d = self.data
        hinge = np.maximum(0.0, d["log2_params"].to_numpy() - math.log2(knot))
        n_beyond = int((hinge > 0).sum())
        b1 = float(self.params["log2_params"])
        nan = float("nan")
        if n_beyond == 0:
            return FlatteningTest(knot, 0, b1, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, a,
                                  f"no model is larger than {knot:g}B")
        n_before = int(d.loc[hinge == 0, "log2_params"].nunique())
        if n_before < 2 or len(d) < 4:
            raise FitError(f"the flattening test needs at least two distinct sizes up to {knot:g}B and four models; "
                           f"have {n_before} sizes and {len(d)} models")
        X = _design(d["log2_params"])
        X["hinge"] = hinge
        res = sm.OLS(d["score"].to_numpy(), X).fit()
        change, se = float(res.params["hinge"]), float(res.bse["hinge"])
        df = float(res.df_resid)
        crit = stats.t.ppf(1 - a / 2, df)
        after = res.t_test([0, 1, 1])
        after_ci = np.asarray(after.conf_int(alpha=a)).ravel()
        ci = np.asarray(res.conf_int(alpha=a).loc["hinge"])
        note = "only one model past the knot" if n_beyond == 1 else ""
        return FlatteningTest(knot=knot, n_beyond=n_beyond, slope_before=float(res.params["log2_params"]),
                              slope_change=change, se_change=se, t=float(res.tvalues["hinge"]), df=df,
                              p_value=float(res.pvalues["hinge"]),
                              slope_after=float(np.asarray(after.effect).ravel()[0]),
                              slope_after_lo=float(after_ci[0]), slope_after_hi=float(after_ci[1]),
                              change_lo=float(ci[0]), change_hi=float(ci[1]),
                              mde80=float((crit + stats.t.ppf(0.8, df)) * se), alpha=a, note=note, fit=res)


def models_table(fit: "SizeRegression", effective: pd.DataFrame, rows: int | None = None,
                 alpha: float | None = None) -> pd.DataFrame:
    """Per-model table for the chapter, largest |studentised residual| first.

    The effective size is shown only where its interval is bounded: with an unbounded interval
    the point estimate carries no information and is replaced by a dash.
    """
    out = fit.outliers(alpha).merge(effective[["model", "effective_params", "interval", "bounded", "note"]],
                                    on="model", how="left")
    out = out.reindex(out["student_resid"].abs().sort_values(ascending=False, kind="mergesort").index)
    eff = [f"{v:.3g}" if b else "-" for v, b in zip(out["effective_params"], out["bounded"])]
    table = pd.DataFrame({"Model": out["model"], "Size (B)": out["params"], "Score": out["score"],
                          "Fitted": out["fitted"], "Studentised residual": out["student_resid"],
                          "p": out["unadj_p"], "p (Bonferroni)": out["bonf_p"], "Effective size (B)": eff,
                          "Effective-size interval (B)": out["interval"], "Note": out["note"]})
    return table.head(rows).reset_index(drop=True) if rows else table.reset_index(drop=True)


def describe_model(fit: "SizeRegression", effective: pd.DataFrame, model: str, alpha: float | None = None) -> str:
    """Outlier test and effective size of one named model, in a sentence chosen from the numbers."""
    a = fit.alpha if alpha is None else alpha
    out = fit.outliers(a).set_index("model")
    if model not in out.index:
        return f"The table has no model named '{model}'."
    o, e = out.loc[model], effective.set_index("model").loc[model]
    verdict = ("an outlier by the Bonferroni test" if o["outlier"]
               else f"not an outlier by the Bonferroni test at {a:g}")
    text = (f"{model} ({o['params']:.3g}B, score {o['score']:.1f}) lies {abs(o['residual']):.1f} points "
            f"{'above' if o['residual'] > 0 else 'below'} the least-squares line: studentised residual "
            f"{o['student_resid']:.2f}, unadjusted p = {o['unadj_p']:.3g}, Bonferroni p = {min(1.0, o['bonf_p']):.3g}; "
            f"it is {verdict}. ")
    if e["bounded"]:
        text += (f"Its effective size is {e['effective_params']:.3g}B ({100 * (1 - a):g}% interval "
                 f"{e['interval']}), {e['ratio_to_actual']:.2g} times its actual size.")
    else:
        where = (f" (at most {e['gap_lo']:.3g}B or at least {e['gap_hi']:.3g}B)" if np.isfinite(e["gap_lo"])
                 else " (no size is excluded)")
        text += (f"Its effective size cannot be stated: the line's slope is not distinguishable from zero, so "
                 f"the set of sizes at which the line is compatible with its score is unbounded{where}.")
    return text


def fit_size_regression(data: pd.DataFrame, *, quantile: float = 0.9, alpha: float = 0.05) -> SizeRegression:
    """Fit OLS, Huber RLM and quantile regression of score on log2(params) for a validated table."""
    if not 0 < quantile < 1:
        raise ParameterError(f"quantile must lie in (0, 1), got {quantile}")
    if not 0 < alpha < 1:
        raise ParameterError(f"alpha must lie in (0, 1), got {alpha}")
    y = data["score"].to_numpy(float)
    X = _design(data["log2_params"])
    ols = sm.OLS(y, X).fit()
    rlm = sm.RLM(y, X, M=sm.robust.norms.HuberT()).fit()
    qr = sm.QuantReg(y, X).fit(q=quantile)
    if not np.all(np.isfinite(np.asarray(qr.bse))):
        # Hall-Sheather's bandwidth reaches past q = 0 or 1 for small n at extreme quantiles, which
        # leaves the sparsity (and so the standard errors) undefined; Bofinger's is wider.
        qr = sm.QuantReg(y, X).fit(q=quantile, bandwidth="bofinger")
    return SizeRegression(data=data.reset_index(drop=True), ols=ols, rlm=rlm, quantreg=qr,
                          quantile=quantile, alpha=alpha)


# -- figure -----------------------------------------------------------------------------------

def scatter_chart(fit: SizeRegression, *, params_title: str = "Parameters (billions, log scale)",
                  score_title: str = "Score", label: str = "auto", max_labels: int = 30,
                  alpha: float | None = None) -> alt.LayerChart:
    """Score against size on a base-2 log axis: labelled points, Bonferroni outliers highlighted,
    the OLS line with its confidence band and prediction band, and the RLM and quantile lines.

    ``label``: ``"all"`` labels every model, ``"outliers"`` only flagged ones plus the largest
    residuals, ``"auto"`` labels all when there are at most ``max_labels`` models.
    """
    a = fit.alpha if alpha is None else alpha
    out = fit.outliers(a)
    domain, ticks = axes.log_axis(out["params"], base=2, pad=0.4)
    grid = np.exp(np.linspace(np.log(domain[0]), np.log(domain[1]), 120))
    pred = fit.prediction(grid, a)
    lines = pd.concat([
        pd.DataFrame({"params": grid, "score": pred["mean"], "fit": "OLS"}),
        pd.DataFrame({"params": grid, "score": pred["rlm"], "fit": "Robust (Huber)"}),
        pd.DataFrame({"params": grid, "score": pred["quantreg"], "fit": f"Quantile q={fit.quantile:g}"}),
    ], ignore_index=True)
    fits_order = ["OLS", "Robust (Huber)", f"Quantile q={fit.quantile:g}"]
    x = alt.X("params:Q", title=params_title, scale=alt.Scale(type="log", base=2, domain=domain, nice=False),
              axis=alt.Axis(values=ticks, format="~g"))
    y = alt.Y("score:Q", title=score_title, scale=alt.Scale(zero=False))
    pband = alt.Chart(pred).mark_area(opacity=0.12, color="#777777").encode(
        x=x, y=alt.Y("obs_lo:Q", title=score_title), y2="obs_hi:Q")
    mband = alt.Chart(pred).mark_area(opacity=0.28, color=figures.PALETTE[0]).encode(
        x=x, y=alt.Y("mean_lo:Q", title=score_title), y2="mean_hi:Q")
    line = alt.Chart(lines).mark_line(color="#333333", strokeWidth=1.8).encode(
        x=x, y=y, strokeDash=alt.StrokeDash("fit:N", sort=fits_order, title="Fit",
                                            scale=alt.Scale(domain=fits_order, range=[[1, 0], [7, 3], [2, 2]])),
        detail="fit:N")
    flagged, other = f"Bonferroni p < {a:g}", "not significant"
    status_order = [flagged, other]
    pts = out.assign(status=np.where(out["outlier"], flagged, other))
    points = alt.Chart(pts).mark_point(filled=True, size=70, opacity=0.95).encode(
        x=x, y=y, color=alt.Color("status:N", title="Outlier test", sort=status_order,
                                  scale=alt.Scale(domain=status_order, range=[figures.PALETTE[1], figures.PALETTE[0]])),
        tooltip=["model:N", alt.Tooltip("params:Q", format=".3g"), alt.Tooltip("score:Q", format=".1f"),
                 alt.Tooltip("student_resid:Q", format=".2f"), alt.Tooltip("bonf_p:Q", format=".3g")])
    if label == "all" or (label == "auto" and len(pts) <= max_labels):
        lab = pts
    elif label in ("auto", "outliers"):
        top = pts["student_resid"].abs().sort_values(ascending=False).index[:5]
        lab = pts[pts["outlier"] | pts.index.isin(top)]
    else:
        raise ParameterError(f"label must be 'all', 'outliers' or 'auto', got {label!r}")
    lab = label_positions(lab, y_span=float(np.ptp(out["score"])) or 1.0)
    text = dict(x=x, y=y, text="model:N",
                color=alt.Color("status:N", sort=status_order, legend=None,
                                scale=alt.Scale(domain=status_order, range=[figures.PALETTE[1], "#333333"])))
    right = alt.Chart(lab[lab["side"] == "right"]).mark_text(align="left", dx=7, dy=-6, fontSize=10).encode(**text)
    left = alt.Chart(lab[lab["side"] == "left"]).mark_text(align="right", dx=-7, dy=-6, fontSize=10).encode(**text)
    labels = alt.layer(right, left)
    return alt.layer(pband, mband, line, points, labels).resolve_scale(color="independent").properties(
        width=figures.WIDTH, height=figures.HEIGHT)


def label_positions(points: pd.DataFrame, y_span: float, min_gap: float = 0.04) -> pd.DataFrame:
    """Merge labels of points at identical coordinates and alternate sides for near neighbours.

    Points at the same size whose scores are within ``min_gap * y_span`` of the previous label on
    the right get their label on the left, so that labels of stacked points do not overprint.
    """
    merged = (points.groupby(["params", "score"], sort=False, as_index=False)
              .agg(model=("model", " / ".join), status=("status", "first")))
    merged = merged.sort_values(["params", "score"], ascending=[True, False], kind="mergesort")
    sides, last = [], {}
    for p, s in zip(merged["params"], merged["score"]):
        prev = last.get(p)
        side = "left" if prev is not None and prev[1] == "right" and abs(prev[0] - s) < min_gap * y_span else "right"
        sides.append(side)
        last[p] = (s, side)
    return merged.assign(side=sides).reset_index(drop=True)
