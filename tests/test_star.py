"""STaR-family recipes: B-STaR's monitors by hand, and self-training that raises pass@1."""

import json
import math
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from helpers import QUICK_GP, QUICK_STAR, THREADS, assert_clean_error, run_cli, sets, summary

from selfevolve.judge.uncertainty import mc_dropout, pair_uncertainty
from selfevolve.metrics import exploration_metrics
from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.search.answers import preference_pairs
from selfevolve.tasks.base import read_problems
from selfevolve.tasks.countdown import CountdownTask
from selfevolve.train.dpo import answer_logprobs, dpo_loss, reference_logprobs
from selfevolve.train.sft import Examples


def test_bstar_metrics_match_hand_computed_values():
    texts = [["1+2", "1+2", "2+1", "3"],    # 3 correct (2 distinct) of 4
             ["5", "6", "7", "8"],          # none correct
             ["9*1", "1*9", "9/1", "9"]]    # 4 correct, 4 distinct
    correct = np.array([[1, 1, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=bool)
    m = exploration_metrics(correct, texts, balance_target=4)
    assert m["pass_at_k"] == pytest.approx(2 / 3)
    assert m["sample_accuracy"] == pytest.approx(7 / 12)
    assert m["diversity"] == pytest.approx((2 + 0 + 4) / 3)
    # balance per problem: min(distinct correct / 4, 1) * distinct correct / distinct selected; with the
    # exact verifier every selected answer is correct, so copies ("1+2" twice) lower nothing
    assert m["balance"] == pytest.approx((0.5 * 2 / 2 + 0 + 1.0 * 4 / 4) / 3)


def test_dpo_loss_matches_hand_computed_value():
    # margin = beta * ((pi_c - ref_c) - (pi_r - ref_r)) = 0.5 * ((-1 + 2) - (-3 + 2)) = 1
    loss = dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), 0.5)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)))
    # equal margins: log 2, whatever beta
    assert dpo_loss(*(torch.tensor([-4.0]),) * 4, beta=3.0).item() == pytest.approx(math.log(2))


def test_answer_logprobs_sum_only_the_answer_tokens():
    tok = CharTokenizer()
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(tok.vocab_size, n_layer=1, n_embd=16, n_head=2, pos_encoding="rope"))
    ex = Examples.encode(tok, ["3,4>7:", "5>5:"], ["3+4", "5"])
    inputs, labels = ex.batch(torch.arange(2))
    got, count = answer_logprobs(model, inputs, labels)
    logp = model(inputs).log_softmax(-1)
    seq = ex.ids[0, : int(ex.lens[0])]
    want = sum(logp[0, t - 1, seq[t]].item() for t in range(6, int(ex.lens[0])))  # "3+4" and the stop token
    assert count.tolist() == [4, 2] and got[0].item() == pytest.approx(want, rel=1e-5)


def test_reference_logprobs_in_batches_equal_one_example_at_a_time():
    tok = CharTokenizer()
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(tok.vocab_size, n_layer=1, n_embd=16, n_head=2, pos_encoding="rope"))
    ex = Examples.encode(tok, ["3,4>7:", "5>5:", "9,1,1>9:"], ["3+4", "5", "9*1*1"])
    got = reference_logprobs(model, ex, batch_size=2)  # batches of unequal padding
    want = [answer_logprobs(model, *ex.batch(torch.tensor([i])))[0].item() for i in range(3)]
    assert got.tolist() == pytest.approx(want, rel=1e-5)


def test_bstar_metrics_with_an_imperfect_judge_match_hand_computed_values():
    texts = [["1+2", "1+2", "3", "4"], ["5", "6", "7", "8"]]
    correct = np.array([[1, 1, 0, 0], [0, 1, 0, 0]], dtype=bool)
    reward = np.array([[0.9, 0.9, 0.8, 0.1], [0.6, 0.3, 0.1, 0.7]])
    m = exploration_metrics(correct, texts, balance_target=2, reward=reward, threshold=0.5)
    # selected: "1+2" twice (correct), "3" (wrong); "5" (wrong), "8" (wrong)
    assert m["pass_at_k"] == 1.0 and m["diversity"] == pytest.approx(1.0)
    assert m["reward_at_k"] == pytest.approx(0.5)  # top reward: "1+2" right, "8" wrong
    assert m["precision"] == pytest.approx(2 / 5)  # every selected sample counts, copies included
    # 1 distinct correct of 2 distinct selected ("1+2", "3"), not 2 of 3 copies
    assert m["balance"] == pytest.approx((min(1 / 2, 1) * 1 / 2 + 0) / 2)


def test_preference_pairs_take_the_best_selected_and_worst_rejected_finished_answer():
    samples = {"prompt": ["a", "a", "a", "a", "b", "b", "c"], "answer": ["<no stop>", "x", "y", "z", "p", "q", "r"],
               "reward": [0.0, 0.4, 0.9, 0.2, 1.0, 1.0, 0.0], "selected": [False, False, True, False, True, True,
                                                                             False]}
    assert preference_pairs(samples) == (["a"], ["y"], ["z"])


def test_mc_dropout_perturbs_only_inside_and_uncertainty_is_a_spread():
    tok = CharTokenizer()
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(tok.vocab_size, n_layer=2, n_embd=32, n_head=2, pos_encoding="rope")).eval()
    good = Examples.encode(tok, ["3,4>7:", "5,2>3:", "9>9:"], ["3+4", "5-2", "9"])
    bad = Examples.encode(tok, ["3,4>7:", "5,2>3:", "9>9:"], ["3*4", "5+2", "9+9"])
    x = good.ids[:, :6]
    with torch.no_grad():
        plain = model(x)
        with mc_dropout(model, 0.5):
            noisy = model(x)
        assert not torch.allclose(plain, noisy)
        assert torch.equal(model(x), plain)  # hooks removed on exit
    spread = pair_uncertainty(model, good, bad, passes=6, p=0.3, seed=1)
    assert spread.shape == (3,) and (spread > 0).all() and (spread < 0.5).all()
    assert np.array_equal(spread, pair_uncertainty(model, good, bad, passes=6, p=0.3, seed=1))  # seeded


# a tiny countdown setting, about 50 s on 2 cores: round 0 solves about a quarter of the held-out
# problems greedily (0.2775 / 0.2575 / 0.27 on seeds 0 / 1 / 2), and one iteration of fine-tuning on its
# own correct answers adds 2-7 points (star +0.0325 / +0.0675 / +0.0225, restart +0.0375 / +0.075 / +0.025,
# bstar +0.03 / +0.06 / +0.06). DPO and UPO on the same pairs move held-out pass@1 by -0.03..+0.03 (dpo
# -0.0025 / +0.02 / +0.03, upo -0.03 / +0.02 / +0.0125): within noise, so their test checks what they
# learn, the preference between their own answers, which 150 steps teach as well as 300 (below; held-out
# pass@1 moves by -0.0075..+0.0425 on seeds 0-4 after 150 steps)
TINY = ["difficulty=3", "num_labelled=1500", "n_embd=64", "round0_steps=400", "iterations=1",
        "problems_per_iteration=1200", "samples_per_problem=4", "iteration_steps=300", "eval_problems=400",
        THREADS]


@pytest.fixture(scope="module")
def round0(finished_run):
    """TINY's round-0 model, trained once: every recipe below starts from it (`init_from`), which gives
    the same run as training round 0 itself (the recipes draw each round's randomness afresh)."""
    return f"init_from={finished_run('star', [*TINY, 'iterations=0'])}"


@pytest.mark.parametrize("recipe,extra", [("star", []), ("star", ["restart=true"]),
                                          ("bstar", ["temperature_grid=0.8,1.2", "probe_problems=100"]),
                                          ("dpo", ["iteration_steps=150"]),
                                          ("upo", ["dpo_learning_rate=2e-4", "iteration_steps=150"])])
def test_self_training_raises_held_out_pass_at_1(tmp_path, recipe, extra, round0):
    out = tmp_path / "run"
    proc = run_cli("run", recipe, "--out", str(out), *sets(TINY + extra + [round0]))
    assert proc.returncode == 0, proc.stderr
    s = json.loads((out / "summary.json").read_text())
    if recipe in ("dpo", "upo"):
        assert abs(s["final_pass1"] - s["round0_pass1"]) <= 0.04, s["rounds"]
        before, after = preference_margins(out)
        # seeds 0-4, 150 steps: the margin grows on 96-98% of the pairs, and the share the model gets the
        # right way round goes from 0.86-0.88 to 0.96-0.98
        assert (after > before).mean() >= 0.9 and (after > 0).mean() >= (before > 0).mean() + 0.05, (before, after)
    else:
        assert s["final_pass1"] >= s["round0_pass1"] + 0.02, s["rounds"]
    assert s["samples_drawn"] == 1200 * 4 and s["tokens_trained"] > 0
    last = s["rounds"][-1]
    assert last["kept"] > 0 and 0 < last["pass_at_k"] <= 1 and last["temperature"] > 0 and last["loss"] == last["loss"]
    if recipe == "bstar":
        assert set(last["probe"]) == {"0.8", "1.2"} and last["temperature"] in (0.8, 1.2)
        table = pq.read_table(out / "samples" / "round-001.parquet").to_pydict()
        prompts, temps = np.array(table["prompt"]).reshape(-1, 4), np.array(table["temperature"]).reshape(-1, 4)
        # both temperatures were probed on the same 100 problems, then the rest drawn at the chosen one
        assert (prompts[:100] == prompts[100:200]).all() and (temps[:100] == 0.8).all()
        assert (temps[100:200] == 1.2).all() and (temps[200:] == last["temperature"]).all() and len(temps) == 1200
        # the monitors describe the samples drawn at the chosen temperature, the probe's included
        correct = np.array(table["correct"]).reshape(-1, 4)[temps[:, 0] == last["temperature"]]
        assert last["pass_at_k"] == pytest.approx(correct.any(axis=1).mean())
    assert (out / "plots" / "accuracy.png").exists() and (out / "plots" / "exploration.png").exists()


def preference_margins(run_dir):
    """log p(chosen) - log p(rejected) of the iteration's (accepted, rejected) pairs under the round-0
    model and under the model after the preference steps, per pair."""
    from selfevolve.models.tokenizer import CharTokenizer
    from selfevolve.store import load_checkpoint, model_from_checkpoint
    from selfevolve.train.dpo import pair_examples, reference_logprobs

    samples = pq.read_table(run_dir / "samples" / "round-001.parquet").to_pydict()
    good, bad = pair_examples(CharTokenizer(), samples)
    models = [model_from_checkpoint(load_checkpoint(run_dir / "checkpoints" / f"round-00{r}")) for r in (0, 1)]
    return [(reference_logprobs(m, good) - reference_logprobs(m, bad)).numpy() for m in models]


def test_orm_judge_selects_far_better_than_chance(tmp_path, round0):
    out = tmp_path / "run"
    # What the ORM keeps is right far more often than a random answer (two iterations on seeds 0-2, with
    # TINY's 400 held-out problems: precision 0.754 / 0.731 / 0.793 against sample accuracy 0.432 / 0.419 /
    # 0.464), but a quarter of it is wrong, and self-training on it does not raise held-out pass@1 here
    # (0.2775 -> 0.27, 0.2575 -> 0.2425, 0.27 -> 0.2875): the README reports it. This test claims only the
    # judge, so it runs one iteration on a held-out set smaller than TINY's and fine-tunes nothing on what the
    # judge keeps (the later value of a setting wins)
    one = [*TINY, "eval_problems=50", "iteration_steps=0"]
    judge = ["judge=orm", "orm_samples=4", "orm_steps=300"]
    proc = run_cli("run", "star", "--out", str(out), *sets(one + judge + [round0]))
    assert proc.returncode == 0, proc.stderr
    s = json.loads((out / "summary.json").read_text())
    assert len(s["rounds"]) == 2
    for last in s["rounds"][1:]:
        # the reward model, trained on verified answers to the seed problems only, keeps answers to new
        # problems that are far more often right than a random sample of them
        assert last["precision"] >= last["sample_accuracy"] + 0.2, last
        assert last["kept"] > 0 and last["orm_samples"] == 1500 * 4
    # the last round's ORM is saved with its checkpoint and audited as a judge: it separates the policy's
    # right answers from its wrong ones on fresh problems, also when they are paraphrased
    proc = run_cli("audit", str(out), "--problems", "40", "--samples", "4", "--out", str(tmp_path / "judges.json"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "judges.json").read_text())
    orm = report["judges"]["orm"]
    assert report["paraphrased"] > 40 and orm["auc"] > 0.7 and orm["auc_paraphrased"] > 0.6, report



def test_compare_puts_runs_side_by_side_and_refuses_other_recipes(tmp_path, finished_run):
    star = finished_run("star", QUICK_STAR)
    # dpo starts from star's round-0 model: the same round-0 score, nothing trained in round 0
    proc = run_cli("run", "dpo", "--out", str(tmp_path / "dpo"), *sets(QUICK_STAR + [f"init_from={star}"]))
    assert proc.returncode == 0, proc.stderr
    star_s, dpo_s = summary(star), summary(tmp_path / "dpo")
    assert dpo_s["round0_pass1"] == star_s["round0_pass1"] and dpo_s["rounds"][0]["tokens_trained"] == 0
    plot = tmp_path / "curves.png"
    proc = run_cli("compare", str(star), str(tmp_path / "dpo"), "--plot", str(plot))
    assert proc.returncode == 0, proc.stderr
    assert "star" in proc.stdout and "dpo" in proc.stdout and "tokens trained" in proc.stdout
    assert str(star_s["tokens_trained"]) in proc.stdout
    assert plot.stat().st_size > 1000
    assert_clean_error(run_cli("compare", str(finished_run("gp", QUICK_GP))),
                       "compare reads runs of bstar, dpo, grpo, longpo, mstar, priming, r1t1, score, self, star, upo")


def test_eval_file_scores_a_users_problems_and_bad_files_fail_cleanly(tmp_path):
    good = tmp_path / "mine.jsonl"
    good.write_text('{"numbers": [3, 7, 2], "target": 10}\n\n{"numbers": [4, 5], "target": 20}\n'
                    '{"numbers": [9, 1, 1], "target": 9}\n')
    run_dir = tmp_path / "run"
    proc = run_cli("run", "star", "--out", str(run_dir), *sets(QUICK_STAR + [f"eval_file={good}"]))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run_dir / "summary.json").read_text())["rounds"][0]["pass1"] in (0, 1 / 3, 2 / 3, 1)
    proc = run_cli("eval", str(run_dir), "--file", str(good))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (run_dir / "eval" / "mine.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["3,7,2>10:", "4,5>20:", "9,1,1>9:"]
    assert all(isinstance(r["correct"], bool) and 0 <= r["correct_of_k"] <= 2 for r in rows)
    assert "pass@1" in proc.stdout
    assert_clean_error(run_cli("eval", str(run_dir), "--file", str(good), "--strategy", "ppm"), "are for rstar runs")

    cases = {'{"numbers": [3, 7], "target": 10}\n{"numbers": [3, "x"], "target": 1}\n': "line 2",
             '{"numbers": [3, 7], "target": 10}\n\n{"numbers": [3, 7]\n': "line 3: not valid JSON",
             '[1, 2]\n': "line 1: expected a JSON object",
             '{"numbers": [3, 7], "target": -1}\n': "'target' must be a whole number",
             "": "holds no problems"}
    for i, (text, fragment) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.jsonl"
        bad.write_text(text)
        with pytest.raises(ValueError, match=re.escape(fragment)):
            read_problems(bad, CountdownTask())
    # both commands read problem files through read_problems: one bad file each through the CLI
    assert_clean_error(run_cli("eval", str(run_dir), "--file", str(tmp_path / "bad0.jsonl")), "line 2")
    fresh = tmp_path / "never"
    proc = run_cli("run", "star", "--out", str(fresh), *sets(QUICK_STAR + [f"eval_file={tmp_path / 'bad1.jsonl'}"]))
    assert_clean_error(proc, "line 3: not valid JSON")
    assert not fresh.exists()
    assert_clean_error(run_cli("eval", str(run_dir), "--file", str(tmp_path / "missing.jsonl")), "does not exist")


def test_certainty_weights_fall_linearly_with_uncertainty():
    from selfevolve.judge.uncertainty import certainty_weights

    assert certainty_weights(np.array([0.1, 0.3, 0.2])).tolist() == pytest.approx([1.0, 0.0, 0.5])
    assert certainty_weights(np.array([0.2, 0.2])).tolist() == [1.0, 1.0]
