"""scalebook.judges and scalebook.raters against statsmodels, scikit-learn, krippendorff, published
values (textbook kappa table, Agresti's McNemar table, Fagerland et al.'s mid-p example, the irrCAC
package's documented output) and the real PandaLM and LLMBar data when present."""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import HealthCheck, given, settings, strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.contingency_tables import SquareTable, mcnemar
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa
from statsmodels.stats.multitest import multipletests

from scalebook import judges, raters
from scalebook.errors import DataError, FitError

EXTERNAL = Path(__file__).resolve().parents[1].parent / "shared" / "external"
PANDALM = EXTERNAL / "pandalm-testset"
LLMBAR = EXTERNAL / "llmbar"
EPISODES = Path(__file__).resolve().parents[1] / "data" / "episodes.csv"


def expand(table) -> tuple[np.ndarray, np.ndarray]:
    """Rater vectors whose cross-table is `table` (rows: rater a)."""
    t = np.asarray(table)
    k = t.shape[0]
    a = np.repeat(np.repeat(np.arange(k), k), t.ravel())
    b = np.repeat(np.tile(np.arange(k), k), t.ravel())
    return a, b


def quiet_agreement(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", judges.UndefinedStatisticWarning)
        return judges.agreement(*args, **kwargs)


# ----------------------------------------------------------------------------------------------
# published values
# ----------------------------------------------------------------------------------------------
def test_textbook_kappa_and_its_fleiss_cohen_everitt_se():
    a, b = expand([[31, 12], [4, 58]])
    res = judges.agreement(a, b, n_boot=0)
    assert res.params["kappa"] == pytest.approx(0.6757, abs=5e-5)
    assert res.bse["kappa"] == pytest.approx(0.0734, abs=5e-5)
    sm_res = cohens_kappa(np.array([[31, 12], [4, 58]]))
    # 0.0734 is the non-null (Fleiss-Cohen-Everitt) SE; the SE under H0: kappa = 0 is 0.0963.
    assert res.bse["kappa"] == pytest.approx(sm_res["std_kappa"], rel=1e-12)
    assert sm_res["std_kappa0"] == pytest.approx(0.0963, abs=5e-5)
    ci = res.conf_int(method="asymptotic").loc["kappa"]
    assert (ci["lower"], ci["upper"]) == pytest.approx((sm_res["kappa_low"], sm_res["kappa_upp"]), rel=1e-12)


def test_agresti_mcnemar_uncorrected_chi_square():
    a, b = expand([[794, 150], [86, 570]])
    mc = judges.agreement(a, b, n_boot=0).mcnemar
    assert mc.statistic == pytest.approx(17.36, abs=5e-3)
    ref = mcnemar(np.array([[794, 150], [86, 570]]), exact=False, correction=False)
    assert mc.statistic == pytest.approx(ref.statistic) and mc.pvalue == pytest.approx(ref.pvalue)
    assert mc.pvalue_exact == pytest.approx(mcnemar(np.array([[794, 150], [86, 570]]), exact=True).pvalue)


def test_mcnemar_mid_p_published_example():
    # Fagerland, Lydersen & Laake (2013), BMC Med Res Methodol 13:91: b = 1, c = 7 gives exact
    # conditional p = 0.070, mid-p = 0.039, asymptotic McNemar p = 0.034.
    mc = judges.mcnemar_test(np.array([[1, 1], [7, 12]]))
    assert mc.pvalue_exact == pytest.approx(0.070, abs=5e-4)
    assert mc.pvalue_midp == pytest.approx(0.039, abs=5e-4)
    assert mc.pvalue == pytest.approx(0.034, abs=5e-4)


def test_irrcac_documented_two_rater_coefficients_and_ses():
    # kgwet/irrCAC README: cont3x3abstractors with kappa2/scott2/gwet.ac1/bp2/krippen2/pa2.table.
    a, b = expand([[13, 0, 0], [0, 20, 7], [0, 4, 56]])
    res = judges.agreement(a, b, n_boot=0)
    expected = {"kappa": (0.7964094, 0.05891072), "scott_pi": (0.7962397, 0.05905473),
                "ac1": (0.8493305, 0.04321747), "pabak": (0.835, 0.04693346),
                "percent_agreement": (0.89, 0.03128898)}
    for stat, (est, se) in expected.items():
        assert res.params[stat] == pytest.approx(est, abs=1e-7), stat
        assert res.bse[stat] == pytest.approx(se, abs=1e-7), stat
    assert res.params["alpha"] == pytest.approx(0.7972585, abs=1e-7)


# ----------------------------------------------------------------------------------------------
# every coefficient against the established libraries, on random tables
# ----------------------------------------------------------------------------------------------
tables_st = st.integers(2, 4).flatmap(
    lambda k: st.lists(st.integers(0, 30), min_size=k * k, max_size=k * k).map(
        lambda v: np.array(v).reshape(k, k))).filter(lambda t: t.sum() >= 2)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(tables_st)
def test_coefficients_equal_reference_libraries(table):
    k = table.shape[0]
    a, b = expand(table)
    res = quiet_agreement(a, b, n_boot=0, categories=list(range(k)))
    row, col = table.sum(1), table.sum(0)
    one_constant = (row == table.sum()).any() or (col == table.sum()).any()
    if one_constant:
        assert np.isnan(res.params["kappa"]) and "kappa" in res.undefined
        # scikit-learn returns a number (0 or NaN) here; we report undefined instead
    else:
        ref = cohens_kappa(table)
        assert res.params["kappa"] == pytest.approx(ref["kappa"], abs=1e-12)
        assert res.bse["kappa"] == pytest.approx(ref["std_kappa"], abs=1e-12)
        assert res.params["kappa"] == pytest.approx(cohen_kappa_score(a, b, labels=list(range(k))), abs=1e-12)
    data = np.column_stack([a, b])
    counts, _ = aggregate_raters(data, n_cat=k)
    single = ((row + col) == 2 * table.sum()).any()
    if single:
        assert np.isnan(res.params["scott_pi"]) and np.isnan(res.params["alpha"])
    else:
        assert res.params["scott_pi"] == pytest.approx(fleiss_kappa(counts, method="fleiss"), abs=1e-12)
        alpha_ref = krippendorff.alpha(reliability_data=data.T.astype(float), level_of_measurement="nominal")
        assert res.params["alpha"] == pytest.approx(alpha_ref, abs=1e-10)
    assert res.params["pabak"] == pytest.approx(fleiss_kappa(counts, method="randolph"), abs=1e-12)
    assert res.params["percent_agreement"] == pytest.approx(np.trace(table) / table.sum())
    if k == 2:
        b_, c_ = table[0, 1], table[1, 0]
        assert res.mcnemar.pvalue_exact == pytest.approx(mcnemar(table, exact=True).pvalue, abs=1e-12)
        if b_ + c_ > 0:
            ref = mcnemar(table, exact=False, correction=False)
            assert res.mcnemar.statistic == pytest.approx(ref.statistic, abs=1e-12)
    else:
        ref = SquareTable(table, shift_zeros=False).symmetry()
        assert res.mcnemar.statistic == pytest.approx(ref.statistic, abs=1e-9)
        assert res.mcnemar.df == ref.df
        assert res.mcnemar.pvalue == pytest.approx(ref.pvalue, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12), st.integers(0, 3))
def test_holm_equals_statsmodels(pvals, n_nan):
    p = np.array(pvals)
    mine = judges.holm(np.concatenate([p, [np.nan] * n_nan]))
    assert np.isnan(mine[len(p):]).all()
    np.testing.assert_allclose(mine[:len(p)], multipletests(p, method="holm")[1], atol=1e-12)


# ----------------------------------------------------------------------------------------------
# the design-respecting parts: cluster-robust SE, clustered McNemar, cluster bootstrap
# ----------------------------------------------------------------------------------------------
def _random_raters(n, rng, p_pass=0.7, flip=0.1):
    a = (rng.random(n) < p_pass).astype(int)
    b = np.where(rng.random(n) < flip, 1 - a, a)
    return a, b


def test_singleton_clusters_reduce_to_the_iid_formulas():
    rng = np.random.default_rng(1)
    a, b = _random_raters(300, rng)
    res = judges.agreement(a, b, clusters=np.arange(300), n_boot=0)
    for s in judges.ASYMPTOTIC:
        assert res.bse_cluster[s] == pytest.approx(res.bse[s] * np.sqrt(300 / 299), rel=1e-10)
    chi2 = mcnemar(res.table.to_numpy(), exact=False, correction=False).statistic
    assert res.mcnemar.statistic_clustered == pytest.approx(chi2, rel=1e-12)


def test_cluster_bootstrap_sees_duplicated_items():
    # Each item copied 4 times inside its cluster carries no new information: the cluster bootstrap
    # SE must match the iid SE of the original items, not the naive SE of the copies (half as big).
    rng = np.random.default_rng(2)
    a, b = _random_raters(400, rng)
    base = judges.agreement(a, b, n_boot=0).bse["kappa"]
    dup = judges.agreement(np.repeat(a, 4), np.repeat(b, 4), clusters=np.repeat(np.arange(400), 4),
                           n_boot=2000, seed=3)
    boot_se = dup.boot["kappa"].std(ddof=1)
    assert boot_se == pytest.approx(base, rel=0.12)
    assert dup.bse_cluster["kappa"] == pytest.approx(base, rel=0.01)
    assert dup.bse["kappa"] == pytest.approx(base / 2, rel=0.01)
    lo, hi = dup.conf_int(method="bootstrap").loc["kappa"]
    assert lo < dup.params["kappa"] < hi


def test_iid_bootstrap_matches_asymptotic_se_and_is_deterministic():
    rng = np.random.default_rng(4)
    a, b = _random_raters(2000, rng)
    r1 = judges.agreement(a, b, n_boot=2000, seed=7)
    r2 = judges.agreement(a, b, n_boot=2000, seed=7)
    r3 = judges.agreement(a, b, n_boot=2000, seed=8)
    pd.testing.assert_frame_equal(r1.boot, r2.boot)
    assert not r1.boot.equals(r3.boot)
    for s in ("kappa", "ac1", "pabak"):
        assert r1.boot[s].std(ddof=1) == pytest.approx(r1.bse[s], rel=0.1), s


def test_cluster_multiplicities_are_multinomial_resamples():
    blocks = list(judges.cluster_multiplicities(50, 300, seed=0))
    w = np.vstack(blocks)
    assert w.shape == (300, 50) and (w.sum(axis=1) == 50).all()
    assert w.mean() == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------
# errors and undefined statistics
# ----------------------------------------------------------------------------------------------
def test_different_lengths_fail():
    with pytest.raises(DataError, match="rater a has 3 ratings, rater b has 2"):
        judges.agreement([1, 0, 1], [1, 0])


def test_empty_input_fails():
    with pytest.raises(DataError, match="empty"):
        judges.agreement([], [])


def test_labels_outside_categories_fail_naming_rows():
    with pytest.raises(DataError, match=r"rater b: labels \['maybe'\] at row 3"):
        judges.agreement(["pass", "fail", "pass"], ["pass", "fail", "maybe"], categories=["fail", "pass"])


def test_missing_ratings_and_bad_clusters_fail():
    with pytest.raises(DataError, match="missing ratings at row 2"):
        judges.agreement([1, None, 0], [1, 0, 0])
    with pytest.raises(DataError, match="2 cluster ids for 3"):
        judges.agreement([1, 0, 0], [1, 0, 0], clusters=[1, 2])


def test_one_constant_rater_makes_kappa_undefined_with_a_warning():
    with pytest.warns(judges.UndefinedStatisticWarning, match="kappa and kappa_max are undefined: rater a gives every item"):
        res = judges.agreement([1, 1, 1, 1, 1, 1], [1, 0, 1, 1, 0, 1], n_boot=50)
    assert np.isnan(res.params["kappa"]) and np.isnan(res.params["kappa_max"])
    assert "rater a" in res.undefined["kappa"]
    assert res.boot["kappa"].isna().all()
    assert np.isnan(res.conf_int(method="bootstrap").loc["kappa"]).all()
    assert np.isfinite(res.params["ac1"]) and np.isfinite(res.params["pabak"])
    # scikit-learn reports a number here (0.0): the reason we do not
    assert cohen_kappa_score([1, 1, 1, 1, 1, 1], [1, 0, 1, 1, 0, 1]) == 0.0


def test_nothing_computable_raises_fit_error():
    with pytest.raises(FitError, match="only one category"):
        judges.agreement(["a", "a"], ["a", "a"])


def test_no_discordant_pairs_is_stated():
    mc = judges.mcnemar_test(np.array([[5, 0], [0, 7]]))
    assert np.isnan(mc.statistic) and mc.pvalue_exact == 1.0 and "no discordant" in mc.note


# ----------------------------------------------------------------------------------------------
# episodes: headline shift, extractor bias, scoring variants
# ----------------------------------------------------------------------------------------------
def _episodes(rng, n_skills=12, tasks=4):
    rows = []
    for s in range(n_skills):
        for t in range(tasks):
            task = f"T{s}-{t}"
            for cond in ("baseline", "curated"):
                pa = int(rng.random() < (0.5 if cond == "baseline" else 0.6))
                pb = pa if rng.random() < 0.85 else 1 - pa
                parsed = int(rng.random() < (0.9 if cond == "baseline" else 0.7))
                ext = pa * parsed
                rows.append(dict(config="c1", task_id=task, skill_id=f"S{s}", condition=cond, judge_a=pa,
                                 judge_b=pb, answer_line_present=parsed, extractor_pass=ext,
                                 scoring_path="extractor" if t < 3 else "llm"))
    return pd.DataFrame(rows)


def test_headline_shift_equals_paired_means_and_statsmodels_cluster_ols():
    rng = np.random.default_rng(5)
    ep = pd.concat([_episodes(rng).assign(config=c) for c in ("x", "y")], ignore_index=True)
    ep.loc[ep.config == "y", "judge_b"] = 1 - ep.loc[ep.config == "y", "judge_b"]
    res = judges.headline_shift(ep, "judge_a", "judge_b", n_boot=500, seed=1)
    for cfg, g in ep.groupby("config"):
        w = g.pivot(index="task_id", columns="condition", values=["judge_a", "judge_b"])
        da = (w["judge_a"]["curated"] - w["judge_a"]["baseline"])
        db = (w["judge_b"]["curated"] - w["judge_b"]["baseline"])
        row = res.frame.set_index("config").loc[cfg]
        assert row["delta_a"] == pytest.approx(da.mean()) and row["delta_b"] == pytest.approx(db.mean())
        skills = g.drop_duplicates("task_id").set_index("task_id").loc[w.index, "skill_id"]
        ols = sm.OLS((db - da).to_numpy(), np.ones(len(da))).fit(
            cov_type="cluster", cov_kwds={"groups": pd.factorize(skills)[0]}, use_t=True)
        assert row["shift_se"] == pytest.approx(ols.bse[0], rel=1e-10)
        assert row["p"] == pytest.approx(ols.pvalues[0], rel=1e-8)
        assert row["shift_boot_lower"] <= row["shift"] <= row["shift_boot_upper"]
    np.testing.assert_allclose(res.frame["p_holm"], multipletests(res.frame["p"], method="holm")[1])


def test_headline_shift_pairing_errors_name_rows():
    ep = _episodes(np.random.default_rng(6))
    with pytest.raises(DataError, match="needs both a 'baseline' and a 'curated'.*violated at row 1$"):
        judges.headline_shift(ep.drop(index=1), "judge_a", "judge_b", n_boot=0)
    with pytest.raises(DataError, match="must appear once"):
        judges.headline_shift(pd.concat([ep, ep.iloc[[0]]]), "judge_a", "judge_b", n_boot=0)
    bad = ep.copy()
    bad.loc[3, "condition"] = "other"
    with pytest.raises(DataError, match="must be 'baseline' or 'curated'; violated at row 4"):
        judges.headline_shift(bad, "judge_a", "judge_b", n_boot=0)
    bad = ep.copy()
    bad["judge_b"] = bad["judge_b"].astype(float)
    bad.loc[0, "judge_b"] = 2
    with pytest.raises(DataError, match="'judge_b' must hold 0, 1"):
        judges.headline_shift(bad, "judge_a", "judge_b", n_boot=0)


def test_scoring_variant_policies():
    ep = pd.DataFrame({"extractor_pass": [0, 1, 0], "judge_primary_pass": [1, 1, 0],
                       "answer_line_present": [0, 1, 1], "scoring_path": ["extractor", "llm", "extractor"]})
    scored, variants = judges.scoring_variants(ep)
    assert scored["score_extractor_fail"].tolist() == [0, 1, 0]
    assert scored["score_extractor_drop"].isna().tolist() == [True, False, False]
    assert scored["score_extractor_judge"].tolist() == [1, 1, 0]
    assert scored["score_bench_fail"].tolist() == [0, 1, 0]  # row 2 is on the llm path: the judge
    assert len(variants) == 7


def test_dropped_tasks_keep_the_comparison_paired():
    ep = _episodes(np.random.default_rng(7))
    scored, _ = judges.scoring_variants(ep, judge_col="judge_a")
    res = judges.headline_shift(scored, "score_judge", "score_extractor_drop", n_boot=0).frame.iloc[0]
    unparsed_tasks = ep.loc[ep["answer_line_present"] == 0, "task_id"].nunique()
    assert res["n_tasks_dropped"] == unparsed_tasks
    assert res["n_tasks"] == ep["task_id"].nunique() - unparsed_tasks


@pytest.mark.skipif(not EPISODES.exists(), reason="bundled episode table not present")
def test_bundled_episodes_extractor_bias_against_statsmodels():
    ep = pd.read_csv(EPISODES)
    ep = ep[ep["design"] == "main"]
    bias = judges.extractor_bias(ep, n_boot=100)
    for r in bias.itertuples():
        g = ep[(ep.config == r.config) & (ep.condition == r.condition)]
        tab = pd.crosstab(g.judge_primary_pass, g.extractor_pass).reindex(index=[0, 1], columns=[0, 1],
                                                                          fill_value=0).to_numpy()
        assert (r.judge_only, r.extractor_only) == (tab[1, 0], tab[0, 1])
        assert r.mcnemar_p_exact == pytest.approx(mcnemar(tab, exact=True).pvalue)
        assert r.unparseable_rate == pytest.approx((g.answer_line_present == 0).mean())
    pairs = raters.episode_pairs(ep)
    tab = judges.agreement_table(pairs, n_boot=0)
    for r in tab.itertuples():
        g = ep[ep.config == r.comparison]
        assert r.kappa == pytest.approx(cohen_kappa_score(g.judge_primary_pass, g.judge_cross_pass))


# ----------------------------------------------------------------------------------------------
# real rater data
# ----------------------------------------------------------------------------------------------
needs_pandalm = pytest.mark.skipif(not PANDALM.exists(), reason="../shared/external/pandalm-testset not present")
needs_llmbar = pytest.mark.skipif(not LLMBAR.exists(), reason="../shared/external/llmbar not present")


@needs_pandalm
def test_pandalm_loader_reproduces_published_values_and_derived_labels():
    wide = raters.read_pandalm(PANDALM)
    # README: pairwise human kappas 0.85 / 0.88 / 0.86 (0.8520, 0.8789, 0.8617 to 4 digits).
    for (x, y), pub in {("annotator1", "annotator2"): 0.8520, ("annotator1", "annotator3"): 0.8789,
                        ("annotator2", "annotator3"): 0.8617}.items():
        res = judges.agreement(wide[x], wide[y], n_boot=0)
        assert res.params["kappa"] == pytest.approx(pub, abs=5e-5)
        assert res.params["kappa"] == pytest.approx(cohen_kappa_score(wide[x], wide[y]), abs=1e-12)
    assert wide["human_majority"].value_counts()[["tie", "1", "2"]].tolist() == [105, 422, 472]
    derived = pd.read_csv(PANDALM / "derived" / "labels.csv")
    assert (wide["cluster"].to_numpy() == derived["instruction_cluster"].to_numpy()).all()
    codes = {"tie": 0, "1": 1, "2": 2, "invalid": -1}
    assert (wide["gpt-3.5-turbo"].map(codes).to_numpy() == derived["gpt35_code"].to_numpy()).all()
    assert (wide["PandaLM-7B"].map(codes).to_numpy() == derived["pandalm7b"].to_numpy()).all()
    assert (wide["human_majority"].map(codes).to_numpy() == derived["human_majority"].to_numpy()).all()


@needs_pandalm
def test_pandalm_agreement_equals_reference_libraries_and_policies():
    raw = raters.load_pandalm(PANDALM, invalid="category")
    assert int((raw["rater_b"] == raters.INVALID).sum()) == 25
    dropped = raters.apply_invalid_policy(raw, "drop")
    assert len(raw) - len(dropped) == 2 * 25  # gpt-3.5 sits in two of the three comparisons
    with pytest.raises(DataError, match="policy 'error'"):
        raters.apply_invalid_policy(raw, "error")
    tab = judges.agreement_table(dropped, n_boot=200)
    assert tab["n_clusters"].max() == 170
    for r in tab.itertuples():
        g = dropped[dropped.comparison == r.comparison]
        assert r.kappa == pytest.approx(cohen_kappa_score(g.rater_a, g.rater_b), abs=1e-12)
        codes = {"tie": 0, "1": 1, "2": 2}
        data = np.vstack([g.rater_a.map(codes), g.rater_b.map(codes)]).astype(float)
        assert r.alpha == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
        ref = SquareTable(pd.crosstab(g.rater_a, g.rater_b).to_numpy(), shift_zeros=False).symmetry()
        assert r.mcnemar_p == pytest.approx(ref.pvalue)
        assert r.kappa_boot_lower < r.kappa < r.kappa_boot_upper


def _published(stats: dict, key: str) -> tuple[int, int]:
    m = re.match(r"(\d+) / (\d+)", stats[key])
    return int(m.group(1)), int(m.group(2))


@needs_llmbar
def test_llmbar_loader_matches_derived_csv_and_published_statistics():
    wide = raters.read_llmbar(LLMBAR)
    derived = pd.read_csv(LLMBAR / "derived" / "vanilla_verdicts.csv")
    m = wide.merge(derived, on=["subset", "item", "judge"], validate="one_to_one")
    assert len(m) == 2514
    for mine, theirs in (("verdict_original", "verdict_orig_order"), ("verdict_swapped", "verdict_swapped_order")):
        ref = m[theirs].map(lambda v: raters.INVALID if pd.isna(v) else str(int(v)))
        assert (m[mine] == ref).all()
    for (subset, judge), g in wide.groupby(["subset", "judge"]):
        stats = json.loads((LLMBAR / "Dataset" / "LLMBar" / subset / "evaluators" / judge / "Vanilla" /
                            "statistics.json").read_text())
        correct, n = _published(stats, "correct_False")
        assert (g["verdict_original"] == g["gold"]).sum() == correct and len(g) == n
        equal, _ = _published(stats, "equal")
        assert (g["verdict_original"] == g["verdict_swapped"]).sum() == equal
        # kappa_agreement folds null verdicts into class "2" (see PROVENANCE.md)
        fold = {raters.INVALID: "2"}
        res = quiet_agreement(g["verdict_original"].replace(fold), g["verdict_swapped"].replace(fold),
                              categories=["1", "2"], n_boot=0)
        if np.isfinite(res.params["kappa"]):
            assert res.params["kappa"] == pytest.approx(stats["kappa_agreement"], abs=1e-9)


@needs_llmbar
def test_llmbar_gpt4_natural_published_example():
    pairs = raters.load_llmbar(LLMBAR, judges=["GPT-4"])
    order = pairs[(pairs.comparison == "GPT-4: original vs swapped order") & (pairs.subset == "Natural")]
    res = judges.agreement(order.rater_a, order.rater_b, n_boot=0)
    assert res.params["percent_agreement"] == pytest.approx(0.95)
    assert res.params["kappa"] == pytest.approx(0.897708674304419, abs=1e-12)
    gold = pairs[(pairs.comparison == "GPT-4 vs gold (original order)") & (pairs.subset == "Natural")]
    res = judges.agreement(gold.rater_a, gold.rater_b, n_boot=0)
    assert res.params["percent_agreement"] == pytest.approx(0.95)
    assert res.params["kappa"] == pytest.approx(cohen_kappa_score(gold.rater_a, gold.rater_b))


def test_pairs_schema_rejects_duplicates_and_blank_labels():
    df = pd.DataFrame({"comparison": ["x", "x"], "item_id": ["1", "1"], "cluster": ["a", "a"],
                       "rater_a": ["1", "2"], "rater_b": ["1", "2"]})
    with pytest.raises(DataError, match="unique by"):
        raters.validate_pairs(df)
    df["item_id"] = ["1", "2"]
    df.loc[1, "rater_b"] = ""
    with pytest.raises(DataError, match="rater_b"):
        raters.validate_pairs(df)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 25), min_size=4, max_size=4).filter(lambda v: sum(v) >= 2))
def test_kappa_max_and_byrt_identity_for_two_categories(cells):
    table = np.array(cells).reshape(2, 2)
    res = quiet_agreement(*expand(table), n_boot=0, categories=[0, 1])
    if np.isnan(res.params["kappa"]):
        return
    # kappa_max: the largest kappa over all tables with these marginals (one free cell for 2x2)
    r0, c0, n = table[0].sum(), table[:, 0].sum(), table.sum()
    best = max(cohens_kappa(np.array([[x, r0 - x], [c0 - x, n - r0 - c0 + x]]))["kappa"]
               for x in range(max(0, r0 + c0 - n), min(r0, c0) + 1))
    assert res.params["kappa_max"] == pytest.approx(best, abs=1e-12)
    # Byrt, Bishop & Carlin (1993): kappa = (PABAK - PI^2 + BI^2) / (1 - PI^2 + BI^2)
    pi, bi = res.chance["prevalence_index"], res.chance["bias_index"]
    assert res.params["kappa"] == pytest.approx((res.params["pabak"] - pi ** 2 + bi ** 2) / (1 - pi ** 2 + bi ** 2))


@pytest.mark.slow
@pytest.mark.parametrize("set_name", ["pandalm", "llmbar"])
def test_chapter_reruns_on_the_real_rater_sets(set_name, tmp_path):
    import jupytext
    import papermill as pm

    from scalebook import config

    entry = config.load().notebook("judge_statistics")
    params = entry.set_params(set_name)
    folder = EXTERNAL / Path(params["data_path"]).name
    if not folder.exists():
        pytest.skip(f"external validation data not present at {params['data_path']}")
    pm.execute_notebook(jupytext.read(entry.source), str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
                        parameters={**params, "data_path": str(folder), "n_bootstrap": 50}, kernel_name="python3",
                        progress_bar=False)
    results = json.loads((tmp_path / "_scratch" / "judge_statistics" / "results.json").read_text())
    assert results["data_label"].startswith("real data")
    assert results["extractor_text"].startswith("Skipped:") and "Skipped as a headline shift" in results["shift_text"]
    assert results["max_abs_shift"] is None  # undefined on rater-only data, never a number
