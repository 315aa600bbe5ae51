"""The execution pipeline on a toy report: validation, caching, failures, determinism."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from scalebook import execute, params
from scalebook import report as report_mod
from scalebook.errors import ParameterError, RunError

from conftest import scalebook_cli

pytestmark = pytest.mark.xdist_group("pipeline")


def quiet(_msg):
    pass


def run(name="toy", **kw):
    overrides = kw.pop("overrides", None)
    plan = execute.plan(name, overrides=overrides, set_name=kw.pop("set_name", "default"))
    return execute.run(plan, progress=quiet, **kw)


def test_parameters_are_read_with_types_defaults_and_help(toy_root):
    declared = params.read_parameters(toy_root / "notebooks" / "toy.md")
    assert list(declared) == ["data_path", "scale", "n_points", "fail", "sleep_s", "label"]
    assert declared["scale"].type == "float" and declared["scale"].default == 1.0
    assert declared["n_points"].type == "int"
    assert declared["label"].optional and declared["label"].type == "str"
    assert declared["scale"].help == "multiplies y"


def test_unknown_parameter_lists_the_valid_names(toy_root):
    with pytest.raises(ParameterError) as err:
        execute.plan("toy", overrides={"no_such_param": "1"})
    msg = str(err.value)
    assert "unknown parameter 'no_such_param'" in msg
    assert "data_path, scale, n_points, fail, sleep_s, label" in msg


@pytest.mark.parametrize("name,value,expected", [
    ("n_points", "abc", "expects int"), ("n_points", "2.5", "expects int"), ("scale", "x", "expects float"),
    ("fail", "maybe", "expects bool"), ("scale", "nan", "expects float"),
])
def test_wrong_type_names_parameter_value_and_type(toy_root, name, value, expected):
    with pytest.raises(ParameterError) as err:
        execute.plan("toy", overrides={name: value})
    msg = str(err.value)
    assert f"parameter '{name}'" in msg and expected in msg and repr(value) in msg


def test_values_are_coerced_to_declared_types(toy_root):
    plan = execute.plan("toy", overrides={"scale": "2", "n_points": "2", "fail": "false", "label": "none"})
    assert plan.parameters["scale"] == 2.0 and isinstance(plan.parameters["scale"], float)
    assert plan.parameters["n_points"] == 2 and plan.parameters["fail"] is False
    assert plan.parameters["label"] is None


def test_missing_data_file_is_refused_before_running(toy_root):
    with pytest.raises(ParameterError, match="does not exist"):
        execute.plan("toy", overrides={"data_path": "nope.csv"})


def test_set_from_report_yml_and_unknown_set(toy_root):
    assert execute.plan("toy", set_name="smoke").parameters["scale"] == 0.5
    with pytest.raises(ParameterError, match="no parameter set 'huge'"):
        execute.plan("toy", set_name="huge")


def test_run_writes_outputs_and_is_reused_when_unchanged(toy_root):
    first = run()
    assert not first.cached
    for rel in ["toy.ipynb", "results.json", "provenance.json", "figures/toy-line.svg", "figures/toy-line.png",
                "figures/toy-line.vl.json", "figures/toy-line.html", "figures/toy-line.json",
                "tables/toy-table.csv"]:
        assert (first.run_dir / rel).exists(), rel
    results = json.loads((first.run_dir / "results.json").read_text())
    assert results == {"total": 10.0}
    prov = json.loads((first.run_dir / "provenance.json").read_text())
    assert prov["parameters"]["scale"] == 1.0
    assert prov["data_sha256"] == {"data/toy.csv": params.path_sha256(toy_root / "data" / "toy.csv")}
    assert {"numpy", "pandas", "papermill", "python"} <= set(prov["packages"])
    assert prov["duration_s"] > 0 and prov["started_utc"]
    second = run()
    assert second.cached and second.run_dir == first.run_dir


def test_changed_input_reexecutes(toy_root):
    base = run()
    (toy_root / "data" / "toy.csv").write_text("x,y\n1,2\n2,3\n3,6\n")
    changed = run()
    assert not changed.cached and changed.run_dir != base.run_dir
    assert json.loads((changed.run_dir / "results.json").read_text())["total"] == 11.0
    assert execute.latest("toy") == changed.run_dir
    assert run(overrides={"scale": "2"}).run_dir not in (base.run_dir, changed.run_dir)


def test_identical_inputs_give_byte_identical_figures_and_results(toy_root):
    first = run()
    keep = {f: (first.run_dir / f).read_bytes()
            for f in ["figures/toy-line.svg", "figures/toy-line.png", "figures/toy-line.vl.json", "results.json"]}
    again = run(force=True)
    assert again.run_dir == first.run_dir and not again.cached
    for f, data in keep.items():
        assert (again.run_dir / f).read_bytes() == data, f


def test_failed_run_names_the_cell_and_keeps_the_last_good_run(toy_root):
    good = run()
    with pytest.raises(RunError) as err:
        run(overrides={"fail": "true"})
    msg = str(err.value)
    assert "cell" in msg and "DataError" in msg and "deliberate failure" in msg
    assert "line" in msg and "Traceback" not in msg
    assert execute.latest("toy") == good.run_dir
    leftovers = [p.name for p in (toy_root / "_build" / "runs" / "toy").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []


def test_time_limit_stops_the_run_and_keeps_the_last_good_run(toy_root):
    good = run()
    plan = execute.plan("toy", overrides={"sleep_s": "60"})
    old = execute.HEARTBEAT_S
    execute.HEARTBEAT_S = 1
    try:
        with pytest.raises(RunError, match="time limit"):
            execute.run(plan, timeout=3, progress=quiet)
    finally:
        execute.HEARTBEAT_S = old
    assert execute.latest("toy") == good.run_dir
    assert not plan.run_dir.exists()


def test_cli_rejects_bad_parameters_with_nonzero_exit(toy_root):
    res = scalebook_cli("run", "toy", "-p", "no_such_param=1", cwd=toy_root)
    assert res.returncode == 2 and "unknown parameter 'no_such_param'" in res.stderr
    assert "Traceback" not in res.stderr
    res = scalebook_cli("run", "toy", "-p", "n_points=abc", cwd=toy_root)
    assert res.returncode == 2
    assert "parameter 'n_points' of notebook 'toy' expects int; got 'abc'" in res.stderr


def test_cli_run_reports_cache_hits_and_params_lists_parameters(toy_root):
    first = scalebook_cli("run", "toy", cwd=toy_root)
    assert first.returncode == 0, first.stderr
    assert "1 executed, 0 reused" in first.stderr
    again = scalebook_cli("run", "toy", cwd=toy_root)
    assert "cached" in again.stderr and "0 executed, 1 reused" in again.stderr
    listing = scalebook_cli("params", "toy", cwd=toy_root)
    assert listing.returncode == 0
    assert "n_points" in listing.stdout and "int" in listing.stdout and "rows to use" in listing.stdout


def test_sigterm_mid_run_leaves_no_partial_run(toy_root):
    good = run()
    proc = subprocess.Popen([sys.executable, "-m", "scalebook.cli", "run", "toy", "-p", "sleep_s=60"],
                            cwd=toy_root, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    runs = toy_root / "_build" / "runs" / "toy"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.startswith(".tmp") for p in runs.iterdir()):
        time.sleep(0.2)
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "interrupted" in err
    assert [p.name for p in runs.iterdir() if p.name.startswith(".tmp")] == []
    assert execute.latest("toy") == good.run_dir


def test_two_identical_runs_at_once_share_one_result(toy_root):
    procs = [subprocess.Popen([sys.executable, "-m", "scalebook.cli", "run", "toy", "-p", "scale=3"],
                              cwd=toy_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    dirs = {o[0].strip() for o in outs}
    assert len(dirs) == 1
    run_dir = Path(dirs.pop())
    assert json.loads((run_dir / "results.json").read_text())["total"] == 30.0
    assert sum("cached" in o[1] for o in outs) == 1


def test_table_display_shows_no_negative_zero_but_the_csv_keeps_the_value(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(report_mod, "_display", lambda bundle, meta: shown.append(meta["scalebook"]["markdown"]))
    rep = report_mod.Report({"notebook": "t"}, tmp_path)
    rep.table("tbl-signs", pd.DataFrame({"bias": [-0.0004, -0.0123, 0.0004]}), caption="c", floatfmt=".3f")
    cells = [line.strip("| ").strip() for line in shown[0].splitlines()[2:]]
    assert cells == ["0.000", "-0.012", "0.000"]
    assert (tmp_path / "tables" / "tbl-signs.csv").read_text().splitlines()[1] == "-0.0004"
