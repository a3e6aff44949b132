"""The rstar recipe end to end at a tiny size: the summary contract, the report, bad settings."""

import json

from helpers import assert_clean_error, run_cli, sets

from selfevolve.recipes.rstar import STRATEGIES

TINY = ["rounds=2", "seed_problems=60", "round0_steps=30", "train_problems=12", "rollouts=3", "eval_problems=6",
        "eval_n=1,4", "policy_steps=5", "reward_steps=5", "n_embd=32", "n_layer=1", "threads=2"]


def test_rstar_writes_every_strategy_per_round_and_resumes_a_finished_run(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("run", "rstar", "--out", str(out), *sets(TINY))
    assert proc.returncode == 0, proc.stderr
    s = json.loads((out / "summary.json").read_text())
    assert len(s["rounds"]) == 3 and s["wall_seconds"] > 0 and s["reward_model"] == "ppm"
    round0, *later = s["rounds"]
    assert set(round0["accuracy"]["majority"]) == {"1", "4"} and round0["accuracy"]["ppm"] == {}
    for r in later:
        assert set(r["accuracy"]) == set(STRATEGIES) and r["accuracy"]["greedy"].keys() == {"1"}
        for strategy in STRATEGIES[1:]:
            assert set(r["accuracy"][strategy]) == {"1", "4"}
            assert all(0 <= a <= 1 for a in r["accuracy"][strategy].values())
            assert r["tokens"][strategy]["4"] >= r["tokens"][strategy]["1"] > 0
        assert 0 <= r["solved_by_search"] <= 1 and r["search_tokens"] > 0
    assert (out / "plots" / "accuracy_by_round.png").exists() and (out / "plots" / "accuracy_by_n.png").exists()
    assert (out / "checkpoints" / "round-002" / "ppm.safetensors").exists()
    assert "mcts_ppm" in proc.stdout  # the table of strategies
    proc = run_cli("resume", str(out))  # nothing left to do: the same summary
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "summary.json").read_text())["rounds"] == s["rounds"]


def test_rstar_refuses_bad_settings_before_a_run_exists(tmp_path):
    for bad, fragment in (("reward_model=orm", "reward_model"), ("eval_difficulty=9", "eval_difficulty must be <="),
                          ("eval_n=0,4", "eval_n must be positive"), ("rollouts=0", "rollouts must be >= 1")):
        assert_clean_error(run_cli("run", "rstar", "--out", str(tmp_path / "x"), "--set", bad), fragment)
        assert not (tmp_path / "x").exists()
