"""M-STaR: re-ranking keeps each problem's best-scored correct answers, Reward-Pass@2 by hand, and a
run whose every iteration chooses its temperature by it."""

import numpy as np
import pyarrow.parquet as pq
from helpers import THREADS, assert_clean_error, run_cli, sets, summary

from selfevolve.recipes.mstar import reward_pass_at_2
from selfevolve.search.answers import Answers, sample_table
from selfevolve.tasks.base import Problem


def answers(texts, correct, reward) -> Answers:
    problems = [Problem(f"p{i}", "", 1) for i in range(len(texts))]
    return Answers(problems, texts, np.array(correct, dtype=bool), np.array(reward, dtype=float),
                   np.ones((len(texts), len(texts[0]))))


def test_keep_top_keeps_the_best_scored_distinct_accepted_answers_of_each_problem():
    a = answers([["x", "y", "x", "w", "z"], ["q", "r", "s", "t", "u"]],
                [[1, 1, 1, 0, 1], [0, 0, 0, 0, 1]],
                [[1.2, 1.4, 1.45, 0.49, 1.1], [0.1, 0.2, 0.3, 0.4, 1.0]])
    table = sample_table(a, 1.0, keep_top=2)
    # "x" twice: only its first copy counts (scored 1.2); the two best distinct are y (1.4) and x (1.2)
    assert table["kept"] == [True, True, False, False, False, False, False, False, False, True]
    assert sample_table(a, 1.0)["kept"] == [True, True, False, False, True, False, False, False, False, True]


def test_reward_pass_at_2_by_hand():
    a = answers([["a"] * 4] * 3, [[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], np.zeros((3, 4)))
    ranker = np.array([[0.1, 0.9, 0.8, 0.2],   # top two: 1, 2 -> 2 is correct
                       [0.1, 0.9, 0.8, 0.2],   # top two: 1, 2 -> neither
                       [0.5, 0.5, 0.1, 0.9]])  # top two: 3, 0 (first on ties) -> 3 is correct
    assert reward_pass_at_2(a, ranker) == 2 / 3


def test_an_mstar_run_keeps_ranked_correct_answers_at_the_temperature_reward_pass_at_2_chose(tmp_path):
    assert_clean_error(run_cli("run", "mstar", "--out", str(tmp_path / "x"), "--set", "judge=orm"),
                       "judge=verifier")
    run = tmp_path / "run"
    tiny = ["difficulty=3", "num_labelled=300", "n_embd=32", "n_layer=1", "round0_steps=100", "iterations=1",
            "problems_per_iteration=300", "probe_problems=40", "samples_per_problem=4", "iteration_steps=20",
            "orm_steps=20", "eval_problems=30", THREADS]
    assert run_cli("run", "mstar", "--out", str(run), *sets(tiny)).returncode == 0
    record = summary(run)["rounds"][1]
    probe = {t: v["reward_pass@2"] for t, v in record["probe"].items() if isinstance(v, dict)}
    assert sorted(probe, key=float) == ["0.6", "0.8", "1.0", "1.2"]
    assert record["temperature"] == float(max(probe, key=lambda t: probe[t]))
    table = pq.read_table(run / "samples" / "round-001.parquet").to_pandas()
    kept = table[table.kept]
    assert len(kept) > 0 and kept.correct.all() and kept.groupby("prompt").size().max() <= 2
    assert record["samples"] == 300 * 4 and record["probe"]["orm_samples"] == 300 * 2
