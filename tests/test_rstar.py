"""The rstar recipe end to end at a tiny size: the summary contract, the report, eval --file, kill -9
and resume, bad settings."""

import json

import pytest
from helpers import THREADS, assert_clean_error, assert_resume_finishes_as, kill_9_after, run_cli, sets

from selfevolve.config import build_config
from selfevolve.recipes.rstar import Config
from selfevolve.search.strategies import STRATEGIES

TINY = ["rounds=2", "seed_problems=60", "round0_steps=30", "train_problems=12", "rollouts=3", "eval_problems=6",
        "eval_n=1,4", "policy_steps=5", "reward_steps=5", "n_embd=32", "n_layer=1", "widen=2", THREADS]


def test_rstar_writes_every_strategy_per_round_and_resumes_a_finished_run(finished_run):
    out = finished_run("rstar", TINY)
    s = json.loads((out / "summary.json").read_text())
    assert len(s["rounds"]) == 3 and s["wall_seconds"] > 0 and s["reward_model"] == "ppm"
    assert s["held_out"]["problems"] == 6 and set(s["held_out"]) == {"problems", "labelled_left_out", "search_redrawn"}
    round0, *later = s["rounds"]
    assert set(round0["accuracy"]["majority"]) == {"1", "4"} and round0["accuracy"]["ppm"] == {}
    for r in later:
        assert set(r["accuracy"]) == {*STRATEGIES, "pass"} and r["accuracy"]["greedy"].keys() == {"1"}
        for strategy in STRATEGIES[1:]:
            assert set(r["accuracy"][strategy]) == {"1", "4"}
            assert all(0 <= a <= 1 for a in r["accuracy"][strategy].values())
            assert r["tokens"][strategy]["4"] >= r["tokens"][strategy]["1"] > 0
        # pass@N, some one of the N samples right, is the ceiling of every chooser among them
        for strategy in ("majority", "orm", "prm", "ppm"):
            assert all(r["accuracy"]["pass"][n] >= r["accuracy"][strategy][n] for n in ("1", "4"))
        assert 0 <= r["solved_by_search"] <= 1 and r["search_tokens"] > 0
        assert set(r["phase_seconds"]) == {"search", "policy", "reward_models", "evaluate"}
    assert set(round0["phase_seconds"]) == {"policy", "evaluate"}
    plots = ("accuracy_by_round", "accuracy_by_n", "greedy_by_steps")
    assert all((out / "plots" / f"{name}.png").exists() for name in plots)
    assert all(set(r["greedy_by_steps"]) <= {"1", "2", "3", "4", "5"} for r in s["rounds"])
    assert (out / "checkpoints" / "round-002" / "ppm.safetensors").exists()
    proc = run_cli("resume", str(out))  # nothing left to do: the same summary and table
    assert proc.returncode == 0, proc.stderr
    assert "mcts_ppm" in proc.stdout  # the table of strategies
    assert json.loads((out / "summary.json").read_text())["rounds"] == s["rounds"]


def test_eval_file_answers_a_users_problems_by_each_strategy(tmp_path, finished_run):
    out = finished_run("rstar", TINY)
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"question": "Ann has 2 bags of 3 pens. How many pens now?", "answer": 6}\n'
                    '{"question": "Bob has 4 jars of 5 eggs. He buys 2. How many eggs now?", "answer": 22}\n')
    for strategy, n in (("ppm", "4"), ("majority", "4"), ("mcts_ppm", "2"), ("greedy", None)):
        proc = run_cli("eval", str(out), "--file", str(mine), "--strategy", strategy, *(["--n", n] if n else []))
        assert proc.returncode == 0, proc.stderr
        assert f"{strategy} at N={n or 1}" in proc.stdout  # greedy is one solution
        rows = [json.loads(line) for line in (out / "eval" / "mine.jsonl").read_text().splitlines()]
        assert [r["answer"] for r in rows] == [6, 22] and all(isinstance(r["correct"], bool) for r in rows)
        assert all(r["correct"] == (r["value"] == r["answer"]) and r["tokens"] > 0 for r in rows)
    assert_clean_error(run_cli("eval", str(out), "--file", str(mine), "--strategy", "best"), "not one of")
    greedy_4 = run_cli("eval", str(out), "--file", str(mine), "--strategy", "greedy", "--n", "4")
    assert_clean_error(greedy_4, "1 for greedy")
    assert_clean_error(run_cli("eval", str(out), "--strategy", "ppm"), "pass --file too")
    mine.write_text('{"question": "How many?", "answer": "six"}\n')
    assert_clean_error(run_cli("eval", str(out), "--file", str(mine)), "line 1")


def test_rstar_refuses_bad_settings_before_a_run_exists(tmp_path):
    for bad, fragment in (({"reward_model": "orm"}, "reward_model"),
                          ({"eval_difficulty": 9}, "eval_difficulty must be <="),
                          ({"eval_n": (0, 4)}, "eval_n must be positive"), ({"rollouts": 0}, "rollouts must be >= 1"),
                          ({"pos_encoding": "nope"}, "pos_encoding must be one of"),
                          ({"task": "countdown"}, "task must be one of wordmath, wordmath-hard")):
        with pytest.raises(ValueError, match=fragment):
            Config(**bad)
    # a preset gives values that --set overrides; an unknown one is refused by name
    long = build_config(Config, {"preset": "long", "eval_problems": "100"})
    assert (long.task, long.train_problems, long.eval_problems, long.reward_epochs, long.reward_max_steps) == (
        "wordmath-hard", 400, 100, 4, 800)
    assert build_config(Config, {}).task == "wordmath"
    assert_clean_error(run_cli("run", "rstar", "--out", str(tmp_path / "x"), "--set", "preset=huge"),
                       "preset must be one of default, long")
    # the command checks the same Config before it creates anything
    assert_clean_error(run_cli("run", "rstar", "--out", str(tmp_path / "x"), "--set", "eval_n=0,4"),
                       "eval_n must be positive")
    assert not (tmp_path / "x").exists()


def test_kill_9_mid_round_then_resume_equals_an_uninterrupted_run(tmp_path, finished_run):
    straight, killed = finished_run("rstar", TINY), tmp_path / "killed"
    # killed during round 2, its trees written, its models not
    kill_9_after(["run", "rstar", "--out", str(killed), *sets(TINY)], "samples/round-002.parquet")
    assert not (killed / "summary.json").exists()
    assert_resume_finishes_as(killed, straight)
