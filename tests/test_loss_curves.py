"""Tests of the loss-curves chapter module (scalebook.loss_curves) and its simulated data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalebook import loss_curves, scaling
from scalebook.errors import DataError
from scalebook.simulate import loss_curves as sim

EXTERNAL = Path(__file__).resolve().parents[1].parent / "shared" / "external"
STARTS = scaling.hoffmann_starts(30)  # 150 of the published starts: enough for these well-posed fits

# Final losses (20B tokens) read off seed 002, rows T_m = 2, 4, 8, columns N = 53M ... 1.36B.
SEED_FINAL = np.array([[3.5, 3.0, 2.8, 2.5, 2.2], [3.2, 2.9, 2.6, 2.4, 2.1], [3.0, 2.7, 2.5, 2.3, 2.0]])


def noise_free_curves() -> pd.DataFrame:
    """The generator's law without noise, spike or start-up offset (D0 = 0, so tokens start at 0.25B)."""
    rows = []
    truth = dict(sim.TRUTH, D0=0.0)
    tokens = sim.TOKENS[1:]
    for t in sim.T_M:
        for label, n in sim.SIZES.items():
            rows.append(pd.DataFrame({"run": f"T{t:g}-{label}", "T_m": t, "N": n, "tokens": tokens,
                                      "loss": sim.expected_loss(n, tokens, t, truth)}))
    return pd.concat(rows, ignore_index=True)


def test_simulated_curves_match_the_seed():
    df = sim.generate(seed=2)
    assert len(df) == 15 * 81 and df["run"].nunique() == 15
    start = df[df["tokens"] == 0]["loss"]
    assert start.between(10.5, 12.5).all()
    final = df[df["tokens"] == df["tokens"].max()].sort_values(["T_m", "N"])["loss"].to_numpy().reshape(3, 5)
    assert np.abs(final - SEED_FINAL).max() < 0.2
    # loss falls with N and with T_m at the end of training, as in the seed
    assert (np.diff(final, axis=1) < 0).all() and (np.diff(final, axis=0) < 0).all()
    pd.testing.assert_frame_equal(df, sim.generate(seed=2))


def test_load_bundled_curves():
    curves = loss_curves.load_curves("data/loss_curves.csv")
    assert list(curves.columns) == ["run", "N", "tokens", "loss", "T_m"]
    assert len(curves) == 1215 and curves.attrs["source"] == "data/loss_curves.csv"


def test_load_curves_bad_input(tmp_path):
    df = noise_free_curves()
    path = tmp_path / "curves.csv"
    df.rename(columns={"loss": "total_loss"}).to_csv(path, index=False)
    with pytest.raises(DataError, match="missing column"):
        loss_curves.load_curves(path)
    ok = loss_curves.load_curves(path, loss_col="total_loss")
    assert len(ok) == len(df)
    bad = df.copy()
    bad.loc[5, "tokens"] = bad.loc[4, "tokens"]
    bad.to_csv(path, index=False)
    with pytest.raises(DataError, match="one checkpoint per token count"):
        loss_curves.load_curves(path)
    bad = df.copy()
    bad.loc[7, "N"] = -1.0
    bad.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"'N' must be > 0.*row 8"):
        loss_curves.load_curves(path)
    df.drop(columns="run").to_csv(path, index=False)
    derived = loss_curves.load_curves(path, run_col="")
    assert derived["run"].nunique() == 15
    with pytest.raises(DataError, match="factor column 'mix'"):
        loss_curves.load_curves(path, run_col="", factor_col="mix")


def test_joint_law_recovers_the_generating_parameters():
    curves = noise_free_curves()
    curves.attrs["source"] = "test"
    fit = loss_curves.fit_law(curves, factor="T_m", factor_terms=["E", "A"], min_tokens=1e9, starts=STARTS)
    truth = {"E": sim.TRUTH["E"], "A": sim.TRUTH["A"], "B": sim.TRUTH["B"], "alpha": sim.TRUTH["alpha"],
             "beta": sim.TRUTH["beta"], "gamma_E[T_m]": sim.TRUTH["gamma_E"], "gamma_A[T_m]": sim.TRUTH["gamma_A"]}
    for p, v in truth.items():
        assert fit.params[p] == pytest.approx(v, rel=1e-3, abs=1e-5), p
    pred = loss_curves.predict_curves(curves, fit, 1e9)
    table = loss_curves.panel_table(pred, fit, factor="T_m")
    assert len(table) == 15 and table["mean_bias"].abs().max() < 1e-3
    assert "does not appear" in loss_curves.describe_bias(table, "T_m")
    alloc = loss_curves.allocation_table(fit, curves, factor="T_m")
    np.testing.assert_allclose(6 * alloc["N_opt"] * alloc["D_opt"], alloc["compute"], rtol=1e-9)
    assert len(alloc) == 9


def test_extrapolation_and_run_bootstrap():
    curves = sim.generate(seed=2)
    curves.attrs["source"] = "test"
    full = loss_curves.fit_law(curves, factor="T_m", min_tokens=1e9, starts=STARTS, n_bootstrap=40)
    assert full.cluster_bootstrap and len(full.draws) == 40
    ex = loss_curves.extrapolation_test(curves, full, factor="T_m", min_tokens=1e9, starts=STARTS, n_bootstrap=40)
    assert ex.held_out_size == 1.36e9 and len(ex.table) == 3
    assert ex.mape_pct < 2.0  # the generating law extrapolates; only noise is left
    assert (ex.table["final_lower"] <= ex.table["final_pred"]).all()
    text = loss_curves.describe_extrapolation(ex, 0.95)
    assert "1.36B" in text and "%" in text
    row = loss_curves.fit_law(curves, factor="T_m", min_tokens=1e9, starts=STARTS, n_bootstrap=40, resample="row")
    params = loss_curves.params_table(full, row)
    assert {"run_lower", "row_lower"} <= set(params.columns)
    assert "times as wide" in loss_curves.describe_intervals(params, curves)
    truth = loss_curves.simulated_truth("data/loss_curves.csv", "T_m")
    covered = loss_curves.params_table(full, row, truth=truth)
    assert {"truth_inside", "truth_inside_rows"} <= set(covered.columns)
    assert "generating values" in loss_curves.describe_truth(covered, "95%")


def test_describe_bias_reports_the_seed_pattern_when_present():
    table = pd.DataFrame({"T_m": [2.0, 2.0], "N": [53e6, 1.36e9], "size": ["53M", "1.36B"],
                          "mean_bias": [0.3, 0.01], "mae": [0.3, 0.02]})
    assert "As in the seed" in loss_curves.describe_bias(table, "T_m")


def test_overtrain_gadre2024_loads_and_runs():
    folder = EXTERNAL / "overtrain-gadre2024"
    if not (folder / "models").is_dir():
        pytest.skip("../shared/external/overtrain-gadre2024 not present")
    curves = loss_curves.load_curves(folder, data_format="overtrain-gadre2024", factor_col="dataset")
    assert len(curves) == 104 and set(curves["dataset"]) == {"c4_original", "rpj", "rw_original"}
    with pytest.raises(DataError, match="match val_data"):
        loss_curves.load_overtrain_gadre2024(folder, val_data="no-such-set")
    fit = loss_curves.fit_law(curves, factor="dataset", min_tokens=0, starts=STARTS)
    assert fit.converged and "dataset" in fit.law


def test_panel_table_keeps_the_bias_interval_beside_the_bias_and_whole_factor_levels_as_integers():
    curves = sim.generate(seed=3)
    curves.attrs["source"] = "test"
    fit = loss_curves.fit_law(curves, factor="T_m", min_tokens=1e9, starts=STARTS, n_bootstrap=20)
    table = loss_curves.panel_table(loss_curves.predict_curves(curves, fit, 1e9), fit, factor="T_m")
    cols = list(table.columns)
    assert cols[cols.index("mean_bias") + 1: cols.index("mean_bias") + 3] == ["bias_lower", "bias_upper"]
    assert table["T_m"].dtype == "int64" and sorted(table["T_m"].unique()) == [2, 4, 8]
    assert (table["bias_lower"] <= table["mean_bias"]).all() and (table["mean_bias"] <= table["bias_upper"]).all()
