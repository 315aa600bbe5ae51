"""Tests for the seed-004 episode table and `scalebook.trajectories`."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings, strategies as st
from scipy import stats
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.power import NormalIndPower

from scalebook import datasets, tables, trajectories as T
from scalebook.errors import DataError, ParameterError
from scalebook.simulate import episodes as sim

MAIN = ["0.8B-base", "0.8B-sft", "2B-base", "2B-sft", "4B-base", "4B-sft", "frontier"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return T.load_episodes(datasets.entry("episodes")["file"])


@pytest.fixture(scope="module")
def fit(table):
    return T.fit_trajectories(table, n_bootstrap=4000, seed=1)


def _counts(table, col="judge_primary_pass"):
    return table.groupby(["config", "condition"])[col].sum().unstack()


# -- the bundled table ------------------------------------------------------------------------
def test_committed_csv_equals_generator_output():
    path = datasets.entry("episodes")["file"]
    from scalebook import paths
    assert tables.to_csv_bytes(sim.generate(seed=0)) == paths.resolve(path).read_bytes()


def test_design_shape(table):
    main = table[table["design"] == "main"]
    assert len(main) == 2800 and sorted(main["config"].unique()) == sorted(MAIN)
    assert table["task_id"].nunique() == 200 and table["skill_id"].nunique() == 40
    assert (table.groupby("skill_id")["task_id"].nunique() == 5).all()
    paths_per_task = table.groupby("task_id")["scoring_path"].first()
    assert (paths_per_task == "extractor").sum() == 167  # 83.5% of the holdout


def test_headline_numbers_reproduced_exactly_from_counts(table):
    # Counted directly (not through the module) so an error in the module cannot hide one here.
    c = _counts(table)
    delta = {k: (c.loc[k, "curated"] - c.loc[k, "baseline"]) for k in c.index}  # in tasks out of 200
    published_tasks = {"0.8B-base": -15, "2B-base": 12, "4B-base": -2, "frontier": 6,
                       "0.8B-sft": -1, "2B-sft": 20, "4B-sft": 13}
    assert {k: delta[k] for k in published_tasks} == published_tasks
    for s, lift in {"0.8B": 14, "2B": 8, "4B": 15}.items():  # +0.070 / +0.040 / +0.075
        assert delta[f"{s}-sft"] - delta[f"{s}-base"] == lift
    variants = [c.loc[f"0.8B-sft-recipe-{v}", "curated"] for v in "abc"]
    assert max(variants) - min(variants) <= 4  # within a 2-point band (4 tasks of 200)


def test_module_claims_match_published(fit):
    cl = T.claims(fit)
    assert len(cl) == 11 and cl["matches_published"].all()
    for (group, size), value in T.PUBLISHED.items():
        row = cl[(cl["claim"] == group) & (cl["size"] == size)].iloc[0]
        if group == "recipe band":
            assert row["reproduced"] <= value
        else:
            assert round(row["reproduced"], 3) == value


def test_cross_judge_agreement_as_published(table):
    main = table[table["design"] == "main"]
    kappas, agree, shifts = {}, {}, {}
    c_p, c_x = _counts(main), _counts(main, "judge_cross_pass")
    for cfg, g in main.groupby("config"):
        kappas[cfg] = cohen_kappa_score(g["judge_primary_pass"], g["judge_cross_pass"])
        agree[cfg] = (g["judge_primary_pass"] == g["judge_cross_pass"]).mean()
        dp = c_p.loc[cfg, "curated"] - c_p.loc[cfg, "baseline"]
        dx = c_x.loc[cfg, "curated"] - c_x.loc[cfg, "baseline"]
        shifts[cfg] = (dx - dp) / 200
        assert np.sign(dx) == np.sign(dp)  # every direction agrees
    assert min(kappas.values()) >= 0.754 and min(kappas.values()) <= 0.80
    assert min(agree.values()) >= 0.9325 and min(agree.values()) <= 0.95
    assert max(abs(v) for v in shifts.values()) <= 0.035 + 1e-12


def test_extractor_undercounts_more_under_curated(table):
    assert (table.loc[table["answer_line_present"] == 0, "extractor_pass"] == 0).all()
    main = table[table["design"] == "main"]
    deficit = (main["judge_primary_pass"] - main["extractor_pass"]).groupby(main["condition"]).mean()
    assert deficit["baseline"] > 0 and deficit["curated"] > 2 * deficit["baseline"]
    per_config = (main["judge_primary_pass"] - main["extractor_pass"]).groupby(
        [main["config"], main["condition"]]).sum().unstack()
    assert (per_config["curated"] > per_config["baseline"]).all()


# -- scorers ------------------------------------------------------------------------------------
def test_extractor_scorer_is_the_mixed_path(table):
    s = T.scored(table, "extractor")
    ext = table["scoring_path"] == "extractor"
    assert (s[ext] == table.loc[ext, "extractor_pass"]).all()
    assert (s[~ext] == table.loc[~ext, "judge_primary_pass"]).all()
    r = T.fit_trajectories(table, scorer="extractor", n_bootstrap=200)
    g = table[table["config"] == "4B-sft"].assign(p=s)
    manual = g.groupby("condition")["p"].mean()
    got = r.deltas.set_index("config").loc["4B-sft", "estimate"]
    assert got == pytest.approx(manual["curated"] - manual["baseline"])
    with pytest.raises(ParameterError, match="scorer"):
        T.scored(table, "gpt")
    with pytest.raises(DataError, match="judge_cross_pass"):
        T.scored(table.drop(columns="judge_cross_pass"), "judge_cross")


# -- bootstrap versus cluster-robust OLS ----------------------------------------------------------
def test_bootstrap_agrees_with_statsmodels_cluster_ols(table, fit):
    """Point estimates are identical; bootstrap SEs match the CR0 standard error.

    The ideal cluster bootstrap variance of a mean of equal-sized clusters is exactly the CR0
    sandwich variance; statsmodels reports CR1 = CR0 * G/(G-1). With B = 4000 resamples the Monte
    Carlo relative error of a bootstrap SE is about 1/sqrt(2B) = 1.1%, so 5% is over 4 MC sds.
    """
    G = 40
    for name in ["delta[0.8B-base]", "delta[2B-sft]", "delta[frontier]", "lift[0.8B]", "lift[4B]"]:
        row = pd.concat([fit.deltas, fit.lifts]).set_index("contrast").loc[name]
        # The same contrast rebuilt here, from the raw table, then fitted by statsmodels.
        wide = table.pivot_table(index=["task_id", "skill_id"], columns=["config", "condition"],
                                 values="judge_primary_pass").sort_index()
        d = lambda c: wide[(c, "curated")] - wide[(c, "baseline")]  # noqa: E731
        inner = name[name.index("[") + 1:-1]
        y = d(inner) if name.startswith("delta") else d(f"{inner}-sft") - d(f"{inner}-base")
        groups = pd.factorize(wide.index.get_level_values("skill_id"))[0]
        ols = sm.OLS(y.to_numpy(), np.ones((len(y), 1))).fit(cov_type="cluster", cov_kwds={"groups": groups})
        assert row["estimate"] == pytest.approx(ols.params[0], abs=1e-12)
        assert row["ols_se"] == pytest.approx(ols.bse[0], rel=1e-12)
        cr0 = ols.bse[0] * math.sqrt((G - 1) / G)
        resid = y.to_numpy() - y.mean()
        by_hand = math.sqrt(np.sum(np.bincount(groups, weights=resid) ** 2)) / len(y)
        assert cr0 == pytest.approx(by_hand, rel=1e-10)
        assert row["se"] == pytest.approx(cr0, rel=0.05)


def test_interval_coverage_on_simulated_data_with_known_effect():
    """200 seeded replicates of a 40-skill paired design with Delta = 0.05: 95% coverage."""
    delta, hits, hits_ols = 0.05, 0, 0
    for rep in range(200):
        d = sim.paired_design(rep, delta=delta, skill_sd=0.1)
        wide = d.pivot_table(index=["task_id", "skill_id"], columns="condition", values="judge_primary_pass")
        x = (wide["curated"] - wide["baseline"]).to_numpy()
        codes = pd.factorize(wide.index.get_level_values("skill_id"))[0]
        w = T.cluster_weights(40, 1000, seed=10_000 + rep)
        lo, hi = T.percentile_interval(T.cluster_bootstrap_means(x, codes, w), 0.05)
        hits += lo[0] <= delta <= hi[0]
        o = T.cluster_ols(x, codes)
        hits_ols += o["lower"] <= delta <= o["upper"]
    assert 0.90 <= hits / 200 <= 0.99
    assert 0.90 <= hits_ols / 200 <= 0.99


def test_fit_uses_the_same_bootstrap_as_the_primitives():
    d = T.validate_episodes(sim.paired_design(3))
    r = T.fit_trajectories(d, n_bootstrap=500, seed=7)
    wide = d.pivot_table(index=["task_id", "skill_id"], columns="condition", values="judge_primary_pass").sort_index()
    x = (wide["curated"] - wide["baseline"]).to_numpy()
    codes = pd.factorize(wide.index.get_level_values("skill_id"), sort=True)[0]
    lo, hi = T.percentile_interval(T.cluster_bootstrap_means(x, codes, T.cluster_weights(40, 500, 7)), 0.05)
    row = r.deltas.iloc[0]
    assert (row["lower"], row["upper"]) == pytest.approx((lo[0], hi[0]))
    assert r.conf_int().loc["delta[1B-base]"].tolist() == pytest.approx([lo[0], hi[0]])


def test_naive_bootstrap_would_be_too_narrow_when_skills_matter():
    """The clustering is not decorative: with a strong skill effect, the cluster SE exceeds the iid SE."""
    d = T.validate_episodes(sim.paired_design(5, delta=0.0, skill_sd=0.14, shared=0.9))
    r = T.fit_trajectories(d, n_bootstrap=2000, seed=0)
    x = d.pivot_table(index="task_id", columns="condition", values="judge_primary_pass")
    iid_se = (x["curated"] - x["baseline"]).std(ddof=1) / math.sqrt(len(x))
    assert r.deltas.iloc[0]["se"] > 1.15 * iid_se


def test_determinism(table):
    a = T.fit_trajectories(table, n_bootstrap=300, seed=4)
    b = T.fit_trajectories(table, n_bootstrap=300, seed=4)
    pd.testing.assert_frame_equal(a.draws, b.draws)
    pd.testing.assert_frame_equal(T.claims(a), T.claims(b))


# -- shape, MDE, recipe band --------------------------------------------------------------------
def test_trajectory_shape_and_its_bootstrap_share(fit):
    sh = fit.shapes.set_index("trajectory")
    assert sh.loc["pre-SFT (base) + frontier", "pattern"] == "+-+"  # the W
    assert sh.loc["post-SFT", "pattern"] == "+-"
    names = [f"delta[{c}]" for c in ["0.8B-base", "2B-base", "4B-base", "frontier"]]
    dr = fit.draws[names].to_numpy()
    keep = (np.diff(dr, axis=1)[:, 0] > 0) & (np.diff(dr, axis=1)[:, 1] < 0) & (np.diff(dr, axis=1)[:, 2] > 0)
    assert sh.loc["pre-SFT (base) + frontier", "share_kept"] == pytest.approx(keep.mean())
    assert 0 < keep.mean() < 1


def test_mde_matches_statsmodels_power():
    sd, n, icc, G = 0.38, 200, 0.1, 40
    m = T.mde(sd ** 2, n, G, icc, alpha=0.05, power=0.8)
    assert m["deff"] == pytest.approx(1 + 4 * 0.1)
    es = NormalIndPower().solve_power(effect_size=None, nobs1=n, alpha=0.05, power=0.8, ratio=0)
    assert m["mde"] == pytest.approx(es * sd * math.sqrt(m["deff"]), rel=1e-3)
    # The tasks that make an effect of exactly the MDE detectable are this design's 200.
    assert T.tasks_needed(m["mde"], sd ** 2, m["deff"], 5) == 200
    assert math.isinf(T.tasks_needed(0.0, sd ** 2, m["deff"], 5))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_icc_matches_scipy_anova(seed):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(8), 5)
    x = rng.normal(0, 1, 8)[g] + rng.normal(0, 1, 40)
    f = stats.f_oneway(*[x[g == k] for k in range(8)]).statistic
    assert T.icc_oneway(x, g) == pytest.approx((f - 1) / (f + 5 - 1))


def test_design_mde_is_in_the_expected_range(fit):
    dm = T.design_mde(fit)
    assert 0.07 <= dm["mde_no_clustering"] <= 0.08  # ANALYSES.md: "around 0.07-0.08"
    assert dm["mde"] > dm["mde_no_clustering"]


def test_recipe_band(fit):
    b = fit.band
    assert b["width"] == pytest.approx(0.015) and len(b["pairs"]) == 3
    assert set(fit.recipes["role"]) == {"recipe variant", "main SFT"}


def test_charts_build(fit):
    for chart in (T.trajectory_chart(fit, data_label="simulated"), T.lift_chart(fit), T.recipe_band_chart(fit)):
        spec = chart.to_dict()
        assert spec["layer"]


# -- malformed tables ------------------------------------------------------------------------------
def _write(tmp_path, df):
    path = tmp_path / "episodes.csv"
    tables.write_csv(df, path)
    return path


@pytest.fixture
def small(table):
    return table[table["config"].isin(["2B-base", "2B-sft"])].reset_index(drop=True)


def test_missing_pair_is_named(tmp_path, small):
    bad = small.drop(index=[5]).reset_index(drop=True)  # row 6 of the file: T003 curated
    with pytest.raises(DataError, match=r"missing pair.*row 5\b") as e:
        T.load_episodes(_write(tmp_path, bad))
    assert "episodes.csv" in str(e.value)


def test_duplicate_episode_is_named(tmp_path, small):
    bad = pd.concat([small, small.iloc[[10]]], ignore_index=True)
    with pytest.raises(DataError, match=r"unique by \['config', 'task_id', 'condition'\]; rows 11, 801"):
        T.load_episodes(_write(tmp_path, bad))


def test_unknown_condition_is_named(tmp_path, small):
    bad = small.copy()
    bad.loc[7, "condition"] = "treatment"
    with pytest.raises(DataError, match=r"'condition'.*row 8 hold \['treatment'\]"):
        T.load_episodes(_write(tmp_path, bad))


def test_pass_values_other_than_binary_are_named(tmp_path, small):
    bad = small.copy()
    bad.loc[[2, 9], "judge_primary_pass"] = [2, -1]
    with pytest.raises(DataError, match=r"'judge_primary_pass' must hold 0 or 1; rows 3, 10 hold \[-1.0, 2.0\]"):
        T.load_episodes(_write(tmp_path, bad))
    bad = small.copy()
    bad["judge_cross_pass"] = bad["judge_cross_pass"].astype(float)
    bad.loc[4, "judge_cross_pass"] = 0.5
    with pytest.raises(DataError, match=r"'judge_cross_pass'.*row 5\b"):
        T.load_episodes(_write(tmp_path, bad))


def test_task_in_two_skills_and_extractor_without_line_are_named(small):
    bad = small.copy()
    bad.loc[0, "skill_id"] = "S40"
    with pytest.raises(DataError, match=r"single skill_id.*rows 1, 2, 401, 402"):
        T.validate_episodes(bad)
    bad = small.copy()
    i = bad.index[bad["answer_line_present"] == 0][0]
    bad.loc[i, "extractor_pass"] = 1
    with pytest.raises(DataError, match=rf"answer_line_present is 0.*row {i + 1}\b"):
        T.validate_episodes(bad)


def test_config_missing_tasks_is_named(small):
    bad = small[~((small["config"] == "2B-sft") & (small["task_id"] == "T010"))]
    with pytest.raises(DataError, match=r"config '2B-sft'.*lacks 1 task"):
        T.validate_episodes(bad)


def test_column_mapping(tmp_path, small):
    renamed = small.rename(columns={"judge_primary_pass": "pass_primary", "skill_id": "cluster"})
    df = T.load_episodes(_write(tmp_path, renamed),
                         columns={"judge_primary_pass": "pass_primary", "skill_id": "cluster"})
    assert {"judge_primary_pass", "skill_id"} <= set(df.columns)


def test_minimal_table_without_optional_columns():
    """A user table with only the required columns: lifts, shapes and claims still work, published is NaN."""
    df = pd.concat([sim.paired_design(i, delta=dl, config=c) for i, (c, dl) in
                    enumerate([("1B-base", -0.02), ("1B-sft", 0.05), ("3B-base", 0.04), ("3B-sft", 0.08)])])
    v = T.validate_episodes(df.drop(columns=["design"]))
    assert T.available_scorers(v) == ["judge_primary"]
    r = T.fit_trajectories(v, n_bootstrap=200)
    assert list(r.lifts["size"]) == ["1B", "3B"]
    assert r.lifts.set_index("size").loc["1B", "estimate"] == pytest.approx(
        r.deltas.set_index("config").loc["1B-sft", "estimate"] - r.deltas.set_index("config").loc["1B-base", "estimate"])
    cl = T.claims(r)
    assert cl["published"].isna().all() and not cl["matches_published"].any()
    assert T.published_match_text(cl).startswith("None")
    assert not r.band["available"] and T.recipe_band_chart(r).to_dict()
    with pytest.raises(DataError, match="extractor"):
        T.fit_trajectories(v, scorer="extractor", n_bootstrap=10)
