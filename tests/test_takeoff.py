"""Takeoff thresholds: input validation, the per-size GLM against statsmodels, threshold recovery on
simulated data with known thresholds, the across-size statistics and the monotonicity test."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings, strategies as st
from scipy import stats
from scipy.special import expit

from scalebook import inverse_prediction, paths, takeoff
from scalebook.errors import DataError, FitError, ParameterError
from scalebook.simulate import takeoff as sim


@pytest.fixture(scope="module")
def bundled() -> pd.DataFrame:
    return takeoff.load_results("data/takeoff_sim.csv")


@pytest.fixture(scope="module")
def bundled_fit(bundled):
    return takeoff.fit_takeoff(bundled, n_bootstrap=300, seed=0)


def write(tmp_path, df, name="t.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


# -- parsing and validation -----------------------------------------------------------------

@pytest.mark.parametrize("label, value", [("68K", 68e3), ("589k", 589e3), ("4.8M", 4.8e6), ("543M", 543e6),
                                          ("7B", 7e9), ("1.5G", 1.5e9), ("2T", 2e12), ("2e9", 2e9),
                                          ("68,000", 68e3), (" 35 M ", 35e6), (1000, 1000.0), ("-68K", -68e3)])
def test_parse_size(label, value):
    assert takeoff.parse_size(label) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("label", ["abc", "68KB", "", "M68", "4.8 million"])
def test_parse_size_rejects_text(label):
    with pytest.raises(ValueError, match="model size"):
        takeoff.parse_size(label)


@given(st.floats(min_value=0.01, max_value=999, allow_nan=False), st.sampled_from(["K", "M", "B"]))
@settings(max_examples=50, deadline=None)
def test_format_parse_roundtrip(x, suffix):
    n = takeoff.parse_size(f"{x:.3g}{suffix}")
    assert takeoff.parse_size(takeoff.format_size(n)) == pytest.approx(n, rel=5e-3)


def test_bundled_table_shape(bundled):
    assert takeoff.size_order(bundled) == ["68K", "589K", "4.8M", "35M", "543M"]
    assert len(bundled) == 5 * len(sim.RATIOS)
    assert set(bundled["total"]) == {500}
    for tick in (1.0, 1.2, 1.3, 1.5, 1.7, 2.0, 2.3, 2.5, 2.7, 3.0, 3.5, 4.0):
        assert tick in set(bundled["ratio"])


def test_bundled_file_equals_generator(bundled):
    gen = sim.generate(seed=0)
    raw = pd.read_csv(paths.resolve("data/takeoff_sim.csv"))
    pd.testing.assert_frame_equal(raw, gen, check_dtype=False)


def good_table():
    return pd.DataFrame({"size": ["68K"] * 3 + ["4.8M"] * 3, "ratio": [1.0, 1.5, 2.0] * 2,
                         "correct": [10, 50, 90, 5, 40, 95], "total": [100] * 6})


def test_correct_above_total_names_column_and_rows(tmp_path):
    df = good_table().rename(columns={"correct": "n_right"})
    df.loc[[2, 4], "n_right"] = [120, 101]
    with pytest.raises(DataError) as err:
        takeoff.load_results(write(tmp_path, df), correct_col="n_right")
    msg = str(err.value)
    assert "'n_right'" in msg and "'total'" in msg and "rows 3, 5" in msg and "t.csv" in msg


@pytest.mark.parametrize("rows, column, value, message", [
    ([0, 1, 2], "size", "-68K", r"column 'size' must hold positive model sizes.*rows 1, 2, 3"),
    ([4], "size", "big", r"column 'size' must hold model sizes.*row 5"),
    ([1], "correct", -1, r"column 'correct' must be >= 0; row 2"),
    ([0], "size", "68000", r"labels .*68000.*68K.*same size"),
], ids=["negative size", "unreadable size", "negative count", "one size under two labels"])
def test_bad_cells_name_column_and_rows(tmp_path, rows, column, value, message):
    df = good_table()
    df.loc[rows, column] = value
    with pytest.raises(DataError, match=message):
        takeoff.load_results(write(tmp_path, df))


def test_size_with_one_ratio_fails(tmp_path):
    df = pd.concat([good_table(), pd.DataFrame({"size": ["35M"], "ratio": [2.0], "correct": [3], "total": [100]})],
                   ignore_index=True)
    with pytest.raises(DataError) as err:
        takeoff.load_results(write(tmp_path, df))
    msg = str(err.value)
    assert "'35M'" in msg and "single SFT ratio" in msg and "row 7" in msg and "'ratio'" in msg


def test_percent_above_100_fails_clearly(tmp_path):
    df = good_table().drop(columns=["correct", "total"]).assign(em=[10.0, 50.0, 100.5, 5.0, 140.0, 95.0])
    with pytest.raises(DataError) as err:
        takeoff.load_results(write(tmp_path, df), percent_col="em", n_items=100)
    msg = str(err.value)
    assert "'em'" in msg and "above 100" in msg and "rows 3, 5" in msg
    with pytest.raises(DataError, match="above 100"):
        takeoff.counts_from_percent(df, percent_col="em", n_items=100)


def test_percent_needs_item_count():
    df = good_table().assign(em=[10.0, 50.0, 90.0, 5.0, 40.0, 95.0]).drop(columns=["correct", "total"])
    with pytest.raises(ParameterError, match="n_items"):
        takeoff.counts_from_percent(df, percent_col="em")


def test_percent_conversion_roundtrip(tmp_path, bundled):
    # One decimal suffices for 500 items (multiples of 0.2%), so counts come back exactly.
    pct = bundled.assign(em=(100 * bundled["correct"] / bundled["total"]).round(1)).drop(columns=["correct", "total"])
    back = takeoff.load_results(write(tmp_path, pct[["size", "ratio", "em"]]), percent_col="em", n_items=500)
    pd.testing.assert_frame_equal(back, bundled)


def test_item_level_rows_pool_to_counts(tmp_path):
    rows = []
    for _, r in good_table().iterrows():
        rows += [{"size": r["size"], "ratio": r["ratio"], "correct": int(i < r["correct"]), "total": 1}
                 for i in range(int(r["total"]))]
    pooled = takeoff.load_results(write(tmp_path, pd.DataFrame(rows)))
    direct = takeoff.validate_results(good_table())
    pd.testing.assert_frame_equal(pooled, direct)


# -- the per-size GLM -------------------------------------------------------------------------

def test_glm_equals_statsmodels(bundled, bundled_fit):
    z = stats.norm.ppf(0.975)
    for size in ["68K", "589K", "4.8M", "35M", "543M"]:
        d = bundled[bundled["size"] == size]
        X = sm.add_constant(d["ratio"].to_numpy())
        endog = np.column_stack([d["correct"], d["total"] - d["correct"]])
        ref = sm.GLM(endog, X, family=sm.families.Binomial(sm.families.links.Logit())).fit()
        f = bundled_fit.fits[size]
        np.testing.assert_allclose(f.params.to_numpy(), ref.params, rtol=1e-8)
        np.testing.assert_allclose(f.bse.to_numpy(), ref.bse, rtol=1e-6)
        b0, b1 = ref.params
        V = ref.cov_params()
        g = np.array([-1 / b1, b0 / b1 ** 2])
        se = math.sqrt(g @ V @ g)
        row = bundled_fit.table.set_index("size").loc[size]
        assert row["takeoff"] == pytest.approx(-b0 / b1, rel=1e-8)
        assert row["se_delta"] == pytest.approx(se, rel=1e-6)
        assert row["delta_lo"] == pytest.approx(-b0 / b1 - z * se, rel=1e-6)
        assert row["deviance"] == pytest.approx(ref.deviance, rel=1e-8)
        assert row["gof_p"] == pytest.approx(stats.chi2.sf(ref.deviance, ref.df_resid), rel=1e-6, abs=1e-300)


def test_fieller_interval_is_the_set_where_wald_does_not_reject(bundled_fit):
    f = bundled_fit.fits["35M"]
    b0, b1 = f.params
    V = f.cov_params()
    z = stats.norm.ppf(0.975)
    iv = f.takeoff_interval(0.05, "fieller")
    grid = np.linspace(iv.lower - 0.05, iv.upper + 0.05, 4001)
    wald = np.abs(b0 + b1 * grid) / np.sqrt(V[0, 0] + 2 * grid * V[0, 1] + grid ** 2 * V[1, 1])
    accepted = grid[wald <= z]
    assert accepted.min() == pytest.approx(iv.lower, abs=1e-4)
    assert accepted.max() == pytest.approx(iv.upper, abs=1e-4)


def test_pearson_scale_inflates_only_overdispersed(bundled):
    plain = takeoff.fit_size(bundled, "589K")
    quasi = takeoff.fit_size(bundled, "589K", scale="pearson")
    assert quasi.bse["ratio"] == pytest.approx(plain.bse["ratio"] * math.sqrt(plain.dispersion), rel=1e-6)
    under = takeoff.fit_size(bundled, "4.8M")
    assert under.dispersion < 1
    assert takeoff.fit_size(bundled, "4.8M", scale="pearson").bse["ratio"] == pytest.approx(under.bse["ratio"])


def test_batched_newton_equals_statsmodels():
    rng = np.random.default_rng(5)
    x = np.array([1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
    n = np.array([50, 80, 100, 100, 80, 50])
    y = rng.binomial(n, expit(3 * (x - 2.3)), size=(20, len(x)))
    b0, b1, conv = takeoff.logistic_mle_batch(x, y, n, (0.0, 1.0))
    assert conv.all()
    for k in range(len(y)):
        ref = sm.GLM(np.column_stack([y[k], n - y[k]]), sm.add_constant(x), family=sm.families.Binomial()).fit()
        np.testing.assert_allclose([b0[k], b1[k]], ref.params, rtol=1e-7, atol=1e-9)


def test_separated_size_raises_and_is_flagged(tmp_path):
    df = pd.DataFrame({"size": ["1M"] * 4 + ["2M"] * 4, "ratio": [1.0, 2.0, 3.0, 4.0] * 2,
                       "correct": [0, 0, 100, 100, 0, 30, 70, 100], "total": [100] * 8})
    data = takeoff.validate_results(df)
    with pytest.raises(FitError, match=r"1M.*separated.*between ratio 2 .*and 3"):
        takeoff.fit_size(data, "1M")
    res = takeoff.fit_takeoff(data, n_bootstrap=50)
    row = res.table.set_index("size").loc["1M"]
    assert np.isnan(row["takeoff"]) and "separated" in row["note"]
    assert np.isfinite(res.table.set_index("size").loc["2M", "takeoff"])


# -- threshold recovery on simulated data with known thresholds -------------------------------

def test_known_thresholds_recovered_inside_intervals():
    # A fresh seeded simulation of the four logistic sizes (589K's dip makes its logistic fit
    # misspecified, so its 50% point is not the target of the logistic estimator).
    sizes = ["68K", "4.8M", "35M", "543M"]
    data = takeoff.validate_results(sim.generate(seed=11, sizes=sizes))
    res = takeoff.fit_takeoff(data, n_bootstrap=400, seed=3)
    t = res.table.set_index("size")
    for s in sizes:
        truth = sim.TRUTH[s][1]
        assert t.loc[s, "delta_lo"] <= truth <= t.loc[s, "delta_hi"], s
        assert t.loc[s, "boot_lo"] <= truth <= t.loc[s, "boot_hi"], s
        assert t.loc[s, "fieller_lo"] <= truth <= t.loc[s, "fieller_hi"], s
        assert abs(t.loc[s, "takeoff"] - truth) < 0.05


def test_interval_coverage_is_nominal():
    # 200 small experiments with a known 50% point of 2.0: the 95% intervals should cover it
    # about 95% of the time (binomial sd of the rate over 200 runs is 1.5 points).
    rng = np.random.default_rng(2024)
    x = np.array([1.0, 1.5, 2.0, 2.5, 3.0])
    n = np.full(5, 60)
    hits = {"delta": 0, "bootstrap": 0}
    for _ in range(200):
        y = rng.binomial(n, expit(2.5 * (x - 2.0)))
        data = takeoff.validate_results(pd.DataFrame({"size": "1M", "ratio": x, "correct": y, "total": n}))
        t = takeoff.fit_takeoff(data, n_bootstrap=200, seed=int(rng.integers(1 << 30))).table.iloc[0]
        hits["delta"] += t["delta_lo"] <= 2.0 <= t["delta_hi"]
        hits["bootstrap"] += t["boot_lo"] <= 2.0 <= t["boot_hi"]
    assert 0.89 <= hits["delta"] / 200 <= 0.99
    assert 0.87 <= hits["bootstrap"] / 200 <= 0.99


def test_bootstrap_is_seeded(bundled):
    a = takeoff.fit_takeoff(bundled, n_bootstrap=100, seed=7).table
    b = takeoff.fit_takeoff(bundled, n_bootstrap=100, seed=7).table
    c = takeoff.fit_takeoff(bundled, n_bootstrap=100, seed=8).table
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["boot_lo"], c["boot_lo"])


# -- across sizes ----------------------------------------------------------------------------

def test_rank_correlation_matches_scipy_and_exact_enumeration(bundled_fit):
    rank = takeoff.rank_correlation(bundled_fit)
    t = bundled_fit.table
    rho = stats.spearmanr(t["n_params"], t["takeoff"]).statistic
    assert rank.loc[0, "value"] == pytest.approx(rho)
    # Exact two-sided permutation p-value by enumerating all 5! orders.
    perms = [stats.spearmanr(t["n_params"], p).statistic for p in itertools.permutations(t["takeoff"])]
    p_exact = np.mean(np.abs(perms) >= abs(rho) - 1e-12)
    assert rank.loc[0, "p_value"] == pytest.approx(p_exact)
    kt = stats.kendalltau(t["n_params"], t["takeoff"])
    assert rank.loc[1, "value"] == pytest.approx(kt.statistic)
    assert rank.loc[1, "p_value"] == pytest.approx(kt.pvalue)
    assert rank.loc[0, "min_attainable_p"] == pytest.approx(2 / 120)


def test_reversal_35m_before_4_8m_is_found(bundled_fit):
    rev = takeoff.size_reversals(bundled_fit)
    row = rev[(rev["smaller"] == "4.8M") & (rev["larger"] == "35M")]
    assert len(row) == 1
    row = row.iloc[0]
    assert not row["delta_overlap"] and not row["boot_overlap"] and row["p_value"] < 1e-6
    sentence = takeoff.describe_reversals(rev)
    assert sentence.startswith("The takeoff is not monotone in size") and "35M takes off before 4.8M" in sentence


def test_monotone_takeoffs_have_no_reversal():
    data = takeoff.validate_results(sim.generate(seed=1, sizes=["68K", "4.8M", "543M"]))
    res = takeoff.fit_takeoff(data, n_bootstrap=50)
    assert takeoff.size_reversals(res).empty
    assert "no adjacent pair" in takeoff.describe_reversals(takeoff.size_reversals(res))


# -- is the dip more than noise? ----------------------------------------------------------------

def test_isotonic_matches_sklearn():
    from sklearn.isotonic import IsotonicRegression
    rng = np.random.default_rng(0)
    n = rng.integers(20, 200, size=12)
    y = rng.binomial(n, rng.uniform(0, 1, size=12))
    ref = IsotonicRegression().fit(np.arange(12), y / n, sample_weight=n).predict(np.arange(12))
    np.testing.assert_allclose(takeoff.isotonic_binomial(y, n), ref, atol=1e-12)


def test_dip_of_589k_detected(bundled):
    t = takeoff.monotonicity_test(bundled, "589K", n_bootstrap=300, seed=0)
    assert t.p_value < 0.01 and t.pair_p_bonferroni < 1e-6
    assert 1.2 <= t.peak_ratio <= 1.3 and t.dip_ratio == 1.5
    assert "more than item-sampling noise" in t.verdict()
    # The LR statistic by hand: observed proportions against the pooled (isotonic) fit.
    c = t.cells
    y, n, p = c["correct"].to_numpy(float), c["total"].to_numpy(float), c["monotone_fit_pct"].to_numpy() / 100
    ph = y / n
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(y > 0, y * np.log(ph / p), 0) + np.where(n - y > 0, (n - y) * np.log((1 - ph) / (1 - p)), 0)
    assert t.lr == pytest.approx(2 * terms.sum(), rel=1e-9)


def test_monotone_sizes_not_rejected(bundled):
    tab = takeoff.monotonicity_table(bundled, n_bootstrap=200, seed=0).set_index("size")
    assert tab.loc["589K", "p_holm"] < 0.05
    for s in ["68K", "4.8M", "35M", "543M"]:
        assert tab.loc[s, "p_value"] > 0.05


def test_monotonicity_test_level_under_the_null():
    # Under a non-decreasing truth the test should reject at most about alpha of the time.
    rng = np.random.default_rng(99)
    x = np.linspace(1, 3, 8)
    n = np.full(8, 100)
    p = expit(2 * (x - 2))
    rejections = 0
    for k in range(150):
        y = rng.binomial(n, p)
        data = takeoff.validate_results(pd.DataFrame({"size": "1M", "ratio": x, "correct": y, "total": n}))
        rejections += takeoff.monotonicity_test(data, "1M", n_bootstrap=99, seed=k).p_value < 0.05
    assert rejections / 150 <= 0.09


# -- figures -----------------------------------------------------------------------------------

def test_charts_build(bundled_fit):
    spec = takeoff.curves_chart(bundled_fit, ratio_title="SFT ratio").to_dict()
    assert len(spec["layer"]) == 3
    spec2 = takeoff.takeoff_size_chart(bundled_fit, interval="delta").to_dict()
    assert spec2["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"
    with pytest.raises(ParameterError):
        takeoff.takeoff_size_chart(bundled_fit, interval="nope")


def test_inverse_prediction_helpers():
    cov = np.array([[0.04, -0.01], [-0.01, 0.01]])
    b0, b1, level = 1.0, 2.0, 5.0
    # Delta method against a numerical gradient.
    f = lambda a, b: (level - a) / b  # noqa: E731
    h = 1e-6
    g = np.array([(f(b0 + h, b1) - f(b0 - h, b1)) / (2 * h), (f(b0, b1 + h) - f(b0, b1 - h)) / (2 * h)])
    assert inverse_prediction.delta_se(b0, b1, cov, level) == pytest.approx(math.sqrt(g @ cov @ g), rel=1e-6)
    # A slope indistinguishable from zero gives an unbounded set, never numbers.
    iv = inverse_prediction.fieller(1.0, 0.1, cov, 1.96, level=5.0)
    assert not iv.bounded and math.isinf(iv.lower) and math.isinf(iv.upper)
    assert "unbounded" in iv.describe()


def test_monotonicity_test_has_power_against_a_real_dip():
    # A 15-point drop between neighbouring ratios (200 items each): the likelihood-ratio test
    # should catch it most of the time, and more often than the Bonferroni-adjusted pair test.
    rng = np.random.default_rng(7)
    x = np.linspace(1, 3, 8)
    n = np.full(8, 200)
    p = expit(2 * (x - 2))
    p[5] = p[4] - 0.15
    lr_hits = pair_hits = 0
    for k in range(60):
        y = rng.binomial(n, p)
        data = takeoff.validate_results(pd.DataFrame({"size": "1M", "ratio": x, "correct": y, "total": n}))
        t = takeoff.monotonicity_test(data, "1M", n_bootstrap=99, seed=k)
        lr_hits += t.p_value < 0.05
        pair_hits += t.pair_p_bonferroni < 0.05
    assert lr_hits / 60 >= 0.6
    assert lr_hits > pair_hits
