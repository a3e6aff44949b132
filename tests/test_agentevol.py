"""AgentEvol end to end on a small setting: behavioural cloning teaches the policy (held-out
success above the untrained policy's zero), an iteration explores, keeps only successful,
distinct trajectories, and everything lands in the run directory."""

import pandas as pd
from helpers import run_cli, sets, summary

from selfevolve.recipes.agentevol import Config, base_model, evaluate

SMALL = ["envs=maze,calc", "n_layer=2", "n_embd=64", "demo_tasks=60", "explore_tasks=40", "eval_tasks=40",
         "bc_steps=400", "iteration_steps=200", "iterations=1", "batch_size=32", "specialists=true"]


def test_agentevol_learns_from_demonstrations_and_keeps_only_its_successes(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("run", "agentevol", "--out", str(out), *sets(SMALL))
    assert proc.returncode == 0, proc.stderr
    s = summary(out)
    assert set(s["success_by_iteration"]) == {"maze", "calc"} and s["wall_seconds"] > 0
    assert all(len(v) == 2 for v in s["success_by_iteration"].values())
    untrained = evaluate(base_model(Config()), Config(eval_tasks=40), ("maze",), None, "untrained")
    assert untrained["maze"]["success"] == 0.0
    assert s["success_by_iteration"]["maze"][0] >= 0.3  # behavioural cloning learned to walk
    assert set(s["specialist_success"]) == {"maze", "calc"}
    demos = pd.read_parquet(out / "samples" / "round-000.parquet")
    assert demos["success"].all() and demos["action"].str.startswith("Thought: ").all()
    explored = pd.read_parquet(out / "samples" / "round-001.parquet")
    assert len(explored.groupby(["env", "task_id"])) == 80 and (explored["task_id"] >= 60).all()
    kept = explored[explored["kept"]]
    assert kept["success"].all() and s["rounds"][1]["new_kept"] == kept["episode"].nunique()
    assert s["rounds"][1]["kept"] == 120 + s["rounds"][1]["new_kept"]
    assert (out / "checkpoints" / "round-001").is_dir() and (out / "report.html").exists()
