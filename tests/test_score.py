"""SCoRe: the shaped returns and the two-attempt batching by hand, the loss of both turns, and a tiny run."""

import numpy as np
import pytest
import torch
from helpers import THREADS, assert_clean_error, run_cli, sets, summary

from selfevolve.models.policy import Policy
from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.tasks.base import first_digit_up, one_digit_off
from selfevolve.train.correction import (
    REVISE,
    CorrectionTrainer,
    returns,
    sample_two_attempts,
    second_prompt,
    transitions,
)
from selfevolve.train.rl import RLConfig, advantages, logprobs_and_entropy, policy_loss
from selfevolve.train.sft import SFTConfig, make_optimizer


def test_returns_of_each_objective_by_hand():
    r1, r2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    g1, g2 = returns(r1, r2, "stage2", alpha=10)
    # the bonus pays 10 for the fix (0 -> 1) and charges 10 for the break (1 -> 0); turn 1 gets r1 + r2
    assert g2.tolist() == [[1.0, 11.0], [0.0, -10.0]] and g1.tolist() == [[2.0, 1.0], [0.0, 1.0]]
    # carried into turn 1 (the ablation), the bonus charges the right first answer of the break 9
    g1, g2 = returns(r1, r2, "stage2", alpha=10, shaped_first_turn=True)
    assert g2.tolist() == [[1.0, 11.0], [0.0, -10.0]] and g1.tolist() == [[2.0, 11.0], [0.0, -9.0]]
    g1, g2 = returns(r1, r2, "stage1", alpha=10)
    assert g1.tolist() == [[0.0, 0.0], [0.0, 0.0]] and g2.tolist() == r2.tolist()
    g1, g2 = returns(r1, r2, "turn2", alpha=10)
    assert g1.tolist() == g2.tolist() == r2.tolist()


def test_transitions_by_hand():
    m = transitions([1, 1, 0, 0], [1, 0, 1, 0], ["a", "b", "c", "d"], ["a", "x", "y", "d"])
    assert m == {"accuracy_t1": 0.5, "accuracy_t2": 0.5, "delta": 0.0, "delta_i_to_c": 0.25, "delta_c_to_i": 0.25,
                 "unchanged": 0.5}


def test_wrong_first_answers_change_exactly_one_digit():
    rng = np.random.default_rng(0)
    for text in ["3*25+3", "1024", "(7+1)*9"]:
        for _ in range(50):
            wrong = one_digit_off(text, rng)
            assert len(wrong) == len(text) and sum(a != b for a, b in zip(wrong, text, strict=True)) == 1
            assert all(a == b or (a.isdigit() and b.isdigit()) for a, b in zip(wrong, text, strict=True))
    assert [first_digit_up(t) for t in ["3*25+3", "(9+1)*9", "x"]] == ["4*25+3", "(0+1)*9", "x0"]


def tiny_policy(seed: int = 0) -> Policy:
    tok = CharTokenizer()
    torch.manual_seed(seed)
    return Policy(Transformer(TransformerConfig(tok.vocab_size, n_layer=1, n_head=2, n_embd=32, max_seq_len=64,
                                                     pos_encoding="rope")), tok)


def test_second_attempts_see_their_own_first_attempt_and_are_scored_against_the_problem():
    policy, seen = tiny_policy(), []

    def reward(prompts, completions, target, **_):
        seen.append((list(prompts), list(target)))
        return [float(len(c) % 2) for c in completions]

    prompts = ["12+3=", "4*5="]
    pair = sample_two_attempts(policy, prompts, {"target": ["15", "20"]}, reward, 3, 6, 1.0,
                               torch.Generator().manual_seed(0))
    assert pair.first.rewards.shape == pair.second.rewards.shape == (2, 3)
    for i in range(6):
        expected = second_prompt(pair.first.prompts[i], pair.first.completions[i])
        assert pair.second.prompts[i] == expected and expected.endswith(REVISE)
        examples = pair.second.examples  # what turn 2 trains on: that prompt, then its own completion
        assert examples.ids[i, : examples.prompt_lens[i]].tolist() == policy.tok.encode(expected)
        assert pair.second.rewards.flatten()[i] == len(pair.second.completions[i]) % 2
    # turn 2 is judged against the same problem: its columns are the first turn's, row for row
    assert seen[0][1] == ["15"] * 3 + ["20"] * 3 and seen[1][1] == seen[0][1]


def test_stage_one_loss_is_turn_two_policy_gradient_plus_a_strong_kl_on_turn_one():
    policy = tiny_policy()
    reference = tiny_policy(seed=1).model  # another model: the KL is not 0
    cfg = RLConfig(group_size=3, kl_coef=0.04, rl_learning_rate=1e-9)
    sft = SFTConfig(learning_rate=1e-9, warmup_steps=0)
    pair = sample_two_attempts(policy, ["12+3=", "4*5="], {"target": ["15", "20"]},
                               lambda prompts, completions, **_: [float(len(c) % 2) for c in completions], 3, 6, 1.0,
                               torch.Generator().manual_seed(1))
    trainer = CorrectionTrainer(policy, cfg, make_optimizer(policy.model, sft), sft, 10, reference)

    def turn(batch, adv, kl):
        inputs, labels = batch.examples.batch(torch.arange(len(batch.examples)))
        with torch.no_grad():
            ref, _, _ = logprobs_and_entropy(reference, inputs, labels, 1.0)
            logp, mask, _ = logprobs_and_entropy(policy.model, inputs, labels, 1.0)
        return policy_loss(logp, logp, adv, mask, 0.2, "sequence-mean", ref, kl, 6)[0]

    a2 = advantages(pair.second.rewards, "grpo").flatten()
    expected = turn(pair.first, torch.zeros(6), 0.5) + turn(pair.second, a2, 0.04)
    stats = trainer.step_two(pair, "stage1", alpha=10, first_turn_kl=0.5, max_new=6)
    assert stats["loss"] == pytest.approx(float(expected), rel=1e-5)


def test_the_star_baseline_learns_only_from_second_attempts_that_fixed_a_wrong_first_one():
    policy = tiny_policy()

    def odd(text):
        return sum(map(ord, text)) % 2 == 1

    def reward(prompts, completions, **_):  # every first attempt wrong; a second one right by the parity of its text
        return [float(p.endswith(REVISE) and odd(c)) for p, c in zip(prompts, completions, strict=True)]

    pair = sample_two_attempts(policy, ["12+3=", "4*5="], {"target": ["15", "20"]}, reward, 4, 6, 1.0,
                               torch.Generator().manual_seed(2))
    fixed = [i for i, c in enumerate(pair.second.completions) if odd(c)]
    assert 0 < len(fixed) < 8
    sft = SFTConfig(learning_rate=1e-2, warmup_steps=0)
    trainer = CorrectionTrainer(policy, RLConfig(group_size=4, rl_learning_rate=1e-2),
                                make_optimizer(policy.model, sft), sft, 10, None)
    inputs, labels = pair.second.examples.batch(torch.arange(8))

    def logp():
        with torch.no_grad():
            out, mask, _ = logprobs_and_entropy(policy.model, inputs, labels, 1.0)
        return out * mask, mask

    token_logp, mask = logp()
    before = (token_logp.sum(1) / mask.sum(1)).tolist()
    nll_of_fixes = -token_logp[fixed].sum() / mask[fixed].sum()  # the first step's loss: the fixes' tokens only
    stats = [trainer.step_star(pair) for _ in range(5)]
    token_logp, mask = logp()
    after = (token_logp.sum(1) / mask.sum(1)).tolist()
    assert stats[0]["loss"] == pytest.approx(float(nll_of_fixes), rel=1e-5)
    assert all(s["fixed"] == len(fixed) for s in stats) and stats[0]["accuracy_t2"] == len(fixed) / 8
    assert all(after[i] > before[i] + 0.1 for i in fixed)  # it learnt the fixes
    # with no fix in the batch there is nothing to learn: the weights stay as they are
    pair.second.rewards.zero_()
    weights = [w.clone() for w in policy.model.parameters()]
    assert np.isnan(trainer.step_star(pair)["loss"])
    assert all(torch.equal(a, b) for a, b in zip(weights, policy.model.parameters(), strict=True))


def test_a_tiny_score_run_records_both_stages_and_every_attempt_measure(tmp_path):
    assert_clean_error(run_cli("run", "score", "--out", str(tmp_path / "x"), "--set", "objective=both"),
                       "objective must be one of score, turn2, star")
    assert_clean_error(run_cli("run", "score", "--out", str(tmp_path / "x"), "--set", "iteration_steps=0"),
                       "iteration_steps must be >= 1")
    assert_clean_error(run_cli("run", "score", "--out", str(tmp_path / "x"), "--set", "fixable_mistakes=1.5"),
                       "fixable_mistakes must be a share in [0, 1]")
    run = tmp_path / "run"
    tiny = ["difficulty=3", "n_layer=1", "n_embd=32", "num_labelled=200", "round0_steps=30", "iterations=2",
            "iteration_steps=2", "prompts_per_step=4", "eval_problems=20", THREADS]
    proc = run_cli("run", "score", "--out", str(run), *sets(tiny))
    assert proc.returncode == 0, proc.stderr
    rounds = summary(run)["rounds"]
    for r in rounds:  # Delta is t2 - t1, and the flips account for it
        assert r["delta"] == pytest.approx(r["accuracy_t2"] - r["accuracy_t1"])
        assert r["delta"] == pytest.approx(r["delta_i_to_c"] - r["delta_c_to_i"]) and 0 <= r["unchanged"] <= 1
    assert [r["probe"]["objective"] for r in rounds[1:]] == ["stage1", "stage2"]
    assert all(len(r["rl_steps"]) == 2 for r in rounds[1:]) and (run / "plots" / "correction.png").exists()


def test_score_keeps_turn_two_ahead_of_turn_one_on_a_model_that_makes_mistakes_it_can_fix(tmp_path):
    # round 0 teaches 70% of first answers with their first digit one up, and every second attempt right:
    # the model makes a mistake in turn 1 that it knows how to fix in turn 2
    run = tmp_path / "run"
    tiny = ["task=countdown", "difficulty=2", "n_layer=2", "n_embd=48", "round0_steps=600", "fixable_mistakes=0.7",
            "iterations=2", "iteration_steps=20", "eval_problems=100", THREADS]
    proc = run_cli("run", "score", "--out", str(run), *sets(tiny))
    assert proc.returncode == 0, proc.stderr
    start, *_, last = summary(run)["rounds"]
    assert start["accuracy_t2"] > start["accuracy_t1"] + 0.1  # the mistakes are there, and fixable
    assert [r["probe"]["objective"] for r in summary(run)["rounds"][1:]] == ["stage1", "stage2"]
    # after stage I and II, turn 2 still fixes more than it breaks: no collapse onto turn 1
    assert last["delta"] > 0 and last["delta_i_to_c"] > last["delta_c_to_i"] and last["unchanged"] < 0.9


def test_a_run_from_another_runs_round_0_takes_its_results_only_where_it_would_evaluate_the_same(tmp_path):
    tiny = ["difficulty=2", "n_layer=2", "n_embd=48", "num_labelled=600", "round0_steps=300", "iterations=0",
            "eval_problems=20", THREADS]
    measures = ("pass1", "passk", "accuracy_t1", "accuracy_t2", "delta", "delta_i_to_c", "delta_c_to_i", "unchanged")

    def round0(name: str, *more: str) -> dict:
        proc = run_cli("run", "score", "--out", str(tmp_path / name), *sets([*tiny, *more]))
        assert proc.returncode == 0, proc.stderr
        s = summary(tmp_path / name)
        return s["rounds"][0] | {"problems": s["held_out"]["problems"]}

    source = round0("source")
    assert 0 < source["pass1"] < 1
    start = f"init_from={tmp_path / 'source'}"
    # settings only later rounds read: the source's results, and the record says where they come from
    taken = round0("turn2", start, "objective=turn2", "alpha=3", "iteration_steps=7")
    assert taken["evaluated_in"] == str(tmp_path / "source") and {m: taken[m] for m in measures} == {
        m: source[m] for m in measures}
    # a setting round 0 reads (the learning rate) evaluates again, and gives the same figures: the model is the same
    again = round0("again", start, "learning_rate=0.002")
    assert "evaluated_in" not in again and {m: again[m] for m in measures} == {m: source[m] for m in measures}
    # other held-out problems: evaluated on those
    other = round0("other", start, "eval_problems=37")
    assert "evaluated_in" not in other and other["problems"] > source["problems"]
    assert round(other["pass1"] * other["problems"], 6) == round(other["pass1"] * other["problems"])
