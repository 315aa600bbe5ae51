"""Tests of the scaling-law fitting engine (scalebook.scaling).

The objective is checked against an independent straightforward implementation (scipy's
`huber` and `logsumexp` in the published parametrisation), the gradient against finite
differences, and the optimum against scipy optimisers started from the same points.
"""
from __future__ import annotations

from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime, check_grad, minimize
from scipy.special import huber, logsumexp

from scalebook import scaling
from scalebook.errors import DataError, FitError

TRUTH = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}  # Besiroglu et al. (2024) refit


def chinchilla_data(n=240, sd=0.01, seed=0, truth=TRUTH):
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(4e7), np.log(1.6e10), n))
    D = N * np.exp(rng.uniform(np.log(1.0), np.log(100.0), n))
    L = truth["E"] + truth["A"] / N ** truth["alpha"] + truth["B"] / D ** truth["beta"]
    return pd.DataFrame({"N": N, "D": D, "loss": L * np.exp(rng.normal(0.0, sd, n))})


def power_law_data(n=30, sd=0.005, seed=0, E=1.2, C0=0.3, alpha=0.3):
    rng = np.random.default_rng(seed)
    C = np.geomspace(1e-2, 1e2, n)
    return pd.DataFrame({"C": C, "loss": (E + (C0 / C) ** alpha) * np.exp(rng.normal(0.0, sd, n))})


def reference_objective(p, N, D, L, delta=1e-3):
    """Huber loss of log residuals, summed, written directly from the published form."""
    e, a, b, alpha, beta = p
    pred = logsumexp([a - alpha * np.log(N), b - beta * np.log(D), np.full(len(N), e)], axis=0)
    return huber(delta, pred - np.log(L)).sum()


def reference_gradient(p, N, D, L, delta=1e-3):
    e, a, b, alpha, beta = p
    z = np.stack([a - alpha * np.log(N), b - beta * np.log(D), np.full(len(N), e)])
    lse = logsumexp(z, axis=0)
    w = np.exp(z - lse)
    psi = np.clip(lse - np.log(L), -delta, delta)
    return np.array([(psi * w[2]).sum(), (psi * w[0]).sum(), (psi * w[1]).sum(),
                     -(psi * w[0] * np.log(N)).sum(), -(psi * w[1] * np.log(D)).sum()])


# -- power law -------------------------------------------------------------------------

def test_power_law_noise_free_recovery():
    df = power_law_data(sd=0.0)
    fit = scaling.fit_power_law(df)
    assert fit.converged
    for p, v in {"E": 1.2, "C0": 0.3, "alpha": 0.3}.items():
        assert fit.params[p] == pytest.approx(v, rel=1e-3)
    assert fit.n_starts_at_optimum >= 1


def test_power_law_inverse_and_predict():
    fit = scaling.fit_power_law(power_law_data(sd=0.0))
    c = np.array([0.05, 1.0, 20.0])
    pred = fit.predict(c)
    table = fit.compute_for_loss(pred)
    assert np.allclose(table["compute"], c, rtol=1e-9)
    assert np.allclose(fit.predict(pd.DataFrame({"C": c})), pred)
    below = fit.compute_for_loss([fit.params["E"] * 0.99])
    assert np.isnan(below["compute"].iloc[0]) and not below["reachable"].iloc[0]
    assert "irreducible" in below["note"].iloc[0]


def test_power_law_bootstrap_cluster_and_draws():
    df = power_law_data(n=40, sd=0.01, seed=3)
    df["run"] = np.repeat(np.arange(8), 5)
    fit = scaling.fit_power_law(df, n_bootstrap=200, seed=1, clusters="run")
    ci = fit.conf_int()
    assert list(ci.columns) == ["lower", "upper"]
    assert (ci["lower"] <= fit.params).all() and (fit.params <= ci["upper"]).all()
    assert fit.cluster_bootstrap and len(fit.draws) == 200
    again = scaling.fit_power_law(df, n_bootstrap=200, seed=1, clusters="run")
    pd.testing.assert_frame_equal(fit.draws, again.draws)
    draws = fit.compute_draws([1.5, 2.0])
    assert draws.shape == (200, 2)
    ratio = scaling.compute_ratio(fit, again, [1.5])
    assert ratio["ratio"].iloc[0] == pytest.approx(1.0)


def test_conf_int_without_bootstrap_is_an_error():
    fit = scaling.fit_power_law(power_law_data())
    assert fit.bse.isna().all()
    with pytest.raises(FitError, match="n_bootstrap"):
        fit.conf_int()


def test_power_law_warm_starts():
    df = power_law_data(seed=2)
    fit = scaling.fit_power_law(df)
    warm = scaling.power_law_starts_near(fit)
    refit = scaling.fit_power_law(df, starts=warm)
    assert refit.objective <= fit.objective * (1 + 1e-9)


# -- bad input -------------------------------------------------------------------------

@pytest.mark.parametrize("column,value,message", [
    ("N", -1.0, "'N' must be > 0"),
    ("D", np.inf, "'D' must hold finite numbers"),
    ("loss", np.nan, "'loss' has empty/NaN values"),
])
def test_chinchilla_bad_values_name_column_and_row(column, value, message):
    df = chinchilla_data(n=20)
    df.loc[3, column] = value
    with pytest.raises(DataError, match=message) as err:
        scaling.fit_chinchilla(df, starts={"e": [0.5], "a": [6], "b": [7], "alpha": [0.3], "beta": [0.3]})
    assert "row 4" in str(err.value)


def test_chinchilla_too_few_rows_and_single_size():
    df = chinchilla_data(n=4)
    with pytest.raises(DataError, match="fewer than the 5 parameters"):
        scaling.fit_chinchilla(df)
    df = chinchilla_data(n=20)
    df["N"] = 1e9
    with pytest.raises(DataError, match="column 'N' has a single distinct value"):
        scaling.fit_chinchilla(df)
    df = chinchilla_data(n=20)
    df["D"] = 1e10
    with pytest.raises(DataError, match="column 'D' has a single distinct value"):
        scaling.fit_chinchilla(df)
    with pytest.raises(DataError, match=r"missing column\(s\) \['params'\]"):
        scaling.fit_chinchilla(chinchilla_data(n=20), n="params")


def test_power_law_bad_input():
    df = power_law_data()
    df.loc[0, "C"] = 0.0
    with pytest.raises(DataError, match="'C' must be > 0"):
        scaling.fit_power_law(df)
    with pytest.raises(DataError, match="single distinct value"):
        scaling.fit_power_law(pd.DataFrame({"C": [1.0] * 5, "loss": [2.0, 2.1, 2.2, 2.0, 2.1]}))


# -- the engine: objective, gradient, curvature -----------------------------------------

def _model(df, covariates=None):
    covs = scaling._covariate_terms(df, covariates, "test")
    comps = scaling._chinchilla_components(df["N"].to_numpy(), df["D"].to_numpy(), covs, df)
    return scaling._Model(comps, np.log(df["loss"].to_numpy()))


def test_objective_matches_independent_implementation():
    df = chinchilla_data(n=60, seed=4)
    model = _model(df)
    rng = np.random.default_rng(0)
    assert model.names == ["a", "b", "e", "alpha", "beta"]
    for delta in (1e-3, 1e-1):
        raw = np.column_stack([rng.uniform(-1, 1, 20), rng.uniform(0, 25, 20), rng.uniform(0, 25, 20),
                               rng.uniform(0, 2, 20), rng.uniform(0, 2, 20)])  # e, a, b, alpha, beta
        internal = model.to_internal(raw[:, [1, 2, 0, 3, 4]])  # the model orders them a, b, e, alpha, beta
        f, _, _ = model.evaluate(internal, delta, mode=scaling.EXACT)
        ref = [reference_objective(p, df["N"], df["D"], df["loss"], delta) for p in raw]
        np.testing.assert_allclose(f, ref, rtol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_and_hessian_match_finite_differences(weighted):
    df = chinchilla_data(n=50, seed=5)
    df["T"] = np.exp(np.random.default_rng(1).uniform(0, 2, len(df)))
    model = _model(df, {"T": ["E", "A"]})
    rng = np.random.default_rng(2)
    weights = rng.integers(0, 3, size=(1, model.n)).astype(float) if weighted else None
    for _ in range(3):
        theta = rng.normal(scale=0.5, size=model.P)

        def fun(t):
            return model.evaluate(t[None], 1e-2, weights=weights, mode=scaling.EXACT)[0][0]

        def grad(t):
            return model.evaluate(t[None], 1e-2, weights=weights, mode=scaling.EXACT)[1][0]

        assert check_grad(fun, grad, theta) < 1e-6 * max(1.0, np.abs(grad(theta)).max())
        _, _, H = model.evaluate(theta[None], 1e-2, weights=weights, mode=scaling.EXACT)
        fd = np.array([approx_fprime(theta, lambda t, j=j: grad(t)[j], 1e-7) for j in range(model.P)])
        np.testing.assert_allclose(H[0], fd, atol=1e-5 * np.abs(fd).max())
        # The Gauss-Newton matrix is sum_i (psi_i / r_i) J_i J_i' with J the Jacobian of log L_hat.
        jac = np.array([approx_fprime(theta, lambda t, i=i: model.predict_log(
            model.to_raw(t), model.components, model.n)[i], 1e-7) for i in range(model.n)])
        r = model.predict_log(model.to_raw(theta), model.components, model.n) - model.y
        irls = np.minimum(1.0, 1e-2 / np.abs(r)) * (1.0 if weights is None else weights[0])
        _, _, G = model.evaluate(theta[None], 1e-2, weights=weights, mode=scaling.GAUSS_NEWTON)
        np.testing.assert_allclose(G[0], (jac * irls[:, None]).T @ jac, rtol=1e-3, atol=1e-4 * np.abs(G).max())


def test_kernel_results_do_not_depend_on_threads_or_batch_and_survive_overflow():
    df = chinchilla_data(n=240, seed=6)
    model = _model(df, {})
    starts = model.to_internal(scaling.hoffmann_starts()[:, [1, 2, 0, 3, 4]])  # e, a, b, ... -> a, b, e, ...
    weights = np.random.default_rng(3).integers(0, 3, size=(len(starts), model.n)).astype(float)
    threads = numba.get_num_threads()
    out = {}
    for nt in sorted({1, threads}):
        numba.set_num_threads(nt)
        try:
            for mode in (scaling.GAUSS_NEWTON, scaling.EXACT):
                out[nt, mode] = model.evaluate(starts, 1e-3, weights=weights, mode=mode)
        finally:
            numba.set_num_threads(threads)
    for mode in (scaling.GAUSS_NEWTON, scaling.EXACT):
        for a, b in zip(out[1, mode], out[threads, mode]):
            assert np.array_equal(a, b)  # bit for bit, whatever the thread count
        # A start evaluated alone gives the same bits as within the batch of 4500.
        alone = model.evaluate(starts[1234:1235], 1e-3, weights=weights[1234:1235], mode=mode)
        for a, b in zip(alone, out[1, mode]):
            assert np.array_equal(a[0], b[1234])
    # Terms far beyond the range of exp (z ~ +-1000) are summed relative to the largest, not overflowed.
    raw = np.array([[1000.0, 1000.0, 1000.5, 0.3, 0.3], [-1000.0, -1000.0, -999.5, 0.3, 0.3]])  # a, b, e, ...
    f, g, H = model.evaluate(model.to_internal(raw), 1e-3)
    ref = [reference_objective(p[[2, 0, 1, 3, 4]], df["N"], df["D"], df["loss"]) for p in raw]
    np.testing.assert_allclose(f, ref, rtol=1e-12)
    assert np.isfinite(g).all() and np.isfinite(H).all()


# -- Chinchilla fits --------------------------------------------------------------------

def test_chinchilla_noise_free_recovery():
    df = chinchilla_data(sd=0.0, seed=1)
    fit = scaling.fit_chinchilla(df)
    assert fit.converged
    for p, v in TRUTH.items():
        assert fit.params[p] == pytest.approx(v, rel=1e-3), p
    assert fit.n_starts == 4500 and fit.n_starts_at_optimum > 450


def test_chinchilla_noisy_recovery_inside_bootstrap_intervals():
    df = chinchilla_data(sd=0.01, seed=0)
    fit = scaling.fit_chinchilla(df, n_bootstrap=1000, seed=3)
    ci = fit.conf_int()
    for p, v in TRUTH.items():
        assert ci.loc[p, "lower"] <= v <= ci.loc[p, "upper"], (p, ci.loc[p].tolist())
    assert (fit.bse > 0).all()
    alloc = fit.allocation()
    a = TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])
    assert alloc.loc[0, "lower"] <= a <= alloc.loc[0, "upper"]
    assert alloc.loc[0, "estimate"] + alloc.loc[1, "estimate"] == pytest.approx(1.0)
    assert fit.objective == pytest.approx(reference_objective(
        fit.raw_params[["e", "a", "b", "alpha", "beta"]].to_numpy(), df["N"], df["D"], df["loss"]), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 7])
def test_engine_never_worse_than_scipy(seed):
    df = chinchilla_data(n=120, sd=0.02, seed=seed)
    fit = scaling.fit_chinchilla(df)
    N, D, L = df["N"].to_numpy(), df["D"].to_numpy(), df["loss"].to_numpy()
    grid = scaling.hoffmann_starts()[::150]  # 30 evenly spread published starts
    best = min(minimize(reference_objective, x0, args=(N, D, L), jac=reference_gradient, method="BFGS",
                        options={"gtol": 1e-10, "maxiter": 3000}).fun for x0 in grid)
    assert fit.objective <= best * (1 + 1e-9)
    # and scipy, started at the engine's optimum, cannot improve it
    x = fit.raw_params[["e", "a", "b", "alpha", "beta"]].to_numpy()
    polished = minimize(reference_objective, x, args=(N, D, L), method="Nelder-Mead",
                        options={"xatol": 1e-12, "fatol": 1e-16, "maxiter": 2000})
    assert fit.objective <= polished.fun * (1 + 1e-9)


def test_chinchilla_predict_and_compute_optimal():
    df = chinchilla_data(n=100, sd=0.0, seed=2)
    fit = scaling.fit_chinchilla(df, starts=SMALL_GRID)
    np.testing.assert_allclose(fit.predict(df), df["loss"], rtol=1e-6)
    opt = fit.compute_optimal([1e21, 1e23])
    np.testing.assert_allclose(6 * opt["N_opt"] * opt["D_opt"], [1e21, 1e23], rtol=1e-9)
    # the optimum is a minimum along the iso-compute line
    for row in opt.itertuples():
        for factor in (0.9, 1.1):
            n = row.N_opt * factor
            loss = fit.predict(pd.DataFrame({"N": [n], "D": [row.compute / (6 * n)]}))[0]
            assert loss > row.loss_opt


SMALL_GRID = {"e": [-0.5, 0.5], "a": [0, 5, 10], "b": [0, 5, 10], "alpha": [0.5, 1.0], "beta": [0.5, 1.0]}


def test_chinchilla_numeric_covariate_recovery():
    rng = np.random.default_rng(3)
    df = chinchilla_data(n=150, sd=0.0, seed=3)
    df["T_m"] = rng.choice([2.0, 4.0, 8.0], size=len(df))
    gE, gA = -0.05, -0.3
    df["loss"] = (TRUTH["E"] * df["T_m"] ** gE + TRUTH["A"] * df["T_m"] ** gA / df["N"] ** TRUTH["alpha"]
                  + TRUTH["B"] / df["D"] ** TRUTH["beta"])
    fit = scaling.fit_chinchilla(df, covariates={"T_m": ["E", "A"]}, starts=SMALL_GRID)
    assert fit.converged
    assert fit.params["gamma_E[T_m]"] == pytest.approx(gE, abs=1e-4)
    assert fit.params["gamma_A[T_m]"] == pytest.approx(gA, abs=1e-3)
    for p, v in TRUTH.items():
        assert fit.params[p] == pytest.approx(v, rel=1e-3), p
    np.testing.assert_allclose(fit.predict(df), df["loss"], rtol=1e-6)
    terms = fit.term_values(df.head(3))
    np.testing.assert_allclose(terms["E"], TRUTH["E"] * df["T_m"].head(3) ** gE, rtol=1e-4)


def test_chinchilla_categorical_covariate():
    df = chinchilla_data(n=120, sd=0.0, seed=6)
    df["data"] = np.where(np.arange(len(df)) % 2 == 0, "c4", "web")
    df.loc[df["data"] == "web", "loss"] += 0.2  # E is 0.2 larger on "web"
    fit = scaling.fit_chinchilla(df, covariates={"data": "E"}, starts=SMALL_GRID)
    assert fit.params["E[data=web]"] == pytest.approx((TRUTH["E"] + 0.2) / TRUTH["E"], rel=1e-3)
    assert "E[data=web]" in fit.summary()


def test_bootstrap_is_seeded_and_clusters_resample_whole_groups():
    df = chinchilla_data(n=80, sd=0.01, seed=8)
    df["run"] = np.arange(len(df)) // 8
    a = scaling.fit_chinchilla(df, n_bootstrap=50, seed=5, clusters="run",
                               starts={"e": [0, 0.5], "a": [5, 10], "b": [5, 10], "alpha": [0.5], "beta": [0.5]})
    b = scaling.fit_chinchilla(df, n_bootstrap=50, seed=5, clusters="run",
                               starts={"e": [0, 0.5], "a": [5, 10], "b": [5, 10], "alpha": [0.5], "beta": [0.5]})
    pd.testing.assert_frame_equal(a.draws, b.draws)
    rng = np.random.default_rng(0)
    w = scaling._bootstrap_weights(len(df), 20, rng, df["run"].to_numpy())
    for row in w:  # rows of one run share one count
        assert (pd.Series(row).groupby(df["run"]).nunique() == 1).all()
        assert row.sum() == len(df)


# -- real data: the over-training testbed (Gadre et al. 2024) ------------------------------

EXTERNAL = Path(__file__).resolve().parents[1].parent / "shared" / "external"


def test_overtrain_gadre2024_converges_and_beats_reference():
    folder = EXTERNAL / "overtrain-gadre2024"
    if not (folder / "models").is_dir():
        pytest.skip("../shared/external/overtrain-gadre2024 not present")
    from scalebook import loss_curves
    df = loss_curves.load_overtrain_gadre2024(folder)
    assert len(df) == 104 and df["N"].min() > 1e7 and df["loss"].between(1.5, 10).all()
    fit = scaling.fit_chinchilla(df, d="tokens")
    assert fit.converged
    N, D, L = df["N"].to_numpy(), df["tokens"].to_numpy(), df["loss"].to_numpy()
    grid = scaling.hoffmann_starts()[::300]  # 15 evenly spread published starts
    best = min(minimize(reference_objective, x0, args=(N, D, L), jac=reference_gradient, method="BFGS",
                        options={"gtol": 1e-10, "maxiter": 3000}).fun for x0 in grid)
    assert fit.objective <= best * (1 + 1e-9)
