"""The gp recipe from the command line: benchmarks, a user's CSV, and bad data."""

import json

import numpy as np
import pytest
from helpers import assert_clean_error, run_cli, sets


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header), *(",".join(str(v) for v in r) for r in rows)]) + "\n")
    return path


def test_gp_on_users_csv_with_a_test_split(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-2, 2, (40, 2))
    rows = [(a, b, a * b + a, "test" if i % 4 == 0 else "train") for i, (a, b) in enumerate(pts)]
    data = write_csv(tmp_path / "points.csv", ["speed", "mass", "y", "split"], rows)
    out = tmp_path / "gp"
    settings = [f"data={data}", "generations=30", "pop_size=200", "mate_choice=none"]
    proc = run_cli("run", "gp", "--out", str(out), *sets(settings))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["solved"] and summary["best_error"] < 0.01, summary["best_expression"]
    assert summary["test_error"] is not None and summary["test_error"] < 0.01
    assert "speed" in summary["best_expression"] and "mass" in summary["best_expression"]
    assert summary["best_expression"] in proc.stdout
    assert (out / "plots" / "error.png").exists() and (out / "plots" / "diversity.png").exists()


@pytest.mark.parametrize("mate_choice", ["ideal", "random", "none"])
def test_gp_benchmark_runs_for_every_mate_choice(tmp_path, mate_choice):
    out = tmp_path / mate_choice
    proc = run_cli("run", "gp", "--out", str(out), *sets(["problem=nguyen-1", f"mate_choice={mate_choice}",
                                                          "generations=5", "pop_size=100"]))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mate_choice"] == mate_choice and summary["test_error"] is not None
    assert summary["generations"] <= 5 and summary["evaluations"] > 100


@pytest.mark.parametrize("header,rows,fragment", [
    (["x1", "x2"], [(1, 2)], "no 'y' column (columns: x1, x2)"),
    (["x", "y"], [(1, 2), ("abc", 3)], "line 3, column 'x': 'abc' is not a number"),
    (["x", "y"], [(1, "nan")], "line 2, column 'y': 'nan' is not a finite number"),
    (["y"], [(1,)], "no input column besides 'y'"),
    (["x", "y"], [], "no data rows"),
])
def test_bad_csv_is_one_clear_message(tmp_path, header, rows, fragment):
    data = write_csv(tmp_path / "bad.csv", header, rows)
    assert_clean_error(run_cli("run", "gp", *sets([f"data={data}"]), cwd=tmp_path), fragment)
    assert not (tmp_path / "runs").exists()  # nothing created for a run that cannot start


def test_empty_or_missing_csv_is_one_clear_message(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    assert_clean_error(run_cli("run", "gp", *sets([f"data={tmp_path / 'empty.csv'}"]), cwd=tmp_path), "is empty")
    assert_clean_error(run_cli("run", "gp", *sets(["data=nope.csv"]), cwd=tmp_path), "nope.csv does not exist")
    assert_clean_error(run_cli("run", "gp", *sets(["problem=nguyen-99"]), cwd=tmp_path), "unknown problem")
