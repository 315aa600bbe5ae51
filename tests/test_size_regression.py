"""Score against size: fits against statsmodels (bundled digitised data and the public obsscaling
table), the outlier test, effective sizes with Fieller intervals, the flattening test, bad input."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from scalebook import size_regression as sr
from scalebook.errors import DataError, ParameterError

EXTERNAL = Path(__file__).resolve().parents[1].parent / "shared" / "external"
OBS = EXTERNAL / "obsscaling" / "base_llm_benchmark_eval.csv"


@pytest.fixture(scope="module")
def seed_data() -> pd.DataFrame:
    return sr.load_scores("data/benchmark_size_seed001.csv")


@pytest.fixture(scope="module")
def seed_fit(seed_data):
    return sr.fit_size_regression(seed_data)


def synthetic(n=40, slope=3.0, sd=1.0, seed=0, outlier=None):
    rng = np.random.default_rng(seed)
    params = 2.0 ** rng.uniform(0, 5, size=n)
    score = 40 + slope * np.log2(params) + rng.normal(0, sd, size=n)
    if outlier is not None:
        score[outlier[0]] += outlier[1]
    return sr.validate_scores(pd.DataFrame({"model": [f"m{i}" for i in range(n)], "params": params, "score": score}))


def test_bundled_digitised_table(seed_data):
    assert len(seed_data) == 16
    assert seed_data.set_index("model").loc["Memory³-2B-SFT", ["params", "score"]].tolist() == [2.0, 63.0]
    assert seed_data["params"].between(1, 32).all() and seed_data["score"].between(35, 66).all()


def test_fits_equal_statsmodels(seed_data, seed_fit):
    X = sm.add_constant(np.log2(seed_data["params"].to_numpy()))
    y = seed_data["score"].to_numpy()
    ols = sm.OLS(y, X).fit()
    np.testing.assert_allclose(seed_fit.params.to_numpy(), ols.params, rtol=1e-10)
    np.testing.assert_allclose(seed_fit.bse.to_numpy(), ols.bse, rtol=1e-10)
    np.testing.assert_allclose(seed_fit.conf_int().to_numpy(), ols.conf_int(), rtol=1e-10)
    rlm = sm.RLM(y, X, M=sm.robust.norms.HuberT()).fit()
    coef = seed_fit.coefficients()
    np.testing.assert_allclose(coef.loc[2:3, "estimate"], rlm.params, rtol=1e-8)
    np.testing.assert_allclose(coef.loc[2:3, "se"], rlm.bse, rtol=1e-8)
    qr = sm.QuantReg(y, X).fit(q=0.9)
    np.testing.assert_allclose(coef.loc[4:5, "estimate"], qr.params, rtol=1e-6)
    # Prediction intervals for a new model.
    grid = np.array([1.0, 4.0, 32.0])
    ref = ols.get_prediction(sm.add_constant(np.log2(grid))).summary_frame(alpha=0.05)
    pred = seed_fit.prediction(grid)
    np.testing.assert_allclose(pred[["obs_lo", "obs_hi"]].to_numpy(), ref[["obs_ci_lower", "obs_ci_upper"]], rtol=1e-10)
    np.testing.assert_allclose(pred[["mean_lo", "mean_hi"]].to_numpy(), ref[["mean_ci_lower", "mean_ci_upper"]],
                               rtol=1e-10)


def test_obsscaling_fit_equals_statsmodels():
    if not OBS.exists():
        pytest.skip("external validation data not present at ../shared/external/obsscaling")
    data = sr.load_scores(OBS, model_col="Model", params_col="Model Size (B)", score_col="MMLU", score_scale=100)
    fit = sr.fit_size_regression(data)
    raw = pd.read_csv(OBS)
    assert len(data) == len(raw) == 148
    X = sm.add_constant(np.log2(raw["Model Size (B)"].to_numpy()))
    ols = sm.OLS(100 * raw["MMLU"].to_numpy(), X).fit()
    np.testing.assert_allclose(fit.params.to_numpy(), ols.params, rtol=1e-10)
    np.testing.assert_allclose(fit.bse.to_numpy(), ols.bse, rtol=1e-10)
    assert fit.params["log2_params"] > 0 and fit.conf_int().loc["log2_params", "lower"] > 0
    ot = ols.outlier_test(method="bonferroni")
    np.testing.assert_allclose(fit.outliers()["bonf_p"], np.asarray(ot)[:, 2], rtol=1e-10)
    flat = fit.flattening(16)
    assert flat.n_beyond == int((raw["Model Size (B)"] > 16).sum())


def test_studentised_residuals_by_hand(seed_data, seed_fit):
    x = np.log2(seed_data["params"].to_numpy())
    y = seed_data["score"].to_numpy()
    X = np.column_stack([np.ones_like(x), x])
    n, p = X.shape
    H = X @ np.linalg.inv(X.T @ X) @ X.T
    h = np.diag(H)
    e = y - H @ y
    s2 = e @ e / (n - p)
    s2_i = ((n - p) * s2 - e ** 2 / (1 - h)) / (n - p - 1)
    t = e / np.sqrt(s2_i * (1 - h))
    pv = 2 * stats.t.sf(np.abs(t), n - p - 1)
    out = seed_fit.outliers()
    np.testing.assert_allclose(out["student_resid"], t, rtol=1e-8)
    np.testing.assert_allclose(out["unadj_p"], pv, rtol=1e-8)
    np.testing.assert_allclose(out["bonf_p"], np.minimum(1, n * pv), rtol=1e-8)


def test_seed_readings_flag_no_outlier(seed_fit):
    out = seed_fit.outliers()
    assert not out["outlier"].any()
    assert out.loc[out["student_resid"].abs().idxmax(), "model"] == "Gemma-2B-it"


def test_planted_outlier_is_flagged_and_only_it():
    fit = sr.fit_size_regression(synthetic(outlier=(7, 12.0)))
    out = fit.outliers()
    assert out["outlier"].tolist() == [i == 7 for i in range(40)]


def test_effective_size_interval_is_fieller():
    data = synthetic(slope=4.0, sd=1.0, seed=3)
    fit = sr.fit_size_regression(data)
    eff = fit.effective_sizes()
    b0, b1 = fit.params
    V = np.asarray(fit.ols.cov_params())
    crit = stats.t.ppf(0.975, fit.ols.df_resid)
    for k in (0, 5, 11):
        row = eff.iloc[k]
        y = row["score"]
        assert row["bounded"]
        assert row["effective_params"] == pytest.approx(2 ** ((y - b0) / b1), rel=1e-10)
        # Brute force: the log2 sizes at which the line's t-statistic against the score is within crit.
        g = np.linspace(math.log2(row["effective_lo"]) - 0.1, math.log2(row["effective_hi"]) + 0.1, 20001)
        tstat = np.abs(b0 + b1 * g - y) / np.sqrt(V[0, 0] + 2 * g * V[0, 1] + g ** 2 * V[1, 1])
        inside = g[tstat <= crit]
        assert 2 ** inside.min() == pytest.approx(row["effective_lo"], rel=1e-3)
        assert 2 ** inside.max() == pytest.approx(row["effective_hi"], rel=1e-3)
    # The prediction version is wider, and leaving the model out moves its own estimate.
    wide = fit.effective_sizes(kind="prediction")
    assert (wide["effective_hi"] / wide["effective_lo"] > eff["effective_hi"] / eff["effective_lo"]).all()
    loo = fit.effective_sizes(leave_one_out=True)
    assert not np.allclose(loo["effective_params"], eff["effective_params"])


def test_effective_size_unbounded_when_slope_not_significant(seed_fit):
    eff = seed_fit.effective_sizes()
    assert not eff["bounded"].any()
    assert (eff["effective_lo"] == 0).all() and np.isinf(eff["effective_hi"]).all()
    assert eff["interval"].str.startswith("unbounded").all()
    table = sr.models_table(seed_fit, eff)
    assert (table["Effective size (B)"] == "-").all()
    sentence = sr.describe_model(seed_fit, eff, "Memory³-2B-SFT")
    assert "not an outlier" in sentence and "cannot be stated" in sentence


def test_flattening_detected_with_enough_models_and_statsmodels_hinge():
    rng = np.random.default_rng(4)
    params = 2.0 ** rng.uniform(0, 7, size=60)
    x = np.log2(params)
    score = 30 + 5 * x - 4 * np.maximum(0, x - 4) + rng.normal(0, 1, size=60)
    data = sr.validate_scores(pd.DataFrame({"model": [f"m{i}" for i in range(60)], "params": params, "score": score}))
    flat = sr.fit_size_regression(data).flattening(16)
    X = sm.add_constant(np.column_stack([x, np.maximum(0, x - 4)]))
    ref = sm.OLS(score, X).fit()
    assert flat.slope_change == pytest.approx(ref.params[2], rel=1e-10)
    assert flat.p_value == pytest.approx(ref.pvalues[2], rel=1e-8)
    assert flat.slope_after == pytest.approx(ref.params[1] + ref.params[2], rel=1e-10)
    assert flat.p_value < 1e-6 and flat.change_lo < -4 < flat.change_hi
    assert flat.verdict().startswith("The trend flattens past 16B")


def test_flattening_with_one_or_no_model_past_the_knot(seed_fit):
    one = seed_fit.flattening(16)
    assert one.n_beyond == 1 and "Only 1 model" in one.verdict() and one.mde80 > 10
    none = seed_fit.flattening(64)
    assert none.n_beyond == 0 and np.isnan(none.p_value) and "cannot be tested" in none.verdict()


# -- bad input -----------------------------------------------------------------------------------

def write(tmp_path, df):
    path = tmp_path / "scores.csv"
    df.to_csv(path, index=False)
    return path


def base_table():
    return pd.DataFrame({"name": ["a", "b", "c", "d"], "size_b": [1.0, 2.0, 4.0, 8.0], "acc": [40.0, 45, 50, 56]})


def test_negative_size_names_column_and_rows(tmp_path):
    df = base_table()
    df.loc[[1, 3], "size_b"] = [-2.0, 0.0]
    with pytest.raises(DataError, match=r"column 'params' must be > 0; rows 2, 4"):
        sr.load_scores(write(tmp_path, df), model_col="name", params_col="size_b", score_col="acc")


def test_missing_score_fails_or_is_dropped(tmp_path):
    df = base_table()
    df.loc[2, "acc"] = np.nan
    path = write(tmp_path, df)
    with pytest.raises(DataError, match=r"column 'score' has empty/NaN values at row 3"):
        sr.load_scores(path, model_col="name", params_col="size_b", score_col="acc")
    d = sr.load_scores(path, model_col="name", params_col="size_b", score_col="acc", drop_missing=True)
    assert len(d) == 3 and d.attrs["dropped"] == 1


def test_missing_column_and_duplicates(tmp_path):
    path = write(tmp_path, base_table())
    with pytest.raises(DataError, match=r"missing column\(s\) \['MMLU'\]"):
        sr.load_scores(path, model_col="name", params_col="size_b", score_col="MMLU")
    dup = base_table()
    dup.loc[3, "name"] = "a"
    with pytest.raises(DataError, match=r"unique by \['model'\]; rows 1, 4"):
        sr.load_scores(write(tmp_path, dup), model_col="name", params_col="size_b", score_col="acc")


def test_scales_and_parameters(tmp_path):
    path = write(tmp_path, base_table().assign(size_b=lambda d: d["size_b"] * 1e9, acc=lambda d: d["acc"] / 100))
    d = sr.load_scores(path, model_col="name", params_col="size_b", score_col="acc", params_scale=1e-9,
                       score_scale=100)
    np.testing.assert_allclose(d["params"], [1, 2, 4, 8])
    np.testing.assert_allclose(d["score"], [40, 45, 50, 56])
    with pytest.raises(ParameterError, match="params_scale"):
        sr.load_scores(path, model_col="name", params_col="size_b", score_col="acc", params_scale=0)
    with pytest.raises(ParameterError, match="quantile"):
        sr.fit_size_regression(d, quantile=1.5)


def test_chart_highlights_the_tested_outlier():
    fit = sr.fit_size_regression(synthetic(outlier=(3, 12.0)))
    spec = fit and sr.scatter_chart(fit).to_dict()
    datasets = spec["datasets"]
    flagged = [row["model"] for rows in datasets.values() for row in rows
               if row.get("status", "").startswith("Bonferroni")]
    assert set(flagged) == {"m3"}
    x = spec["layer"][0]["encoding"]["x"]
    assert x["scale"]["type"] == "log" and x["scale"]["base"] == 2
