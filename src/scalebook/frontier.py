"""Compute-optimal frontiers of training runs and their power-law projections (seed 003).

Given loss-versus-compute curves of several training runs per method, the frontier of a
method is the lower envelope of its runs: at each compute on a log-spaced grid, the lowest
loss any run reaches there (runs interpolated linearly in log-log space, never extrapolated).
The envelope is trusted only between the first and the last point where the best run changes:
before the first change it is the smallest run while still under-trained, after the last change
the largest run's over-trained tail; neither is compute-optimal, and keeping them biases E up
and alpha up (on the bundled data, noise-free, E 0.86 instead of 0.10). Each method's trimmed
frontier is fitted with L(C) = E + (C0 / C)^alpha by `scaling.fit_power_law`.

Points along one run are strongly dependent, so uncertainty comes from a bootstrap over
*runs*: resample each method's runs with replacement, recompute the envelope, refit. The
same draws give intervals for derived quantities (the compute each method needs to reach a
loss, and the ratio between methods). Whether the exponents differ is tested by permuting
method labels across runs (an exact-in-distribution test under exchangeable runs), beside the
bootstrap interval of the difference.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import altair as alt
import numpy as np
import pandas as pd

from . import figures, scaling, tables
from .scaling import inverse_power_law as _inverse
from .errors import DataError, FitError

SCHEMA = "loss_compute_runs"


def load_runs(path, *, method_col="method", run_col="run", compute_col="compute", loss_col="loss") -> pd.DataFrame:
    """Read and validate a table of runs; returns canonical columns method, run, compute, loss."""
    df = tables.load_table(path, SCHEMA, columns={"method": method_col, "run": run_col,
                                                  "compute": compute_col, "loss": loss_col})
    source = str(path)
    counts = df.groupby(["method", "run"]).size()
    short = counts[counts < 2]
    if len(short):
        raise DataError(f"{source}: every run needs at least two points to interpolate; "
                        f"run(s) {', '.join(f'{m}/{r}' for m, r in short.index)} have one")
    n_runs = df.groupby("method")["run"].nunique()
    few = n_runs[n_runs < 2]
    if len(few):
        raise DataError(f"{source}: each method needs at least two runs for an envelope and a bootstrap over "
                        f"runs; {', '.join(few.index)} has {int(few.iloc[0])}")
    return df[["method", "run", "compute", "loss"]].sort_values(["method", "run", "compute"]).reset_index(drop=True)


def compute_grid(df: pd.DataFrame, n_grid: int) -> np.ndarray:
    """A log-spaced compute grid spanning all methods' runs (shared, so envelopes are comparable)."""
    return np.geomspace(df["compute"].min(), df["compute"].max(), n_grid)


def _run_arrays(df: pd.DataFrame, method: str) -> list[tuple[np.ndarray, np.ndarray]]:
    sub = df[df["method"] == method]
    return [(np.log(g["compute"].to_numpy()), np.log(g["loss"].to_numpy())) for _, g in sub.groupby("run", sort=True)]


def _envelope(runs: list[tuple[np.ndarray, np.ndarray]], log_grid: np.ndarray) -> np.ndarray:
    """Log loss of the trimmed lower envelope on the grid; NaN outside the trusted range."""
    vals = np.full((len(runs), len(log_grid)), np.inf)
    for k, (lc, ll) in enumerate(runs):
        inside = (log_grid >= lc[0]) & (log_grid <= lc[-1])
        vals[k, inside] = np.interp(log_grid[inside], lc, ll)
    best, which = vals.min(axis=0), vals.argmin(axis=0)
    covered = np.flatnonzero(np.isfinite(best))
    switches = [j for a, j in zip(covered[:-1], covered[1:]) if which[j] != which[a]]
    out = np.full(log_grid.shape, np.nan)
    if len(switches) >= 2:
        out[switches[0]:switches[-1] + 1] = best[switches[0]:switches[-1] + 1]
    return out


def lower_envelope(df: pd.DataFrame, *, n_grid: int = 40) -> pd.DataFrame:
    """The frontier of each method on a shared log grid: columns method, compute, loss."""
    grid = compute_grid(df, n_grid)
    out = []
    for method in sorted(df["method"].unique()):
        env = _envelope(_run_arrays(df, method), np.log(grid))
        ok = np.isfinite(env)
        if ok.sum() < 4:
            raise DataError(f"method '{method}': its runs form a frontier over fewer than 4 grid points (the best "
                            f"run must change at least twice along compute); add runs or raise n_grid")
        out.append(pd.DataFrame({"method": method, "compute": grid[ok], "loss": np.exp(env[ok])}))
    return pd.concat(out, ignore_index=True)


@dataclass
class FrontierFits:
    """Power-law projections of each method's frontier, with run-bootstrap draws."""

    fits: dict[str, "scaling.PowerLawFit"]
    envelope: pd.DataFrame
    draws: pd.DataFrame  # one row per (method, draw): E, C0, alpha
    n_bootstrap: int
    seed: int
    alpha_level: float = 0.05
    permutation: dict = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        return list(self.fits)

    def params(self) -> pd.DataFrame:
        """Point estimates and percentile intervals of E, C0 and alpha per method."""
        rows = []
        lo, hi = self.alpha_level / 2, 1 - self.alpha_level / 2
        for m, fit in self.fits.items():
            d = self.draws[self.draws["method"] == m]
            for p in ("E", "C0", "alpha"):
                rows.append({"method": m, "parameter": p, "estimate": float(fit.params[p]),
                             "lower": float(d[p].quantile(lo)), "upper": float(d[p].quantile(hi))})
        return pd.DataFrame(rows)

    def predict(self, compute) -> pd.DataFrame:
        c = np.asarray(compute, dtype=float)
        return pd.concat([pd.DataFrame({"method": m, "compute": c, "loss": fit.predict(c)})
                          for m, fit in self.fits.items()], ignore_index=True)

    def compute_to_reach(self, losses) -> pd.DataFrame:
        """Compute each method needs to reach each target loss, with percentile intervals."""
        lo, hi = self.alpha_level / 2, 1 - self.alpha_level / 2
        rows = []
        for m, fit in self.fits.items():
            d = self.draws[self.draws["method"] == m]
            for target in losses:
                boot = _inverse(d["E"].to_numpy(), d["C0"].to_numpy(), d["alpha"].to_numpy(), target)
                est = float(_inverse(fit.params["E"], fit.params["C0"], fit.params["alpha"], target))
                reach = np.isfinite(boot).mean()
                rows.append({"method": m, "target_loss": target, "compute": est,
                             "lower": float(np.nanquantile(boot, lo)) if reach > 0 else np.nan,
                             "upper": float(np.nanquantile(boot, hi)) if reach > 0 else np.nan,
                             "share_reachable": float(reach)})
        return pd.DataFrame(rows)

    def compute_ratio(self, losses, numerator: str, denominator: str) -> pd.DataFrame:
        """C_numerator(L) / C_denominator(L) with a bootstrap interval (independent resamples per method).

        A target below a method's fitted E is unreachable for it: the ratio is then undefined (NaN),
        and `share_defined` says in what share of the bootstrap draws it was defined.
        """
        lo, hi = self.alpha_level / 2, 1 - self.alpha_level / 2
        a = self.draws[self.draws["method"] == numerator].sort_values("draw")
        b = self.draws[self.draws["method"] == denominator].sort_values("draw")
        fa, fb = self.fits[numerator].params, self.fits[denominator].params
        rows = []
        for target in losses:
            ra = _inverse(a["E"].to_numpy(), a["C0"].to_numpy(), a["alpha"].to_numpy(), target)
            rb = _inverse(b["E"].to_numpy(), b["C0"].to_numpy(), b["alpha"].to_numpy(), target)
            ratio = ra / rb
            est = _inverse(fa["E"], fa["C0"], fa["alpha"], target) / _inverse(fb["E"], fb["C0"], fb["alpha"], target)
            ok = np.isfinite(ratio)
            rows.append({"target_loss": target, "ratio": float(est),
                         "lower": float(np.quantile(ratio[ok], lo)) if ok.any() else np.nan,
                         "upper": float(np.quantile(ratio[ok], hi)) if ok.any() else np.nan,
                         "share_defined": float(ok.mean())})
        out = pd.DataFrame(rows)
        out["contains_one"] = (out["lower"] <= 1) & (out["upper"] >= 1)
        return out

    def exponent_difference(self, a: str, b: str) -> dict:
        """alpha_a - alpha_b: estimate, bootstrap interval and the permutation p-value."""
        lo, hi = self.alpha_level / 2, 1 - self.alpha_level / 2
        da = self.draws[self.draws["method"] == a].sort_values("draw")["alpha"].to_numpy()
        db = self.draws[self.draws["method"] == b].sort_values("draw")["alpha"].to_numpy()
        diff = da - db
        out = {"estimate": float(self.fits[a].params["alpha"] - self.fits[b].params["alpha"]),
               "lower": float(np.quantile(diff, lo)), "upper": float(np.quantile(diff, hi))}
        out.update(self.permutation)
        return out


def _fit_envelope(grid_c: np.ndarray, env_log: np.ndarray, huber_delta: float, warm=None):
    ok = np.isfinite(env_log)
    frame = pd.DataFrame({"compute": grid_c[ok], "loss": np.exp(env_log[ok])})
    kwargs = {"x": "compute", "y": "loss", "huber_delta": huber_delta}
    if warm is not None:
        kwargs["starts"] = warm
    return scaling.fit_power_law(frame, **kwargs)


def fit_frontiers(df: pd.DataFrame, *, n_bootstrap: int = 1000, n_permutations: int = 500, seed: int = 0,
                  n_grid: int = 40, huber_delta: float = 1e-3, alpha_level: float = 0.05) -> FrontierFits:
    """Fit each method's frontier; bootstrap over runs; permutation test of equal exponents."""
    rng = np.random.default_rng(seed)
    grid = compute_grid(df, n_grid)
    log_grid = np.log(grid)
    methods = sorted(df["method"].unique())
    runs = {m: _run_arrays(df, m) for m in methods}
    fits = {}
    for m in methods:
        fit = _fit_envelope(grid, _envelope(runs[m], log_grid), huber_delta)
        if not fit.converged:
            raise FitError(f"the power-law fit of method '{m}' did not converge; the frontier may be too short "
                           f"or not decreasing")
        fits[m] = fit
    draws = []
    for m in methods:
        warm = _warm_starts(fits[m])
        k = len(runs[m])
        for b in range(n_bootstrap):
            pick = rng.integers(0, k, size=k)
            fit = _fit_envelope(grid, _envelope([runs[m][i] for i in pick], log_grid), huber_delta, warm)
            draws.append({"method": m, "draw": b, **{p: float(fit.params[p]) for p in ("E", "C0", "alpha")}})
    draws = pd.DataFrame(draws, columns=["method", "draw", "E", "C0", "alpha"])
    result = FrontierFits(fits, lower_envelope(df, n_grid=n_grid), draws, n_bootstrap, seed, alpha_level)
    if len(methods) == 2 and n_permutations > 0:
        result.permutation = _permutation_test(runs, methods, grid, huber_delta, fits, n_permutations, rng)
    return result


def _warm_starts(fit) -> np.ndarray:
    return scaling.power_law_starts_near(fit)


def _permutation_test(runs, methods, grid, huber_delta, fits, n_perm, rng) -> dict:
    """Permute method labels across runs; p = share of |alpha_a - alpha_b| at least the observed one."""
    a, b = methods
    pooled = runs[a] + runs[b]
    n_a = len(runs[a])
    log_grid = np.log(grid)
    observed = abs(fits[a].params["alpha"] - fits[b].params["alpha"])
    warm = np.vstack([_warm_starts(fits[a]), _warm_starts(fits[b])])
    hits = 0
    for _ in range(n_perm):
        order = rng.permutation(len(pooled))
        ga = [pooled[i] for i in order[:n_a]]
        gb = [pooled[i] for i in order[n_a:]]
        fa = _fit_envelope(grid, _envelope(ga, log_grid), huber_delta, warm)
        fb = _fit_envelope(grid, _envelope(gb, log_grid), huber_delta, warm)
        hits += abs(fa.params["alpha"] - fb.params["alpha"]) >= observed - 1e-12
    return {"observed_abs_difference": float(observed), "permutation_p": (hits + 1) / (n_perm + 1),
            "n_permutations": int(n_perm)}


def projection_chart(df: pd.DataFrame, result: FrontierFits) -> alt.LayerChart:
    """Seed 003's figure: runs as thin solid lines, each method's projection dashed, log-log axes.

    A projection is drawn over the compute range of the frontier it was fitted to.
    """
    methods = result.methods
    color = alt.Color("method:N", scale=alt.Scale(domain=methods, range=figures.PALETTE[: len(methods)]),
                      legend=alt.Legend(orient="top-right", title=None, symbolType="stroke"))
    dash = alt.StrokeDash("kind:N", scale=alt.Scale(domain=["run", "projection"], range=[[1, 0], [7, 4]]),
                          legend=alt.Legend(orient="top-right", title=None, symbolType="stroke", offset=70))
    runs = df.assign(kind="run")
    proj = []
    for m in methods:
        env = result.envelope[result.envelope["method"] == m]["compute"]
        grid = np.geomspace(float(env.min()), float(env.max()), 80)
        proj.append(pd.DataFrame({"method": m, "compute": grid, "loss": result.fits[m].predict(grid)}))
    proj = pd.concat(proj, ignore_index=True).assign(kind="projection")
    x = alt.X("compute:Q", scale=alt.Scale(type="log"), title="PFLOP/s-days")
    y = alt.Y("loss:Q", scale=alt.Scale(type="log"), title="LM loss")
    run_layer = alt.Chart(runs).mark_line(strokeWidth=1.1, opacity=0.5).encode(
        x=x, y=y, color=color, strokeDash=dash, detail="run:N",
        tooltip=["method:N", "run:N", alt.Tooltip("compute:Q", format=".3g"), alt.Tooltip("loss:Q", format=".3f")])
    proj_layer = alt.Chart(proj).mark_line(strokeWidth=2.8).encode(
        x=x, y=y, color=color, strokeDash=dash, tooltip=["method:N", alt.Tooltip("loss:Q", format=".3f")])
    return alt.layer(run_layer, proj_layer).properties(width=figures.WIDTH, height=figures.HEIGHT)


def ratio_chart(ratios: pd.DataFrame, numerator: str, denominator: str) -> alt.LayerChart:
    """Compute ratio between methods at target losses, with bootstrap intervals and the line of parity."""
    base = alt.Chart(ratios)
    y = alt.Y("ratio:Q", scale=alt.Scale(type="log"), title=f"compute ratio {numerator} / {denominator}")
    x = alt.X("target_loss:Q", title="target loss", scale=alt.Scale(zero=False))
    bars = base.mark_rule(strokeWidth=2, color=figures.PALETTE[0]).encode(x=x, y=alt.Y("lower:Q", scale=alt.Scale(type="log")), y2="upper:Q")
    pts = base.mark_point(filled=True, size=70, color=figures.PALETTE[0]).encode(
        x=x, y=y, tooltip=[alt.Tooltip("target_loss:Q"), alt.Tooltip("ratio:Q", format=".3f"),
                           alt.Tooltip("lower:Q", format=".3f"), alt.Tooltip("upper:Q", format=".3f")])
    parity = alt.Chart(pd.DataFrame({"ratio": [1.0]})).mark_rule(strokeDash=[4, 4], color="#777777").encode(y="ratio:Q")
    return alt.layer(parity, bars, pts).properties(width=figures.WIDTH, height=260)
