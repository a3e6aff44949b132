"""AgentEvol end to end on a small setting: behavioural cloning teaches the policy (held-out
success above the untrained policy's zero), an iteration explores, keeps only successful,
distinct trajectories, everything lands in the run directory, and a run killed with -9 resumes
to the same result."""

import duckdb
import pandas as pd
from helpers import THREADS, assert_resume_finishes_as, kill_9_after, run_cli, sets, summary

from selfevolve.recipes.agentevol import Config, base_model, evaluate

# 300 BC steps take maze from 0 to 0.45 / 0.425 / 0.725 held-out success on seeds 0 / 1 / 2 (about 13 s)
SMALL = ["envs=maze,calc", "n_layer=2", "n_embd=64", "demo_tasks=60", "explore_tasks=40", "eval_tasks=40",
         "bc_steps=300", "iteration_steps=10", "iterations=1", "batch_size=32", "specialists=false"]


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
    demos = pd.read_parquet(out / "samples" / "round-000.parquet")
    assert demos["success"].all() and demos["action"].str.startswith("Thought: ").all()
    explored = pd.read_parquet(out / "samples" / "round-001.parquet")
    assert len(explored.groupby(["env", "task_id"])) == 80 and (explored["task_id"] >= 60).all()
    kept = explored[explored["kept"]]
    assert kept["success"].all() and s["rounds"][1]["new_kept"] == kept["episode"].nunique()
    by_sql = duckdb.sql(f"SELECT env, count(DISTINCT episode) AS n FROM '{out}/samples/round-001.parquet' "
                        "WHERE kept GROUP BY env ORDER BY env").fetchall()
    assert by_sql == sorted(kept.groupby("env")["episode"].nunique().items())
    assert s["rounds"][1]["kept"] == 120 + s["rounds"][1]["new_kept"]
    assert (out / "checkpoints" / "round-001").is_dir() and (out / "report.html").exists()


TINY = ["envs=maze,calc", "n_layer=1", "n_embd=32", "demo_tasks=20", "explore_tasks=10", "eval_tasks=10",
        "bc_steps=30", "iteration_steps=10", "iterations=2", "batch_size=16", "specialists=true", THREADS]


def test_kill_9_mid_iteration_then_resume_equals_an_uninterrupted_run(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run_cli("run", "agentevol", "--out", str(straight), *sets(TINY)).returncode == 0
    kill_9_after(["run", "agentevol", "--out", str(killed), *sets(TINY)], "samples/round-002.parquet")
    assert not (killed / "summary.json").exists()
    assert_resume_finishes_as(killed, straight)
    assert set(summary(straight)["specialist_success"]) == {"maze", "calc"}  # one BC specialist per env
