"""Loss curves across model size and a third factor (seed 002): tables, the joint law, panel statistics, charts.

The chapter `notebooks/loss_curves.md` fits one law L(N, D, T) to every checkpoint of every training run:
the Chinchilla form in parameters N and tokens D (`scaling.fit_chinchilla`), with the third factor T entering as a
covariate that multiplies chosen terms by T^gamma. This module loads the curves (the bundled simulated table, any
table with the same columns, or the over-training testbed of Gadre et al. 2024), restricts the fit to the part of
training a Chinchilla law describes (tokens >= `min_tokens`), and computes what the chapter reports: per-panel bias
and error of the fitted curves, an extrapolation test that refits without the largest model, and the
compute-optimal allocation.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from . import axes, figures, paths, scaling, tables
from .errors import DataError

SCHEMA = "loss_curves"


# -- loading -----------------------------------------------------------------------------

def load_overtrain_gadre2024(folder: str | Path, *, val_data: str = "val_tok_mult/openlm") -> pd.DataFrame:
    """Final losses of the 104 models of Gadre et al. (2024), one row per model.

    Columns: model, dataset (training set), N (`hyperparameters.params`), tokens (`hyperparameters.tokens`),
    multiplier (tokens / 20 N) and loss (the final loss on the evaluation set whose identifier contains
    `val_data`; by default the in-distribution `val_tok_mult/openlm` set).
    """
    root = paths.resolve(folder)
    shown = paths.display_path(root)
    files = sorted((root / "models").glob("*.json"))
    if not files:
        raise DataError(f"{shown}: no models/*.json files; expected the over-training testbed folder "
                        f"(mlfoundations/scaling exp_data) with one JSON file per model")
    rows = []
    for path in files:
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            hp = rec["hyperparameters"]
            hits = [r for r in rec["results"] if any(val_data in str(v) for v in np.atleast_1d(r["val_data"]))]
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise DataError(f"{shown}/models/{path.name}: not a model record ({exc})") from None
        if len(hits) != 1:
            raise DataError(f"{shown}/models/{path.name}: {len(hits)} evaluations match val_data '{val_data}'; "
                            f"expected exactly one")
        rows.append({"model": rec["name"], "dataset": rec["dataset_name"], "N": float(hp["params"]),
                     "tokens": float(hp["tokens"]), "multiplier": float(hp["chinchilla_multiplier"]),
                     "loss": float(hits[0]["loss"])})
    df = pd.DataFrame(rows)
    df.attrs["source"] = shown
    return df


def load_curves(path: str | Path, *, data_format: str = "table", run_col: str = "run", factor_col: str = "T_m",
                n_col: str = "N", tokens_col: str = "tokens", loss_col: str = "loss",
                val_data: str = "val_tok_mult/openlm") -> pd.DataFrame:
    """Read loss curves into canonical columns run, N, tokens, loss, plus the factor under its own name.

    `data_format` "table": a CSV/TSV/JSONL table validated against the `loss_curves` schema (column names
    mapped by the `*_col` arguments; `run_col` or `factor_col` may be "" when the table has none). A numeric
    factor must be positive (it enters the law as factor^gamma); a text factor is kept as labels.
    "overtrain-gadre2024": the folder of per-model JSON files of Gadre et al. (2024), via
    `load_overtrain_gadre2024` (each model is its own run; `factor_col` "dataset" names the training set).
    """
    if data_format == "overtrain-gadre2024":
        raw = load_overtrain_gadre2024(path, val_data=val_data)
        source = raw.attrs["source"]
        df = raw.rename(columns={"model": "run"})
        keep = ["run", "N", "tokens", "loss"] + ([factor_col] if factor_col else [])
        missing = [c for c in keep if c not in df.columns]
        if missing:
            raise DataError(f"{source}: the over-training records have no column {missing}; factor_col can be "
                            f"'dataset', 'multiplier' or ''")
        df = df[keep]
    elif data_format == "table":
        raw = tables.read_table(path)
        source = paths.display_path(paths.resolve(path))
        mapping = {"N": n_col, "tokens": tokens_col, "loss": loss_col}
        if run_col:
            mapping["run"] = run_col
        numeric_factor = bool(factor_col) and factor_col in raw.columns and pd.api.types.is_numeric_dtype(raw[factor_col])
        if numeric_factor:
            mapping["T_m"] = factor_col
        elif factor_col and factor_col not in raw.columns:
            raise DataError(f"{source}: factor column '{factor_col}' not found; the file has {list(raw.columns)}. "
                            f"Pass factor_col=\"\" for curves without a third factor.")
        df = tables.validate(raw, SCHEMA, source=source, columns=mapping)
        if numeric_factor:
            df = df.rename(columns={"T_m": factor_col})
        elif factor_col:
            labels = raw[factor_col]
            tables.check_rows(labels.isna().to_numpy(), source, f"column '{factor_col}' must label every row")
            df[factor_col] = labels.astype(str).str.strip().to_numpy()
        if run_col and run_col not in raw.columns:
            raise DataError(f"{source}: run column '{run_col}' not found; pass run_col=\"\" to treat each distinct "
                            f"(factor, N) as one run")
        if not run_col:
            parts = [df[factor_col].astype(str)] if factor_col else []
            df["run"] = [" / ".join(p) for p in zip(*(parts + [df["N"].map(size_label)]))]
        df = df[["run", "N", "tokens", "loss"] + ([factor_col] if factor_col else [])]
        dup = df.duplicated(["run", "tokens"], keep=False).to_numpy()
        tables.check_rows(dup, source, "each run may have one checkpoint per token count")
        sizes = df.groupby("run")["N"].nunique()
        tables.check_rows(df["run"].map(sizes).to_numpy() > 1, source, "a run must have a single model size N")
    else:
        raise DataError(f"unknown data_format {data_format!r}: use 'table' or 'overtrain-gadre2024'")
    df = df.sort_values(([factor_col] if factor_col else []) + ["N", "run", "tokens"], kind="stable")
    df = df.reset_index(drop=True)
    df.attrs["source"] = source
    return df


def size_label(n: float) -> str:
    """53e6 -> '53M', 1.36e9 -> '1.36B' (3 significant digits)."""
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.3g}"


# -- the joint law -----------------------------------------------------------------------

def fit_rows(curves: pd.DataFrame, min_tokens: float) -> pd.DataFrame:
    """The checkpoints the law is fitted to: tokens >= min_tokens (and > 0, where the law is defined)."""
    rows = curves[(curves["tokens"] >= min_tokens) & (curves["tokens"] > 0)].reset_index(drop=True)
    rows.attrs["source"] = curves.attrs.get("source", "the curves")
    return rows


def fit_law(curves: pd.DataFrame, *, factor: str | None, factor_terms=("E", "A", "B"), min_tokens: float = 1e9,
            huber_delta: float = scaling.DEFAULT_HUBER_DELTA, starts="hoffmann", n_bootstrap: int = 0,
            seed: int = 0, resample: str = "run") -> scaling.ChinchillaFit:
    """One law L(N, D, factor) fitted to every checkpoint with tokens >= min_tokens.

    `resample` "run" resamples whole runs in the bootstrap (checkpoints of a run are dependent);
    "row" resamples checkpoints as if independent (too narrow, shown only for comparison).
    """
    rows = fit_rows(curves, min_tokens)
    covariates = {factor: list(factor_terms)} if factor and factor_terms else None
    return scaling.fit_chinchilla(rows, n="N", d="tokens", loss="loss", huber_delta=huber_delta, starts=starts,
                                  n_bootstrap=n_bootstrap, seed=seed, covariates=covariates,
                                  clusters="run" if resample == "run" else None)


def predict_curves(curves: pd.DataFrame, fit: scaling.ChinchillaFit, min_tokens: float) -> pd.DataFrame:
    """The observed (Real) and fitted (Pred) loss at every checkpoint the law covers."""
    rows = fit_rows(curves, min_tokens)
    return rows.assign(pred=fit.predict(rows))


def _draw_predictions(fit: scaling.ChinchillaFit, rows: pd.DataFrame) -> np.ndarray:
    """Predicted loss at `rows` under every bootstrap draw, (n_draws, n_rows)."""
    d = fit._need_draws()
    p = d[list(fit.params.index)].to_numpy()
    names = list(fit.params.index)
    logn, logd = np.log(rows["N"].to_numpy()), np.log(rows["tokens"].to_numpy())
    E = p[:, [names.index("E")]] * np.ones(len(rows))
    A = p[:, [names.index("A")]] * np.ones(len(rows))
    B = p[:, [names.index("B")]] * np.ones(len(rows))
    E, A, B = scaling.scale_terms(E, A, B, fit.covariates, lambda c: p[:, [names.index(c.name)]],
                                  lambda c: rows[c.column].to_numpy()[None, :])
    alpha, beta = p[:, [names.index("alpha")]], p[:, [names.index("beta")]]
    with np.errstate(over="ignore", invalid="ignore"):
        return E + A * np.exp(-alpha * logn[None, :]) + B * np.exp(-beta * logd[None, :])


def panel_table(pred: pd.DataFrame, fit: scaling.ChinchillaFit, *, factor: str | None,
                alpha: float = 0.05) -> pd.DataFrame:
    """Per panel (factor level x size): mean and final bias (Pred - Real), mean absolute and relative error.

    The interval of the mean bias is the bootstrap percentile interval of the fitted curve's mean offset from
    the observed points (the uncertainty of the law, not of the observations).
    """
    keys = ([factor] if factor else []) + ["N"]
    boot = _draw_predictions(fit, pred) if fit.draws is not None else None
    out = []
    for key, g in pred.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        err = g["pred"].to_numpy() - g["loss"].to_numpy()
        last = g.loc[g["tokens"].idxmax()]
        row = dict(zip(keys, key))
        row.update({"size": size_label(row["N"]), "points": len(g), "mean_bias": float(err.mean())})
        if boot is not None:
            mb = (boot[:, g.index.to_numpy()] - g["loss"].to_numpy()[None, :]).mean(axis=1)
            row["bias_lower"], row["bias_upper"] = (float(q) for q in np.nanquantile(mb, [alpha / 2, 1 - alpha / 2]))
        row.update({"final_real": float(last["loss"]), "final_pred": float(last["pred"]),
                    "final_bias": float(last["pred"] - last["loss"]), "mae": float(np.abs(err).mean()),
                    "mape_pct": float(100 * np.abs(err / g["loss"].to_numpy()).mean())})
        out.append(row)
    table = pd.DataFrame(out)
    # A factor given in whole numbers (T_m = 2, 4, 8) reads as such, not as 2.000.
    if factor and pd.api.types.is_float_dtype(table[factor]) and (table[factor] % 1 == 0).all():
        table[factor] = table[factor].astype("int64")
    return table


def params_table(fit: scaling.ChinchillaFit, row_fit: scaling.ChinchillaFit | None = None, *,
                 truth: dict | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """The law's parameters: estimate, run-bootstrap interval, and (optionally) the row-bootstrap interval
    and the generating value."""
    t = fit.params_table(alpha).rename(columns={"lower": "run_lower", "upper": "run_upper"})
    if row_fit is not None:
        ci = row_fit.conf_int(alpha)
        t["row_lower"], t["row_upper"] = ci["lower"].to_numpy(), ci["upper"].to_numpy()
    if truth is not None:
        t["truth"] = [truth.get(p, np.nan) for p in t["parameter"]]
        t["truth_inside"] = (t["run_lower"] <= t["truth"]) & (t["truth"] <= t["run_upper"])
        if row_fit is not None:
            t["truth_inside_rows"] = (t["row_lower"] <= t["truth"]) & (t["truth"] <= t["row_upper"])
    return t


def simulated_truth(curves_path: str | Path, factor: str | None) -> dict | None:
    """The generating parameters, in the fit's names, when the data are the bundled simulated curves."""
    from . import sources
    from .simulate import loss_curves as sim
    found = sources.registered_entry(curves_path)
    if found is None or found[0] != "loss_curves" or factor != "T_m":
        return None
    t = sim.TRUTH
    return {"E": t["E"], "A": t["A"], "B": t["B"], "alpha": t["alpha"], "beta": t["beta"],
            "gamma_E[T_m]": t["gamma_E"], "gamma_A[T_m]": t["gamma_A"], "gamma_B[T_m]": 0.0}


# -- extrapolation -----------------------------------------------------------------------

@dataclass
class Extrapolation:
    held_out_size: float
    full: scaling.ChinchillaFit  # fitted to every size
    fit: scaling.ChinchillaFit  # fitted without the held-out size
    table: pd.DataFrame  # per held-out panel: errors of the extrapolation and of the full fit
    pred: pd.DataFrame  # held-out checkpoints with pred_full, pred_extrap, lower, upper
    mape_pct: float
    mape_full_pct: float
    final_bias: float
    final_inside: float  # share of held-out panels whose final observed loss lies inside the prediction interval


def extrapolation_test(curves: pd.DataFrame, full: scaling.ChinchillaFit, *, factor: str | None,
                       factor_terms=("E", "A", "B"), min_tokens: float = 1e9,
                       huber_delta: float = scaling.DEFAULT_HUBER_DELTA, starts="hoffmann", n_bootstrap: int = 0,
                       seed: int = 0, alpha: float = 0.05) -> Extrapolation:
    """Refit without the largest model size and predict its curves."""
    largest = float(curves["N"].max())
    if curves["N"].nunique() < 3:
        raise DataError(f"{curves.attrs.get('source', 'the curves')}: an extrapolation test needs at least three "
                        f"model sizes (two to fit the exponent, one to predict)")
    train = curves[curves["N"] < largest].reset_index(drop=True)
    train.attrs["source"] = curves.attrs.get("source", "the curves")
    fit = fit_law(train, factor=factor, factor_terms=factor_terms, min_tokens=min_tokens, huber_delta=huber_delta,
                  starts=starts, n_bootstrap=n_bootstrap, seed=seed)
    held = fit_rows(curves[curves["N"] == largest], min_tokens)
    held = held.assign(pred_full=full.predict(held), pred_extrap=fit.predict(held))
    if fit.draws is not None:
        boot = _draw_predictions(fit, held)
        held["lower"], held["upper"] = np.nanquantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    else:
        held["lower"] = held["upper"] = np.nan
    rows = []
    keys = [factor] if factor else []
    for key, g in (held.groupby(keys, sort=True) if keys else [((), held)]):
        last = g.loc[g["tokens"].idxmax()]
        e = g["pred_extrap"] - g["loss"]
        ef = g["pred_full"] - g["loss"]
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row.update({"size": size_label(largest), "points": len(g), "final_real": float(last["loss"]),
                    "final_pred": float(last["pred_extrap"]), "final_lower": float(last["lower"]),
                    "final_upper": float(last["upper"]), "final_bias": float(last["pred_extrap"] - last["loss"]),
                    "mean_bias": float(e.mean()), "mape_pct": float(100 * (e.abs() / g["loss"]).mean()),
                    "mape_full_pct": float(100 * (ef.abs() / g["loss"]).mean())})
        rows.append(row)
    table = pd.DataFrame(rows)
    inside = ((table["final_lower"] <= table["final_real"]) & (table["final_real"] <= table["final_upper"])).mean()
    err = (held["pred_extrap"] - held["loss"]).abs() / held["loss"]
    err_full = (held["pred_full"] - held["loss"]).abs() / held["loss"]
    return Extrapolation(largest, full, fit, table, held, float(100 * err.mean()), float(100 * err_full.mean()),
                         float(table["final_bias"].mean()), float(inside))


# -- compute-optimal allocation ----------------------------------------------------------------

def allocation_table(fit: scaling.ChinchillaFit, curves: pd.DataFrame, *, factor: str | None,
                     multiples=(1.0, 10.0, 100.0), alpha: float = 0.05) -> pd.DataFrame:
    """N_opt, D_opt and the loss they reach at multiples of the largest run's compute (6 N D), per factor level."""
    c_max = float((6 * curves["N"] * curves["tokens"]).max())
    levels = sorted(curves[factor].unique()) if factor else [None]
    out = []
    for level in levels:
        cov = {factor: level} if factor else None
        t = fit.compute_optimal([c_max * m for m in multiples], covariates=cov, alpha=alpha)
        t.insert(0, "multiple", list(multiples))
        if factor:
            t.insert(0, factor, level)
        out.append(t)
    return pd.concat(out, ignore_index=True)


# -- charts --------------------------------------------------------------------------------

SERIES = ["Real", "Pred"]


def _factor_label(factor: str | None, value) -> str:
    if not factor:
        return "all runs"
    return f"{factor} = {value:g}" if isinstance(value, (int, float, np.floating)) else f"{factor} = {value}"


def _ordered_labels(df: pd.DataFrame, factor: str | None) -> tuple[list[str], list[str]]:
    rows = [_factor_label(factor, v) for v in (sorted(df[factor].unique()) if factor else [None])]
    cols = [f"N = {size_label(n)}" for n in sorted(df["N"].unique())]
    return rows, cols


def _tokens_scale(tokens: pd.Series, max_ticks: int = 6) -> tuple[alt.Scale, alt.Axis, str, bool]:
    """A log axis when the tokens span more than two decades (and none is 0), else a linear one from 0."""
    positive = tokens[tokens > 0]
    if (tokens > 0).all() and positive.max() / positive.min() > 100:
        domain, ticks = axes.log_axis(positive / 1e9, pad=0.15, max_ticks=max_ticks)
        return (alt.Scale(type="log", domain=domain, nice=False), alt.Axis(values=ticks, format="~g"),
                "Tokens (B, log scale)", True)
    return alt.Scale(domain=[0, float(tokens.max()) / 1e9], nice=False), alt.Axis(), "Tokens (B)", False


def curve_grid(curves: pd.DataFrame, fit: scaling.ChinchillaFit, *, factor: str | None, min_tokens: float,
               sizes=None, log: bool = False, points: int = 80) -> pd.DataFrame:
    """The fitted law on a dense token grid for every panel (factor level x size), over the fitted token range."""
    fitted = fit_rows(curves, min_tokens)["tokens"]
    lo, hi = float(fitted.min()), float(curves["tokens"].max())
    grid = np.geomspace(lo, hi, points) if log else np.linspace(lo, hi, points)
    levels = sorted(curves[factor].unique()) if factor else [None]
    sizes = sorted(curves["N"].unique()) if sizes is None else sizes
    frames = []
    for level in levels:
        for n in sizes:
            f = pd.DataFrame({"N": float(n), "tokens": grid})
            if factor:
                f[factor] = level
            frames.append(f)
    out = pd.concat(frames, ignore_index=True)
    out["loss"] = fit.predict(out)
    return out


def _panel_keys(df: pd.DataFrame, factor: str | None) -> tuple[list[str], list[str]]:
    rows = [_factor_label(factor, v) for v in (df[factor] if factor else [None] * len(df))]
    cols = [f"N = {size_label(n)}" for n in df["N"]]
    return rows, cols


def panels_chart(curves: pd.DataFrame, fit: scaling.ChinchillaFit, *, factor: str | None,
                 min_tokens: float) -> alt.FacetChart:
    """Seed 002's figure: one panel per (factor, size), observed loss (Real, solid) and the single fitted law
    (Pred, dashed) against training tokens. Pred is drawn over the token range the law was fitted to."""
    xscale, xaxis, xtitle, log = _tokens_scale(curves["tokens"], max_ticks=3)
    per_run = curves.groupby("run")["tokens"].transform("size")
    real = curves.assign(series="Real")
    pr, pc = _panel_keys(real, factor)
    real["panel_row"], real["panel_col"] = pr, pc
    # A run with one point (a separately trained model) joins the others of its panel into one line.
    real["line"] = np.where(per_run > 1, real["run"], real["panel_row"] + " | " + real["panel_col"])
    pred = curve_grid(curves, fit, factor=factor, min_tokens=min_tokens, log=log).assign(series="Pred")
    pr, pc = _panel_keys(pred, factor)
    pred["panel_row"], pred["panel_col"] = pr, pc
    pred["line"] = "Pred"
    cols = ["panel_row", "panel_col", "line", "series", "tokens_b", "loss"]
    long = pd.concat([real, pred], ignore_index=True).assign(tokens_b=lambda d: d["tokens"] / 1e9)[cols]
    rows, columns = _ordered_labels(curves, factor)
    color = alt.Color("series:N", scale=alt.Scale(domain=SERIES, range=figures.PALETTE[:2]),
                      legend=alt.Legend(title=None, orient="top", symbolType="stroke"))
    dash = alt.StrokeDash("series:N", scale=alt.Scale(domain=SERIES, range=[[1, 0], [6, 3]]), legend=None)
    x = alt.X("tokens_b:Q", scale=xscale, axis=xaxis, title=xtitle)
    y = alt.Y("loss:Q", title="Total loss", scale=alt.Scale(zero=True))
    line = alt.Chart().mark_line(strokeWidth=1.6).encode(
        x=x, y=y, color=color, strokeDash=dash, detail="line:N",
        tooltip=["panel_row:N", "panel_col:N", "series:N",
                 alt.Tooltip("tokens_b:Q", format=".3g", title="tokens (B)"), alt.Tooltip("loss:Q", format=".3f")])
    layers = [line]
    if per_run.max() <= 20:  # sparse panels: mark the observations
        layers.append(alt.Chart().mark_point(size=20, filled=True, opacity=0.9).encode(
            x=x, y=y, color=color).transform_filter(alt.datum.series == "Real"))
    return alt.layer(*layers, data=long).properties(width=130, height=105).facet(
        row=alt.Row("panel_row:N", sort=rows, title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
        column=alt.Column("panel_col:N", sort=columns, title=None),
    )


def extrapolation_chart(curves: pd.DataFrame, ex: Extrapolation, *, factor: str | None, min_tokens: float,
                        alpha: float = 0.05) -> alt.FacetChart:
    """The held-out size, one panel per factor level: observed loss (Real), the law fitted to all sizes, and the law
    fitted without the held-out size (its extrapolation) with the bootstrap interval of that fitted curve."""
    held = curves[curves["N"] == ex.held_out_size]
    xscale, xaxis, xtitle, log = _tokens_scale(curves["tokens"])
    extrap = f"Pred (fitted without {size_label(ex.held_out_size)})"
    order = ["Real", "Pred (fitted to all sizes)", extrap]
    grid = curve_grid(curves, ex.full, factor=factor, min_tokens=min_tokens, sizes=[ex.held_out_size], log=log)
    grid = grid.rename(columns={"loss": order[1]})
    grid[extrap] = ex.fit.predict(grid)
    if ex.fit.draws is not None:
        boot = _draw_predictions(ex.fit, grid)
        grid["lower"], grid["upper"] = np.nanquantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    else:
        grid["lower"] = grid["upper"] = np.nan
    grid["panel"] = _panel_keys(grid, factor)[0]
    lines = grid.melt(id_vars=["panel", "tokens", "lower", "upper"], value_vars=order[1:], var_name="series",
                      value_name="value")
    real = held.assign(series="Real", value=held["loss"], lower=np.nan, upper=np.nan)
    real["panel"] = _panel_keys(real, factor)[0]
    long = pd.concat([real[["panel", "tokens", "lower", "upper", "series", "value"]], lines], ignore_index=True)
    long["tokens_b"] = long["tokens"] / 1e9
    panels = [_factor_label(factor, v) for v in (sorted(curves[factor].unique()) if factor else [None])]
    x = alt.X("tokens_b:Q", scale=xscale, axis=xaxis, title=xtitle)
    fitted = long[long["tokens"] >= min_tokens]
    values = fitted[["value", "lower", "upper"]].to_numpy(dtype=float)
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    pad = 0.05 * (hi - lo) if hi > lo else 0.05
    yscale = alt.Scale(domain=[lo - pad, hi + pad], zero=False, nice=False)
    band = alt.Chart().mark_area(opacity=0.22, color=figures.PALETTE[2]).encode(
        x=x, y=alt.Y("lower:Q", scale=yscale, title="Total loss"), y2="upper:Q",
    ).transform_filter(alt.datum.series == extrap)
    line = alt.Chart().mark_line(strokeWidth=1.8, clip=True).encode(
        x=x, y=alt.Y("value:Q", scale=yscale, title="Total loss"),
        color=alt.Color("series:N", scale=alt.Scale(domain=order, range=figures.PALETTE[:3]),
                        legend=alt.Legend(title=None, orient="top", symbolType="stroke")),
        strokeDash=alt.StrokeDash("series:N", scale=alt.Scale(domain=order, range=[[1, 0], [6, 3], [2, 2]]),
                                  legend=None),
        tooltip=["panel:N", "series:N", alt.Tooltip("tokens_b:Q", format=".3g", title="tokens (B)"),
                 alt.Tooltip("value:Q", format=".3f", title="loss")])
    points = alt.Chart().mark_point(size=26, filled=True, color=figures.PALETTE[0], clip=True).encode(
        x=x, y=alt.Y("value:Q", scale=yscale)).transform_filter(alt.datum.series == "Real")
    layers = [band, line] + ([points] if len(held) <= 20 * len(panels) else [])
    return alt.layer(*layers, data=long[long["tokens"] >= min_tokens]).properties(width=220, height=170).facet(
        column=alt.Column("panel:N", sort=panels, title=None))


# -- sentences the chapter quotes (chosen by the numbers, never typed by hand) ----------------------

SEED_BIAS = (0.1, 0.5)  # seed 002: Pred sat 0.1-0.5 above Real at small N


def describe_bias(table: pd.DataFrame, factor: str | None) -> str:
    """How far the fitted curves sit from the observed ones, and whether the seed's bias pattern appears."""
    worst = table.loc[table["mean_bias"].abs().idxmax()]
    where = (f"{_factor_label(factor, worst[factor])}, " if factor else "") + f"N = {worst['size']}"
    above = table[table["mean_bias"] >= SEED_BIAS[0]]
    text = (f"The largest mean offset of a fitted curve from its panel is {worst['mean_bias']:+.3f} ({where}); "
            f"mean absolute errors per panel run from {table['mae'].min():.3f} to {table['mae'].max():.3f}.")
    if "bias_lower" in table:
        excl = table[(table["bias_lower"] > 0) | (table["bias_upper"] < 0)]
        text += (f" In {len(excl)} of {len(table)} panels the bootstrap interval of the mean offset excludes zero"
                 + (", but by less than 0.05 in every case." if len(excl) and excl["mean_bias"].abs().max() < 0.05
                    else "."))
    if above.empty:
        text += (f" The seed's pattern, Pred {SEED_BIAS[0]:g} to {SEED_BIAS[1]:g} above Real at small N, does not "
                 f"appear: no panel's fitted curve sits {SEED_BIAS[0]:g} or more above the observations.")
    else:
        text += (f" As in the seed, the fitted curve sits {SEED_BIAS[0]:g} or more above the observations in "
                 f"{len(above)} panel(s), at N = {', '.join(above.sort_values('N')['size'].unique())}.")
    return text


def describe_intervals(table: pd.DataFrame, curves: pd.DataFrame) -> str:
    """How much wider intervals get when whole runs are resampled rather than checkpoints."""
    if "row_lower" not in table:
        return ""
    if curves.groupby("run").size().max() == 1:
        return ("Each run contributes a single point here, so resampling runs and resampling points are the same "
                "scheme; the two columns differ only by bootstrap noise.")
    ratio = (table["run_upper"] - table["run_lower"]) / (table["row_upper"] - table["row_lower"])
    ratio = ratio[np.isfinite(ratio)]
    return (f"Resampling whole runs gives intervals {ratio.min():.1f} to {ratio.max():.1f} times as wide as "
            f"resampling checkpoints (median {ratio.median():.1f}): checkpoints along one run share the model and its "
            f"noise, and treating them as independent would overstate the precision of every parameter.")


def describe_extrapolation(ex: Extrapolation, confidence: float) -> str:
    held = size_label(ex.held_out_size)
    n_inside = int(round(ex.final_inside * len(ex.table)))
    worse = ex.mape_pct / ex.mape_full_pct if ex.mape_full_pct > 0 else np.inf
    return (f"Fitted without the {held} runs, the law predicts their curves with a mean absolute error of "
            f"{ex.mape_pct:.2f}% ({worse:.1f} times the {ex.mape_full_pct:.2f}% of the law fitted to all sizes); "
            f"its final-checkpoint predictions are off by {ex.final_bias:+.3f} on average, and the observed final "
            f"loss lies inside the {100 * confidence:g}% interval of the extrapolated curve in {n_inside} of "
            f"{len(ex.table)} panel(s).")


def describe_truth(table: pd.DataFrame, level: str) -> str:
    """Coverage of the generating values, when the data are simulated from known parameters."""
    if "truth" not in table:
        return ""
    text = (f"The data are simulated from known parameters (the table's last columns): "
            f"{int(table['truth_inside'].sum())} of {len(table)} generating values lie inside their {level} "
            f"run-bootstrap intervals")
    if "truth_inside_rows" in table:
        text += f", {int(table['truth_inside_rows'].sum())} inside the checkpoint-bootstrap ones"
    return text + "."
