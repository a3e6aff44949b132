"""On-policy RL: the advantages and losses equal hand-computed values on toy batches, the KL of a model
to itself is 0, reward functions with TRL's signature plug in, and a tiny GRPO run learns and resumes."""

import math
import sys

import pytest
import torch
from helpers import THREADS, assert_resume_finishes_as, kill_9_after, sets, summary

from selfevolve.judge.rewards import combine, correct_reward, length_penalty, resolve
from selfevolve.tasks import get_task
from selfevolve.train.rl import advantages, k3, policy_loss

REWARDS = torch.tensor([[1.0, 0.0, 0.0, 1.0]])


def test_advantages_by_hand():
    std = math.sqrt(1 / 3)  # the group's unbiased std
    grpo = advantages(REWARDS, "grpo")
    assert torch.allclose(grpo, torch.tensor([[1, -1, -1, 1]]) * 0.5 / (std + 1e-4))
    assert torch.allclose(advantages(REWARDS, "grpo", scale=False), torch.tensor([[0.5, -0.5, -0.5, 0.5]]))
    # leave-one-out: 1 - mean(0, 0, 1) = 2/3, 0 - mean(1, 0, 1) = -2/3
    assert torch.allclose(advantages(REWARDS, "rloo"), torch.tensor([[2, -2, -2, 2]]) / 3)
    assert torch.allclose(advantages(REWARDS, "reinforce", baseline=0.25), torch.tensor([[0.75, -0.25, -0.25, 0.75]]))
    assert torch.equal(advantages(torch.ones(2, 4), "grpo"), torch.zeros(2, 4))  # no signal in a solved group


@pytest.mark.parametrize("encoding", ["rope", "abacus", "abacus-all"])
def test_shared_prompts_give_the_unshared_logprobs_and_gradients_every_time_alike(encoding):
    from selfevolve.models.policy import Policy
    from selfevolve.models.tokenizer import CharTokenizer
    from selfevolve.models.transformer import Transformer, TransformerConfig
    from selfevolve.train.rl import logprobs_and_entropy, sample_batch
    from selfevolve.train.shared_prompts import share_prompts, shared_logprobs

    tok = CharTokenizer()
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(tok.vocab_size, n_layer=4, n_head=4, n_embd=64, max_seq_len=64,
                                          pos_encoding=encoding, digit_token_ids=tuple(tok.digit_ids)))
    prompts = [f"{i},{i + 3},2>{2 * i}:" for i in range(8, 24)]  # prompts of two lengths
    batch = sample_batch(Policy(model, tok), prompts, {}, lambda p, c, **_: [0.0] * len(c), 8, 12, 1.0,
                         torch.Generator().manual_seed(0))
    shared = share_prompts(model, batch.examples, 8)
    inputs, labels = batch.examples.batch(torch.arange(len(batch.examples)))
    assert shared.ids.numel() < 0.75 * inputs.numel()  # fewer tokens

    def grads(logp):  # a loss that weighs every token differently
        return torch.cat([g.flatten() for g in torch.autograd.grad((logp * torch.arange(logp.shape[1])).sum(),
                                                                   list(model.parameters()))])

    logp, mask, entropy = logprobs_and_entropy(model, inputs, labels, 0.7)
    logp_s, mask_s, entropy_s = shared_logprobs(model, shared, 0.7)
    assert torch.equal(mask, mask_s) and torch.allclose(logp, logp_s, atol=1e-5)
    assert torch.allclose(entropy * mask, entropy_s, atol=1e-5)
    expected = grads(logp)
    assert float((grads(logp_s) - expected).norm() / expected.norm()) < 1e-5  # float rounding only
    if encoding == "rope":  # the same result every time, bit for bit (resume after kill -9 relies on it); a
        # version whose completions read one output of the prompt together differed 2 times in 20
        first = grads(shared_logprobs(model, shared, 0.7)[0])
        assert all(torch.equal(grads(shared_logprobs(model, shared, 0.7)[0]), first) for _ in range(20))
    # nothing to share: groups of one, or rows of a group with different prompts
    assert share_prompts(model, batch.examples, 1) is None
    assert share_prompts(model, batch.examples, 16) is None


MASK = torch.tensor([[1, 1, 0], [1, 0, 0]])
ADV = torch.tensor([1.0, -2.0])


@pytest.mark.parametrize("aggregation,expected", [
    ("sequence-mean", 0.5),  # sequence 1: mean(-1, -1) = -1; sequence 2: +2; mean of the two
    ("token-mean", 0.0),  # (-1 - 1 + 2) / 3 tokens
    ("constant", 0.0),  # (-1 - 1 + 2) / (2 sequences x 3 positions)
])
def test_the_on_policy_loss_by_hand(aggregation, expected):
    logp = torch.log(torch.tensor([[0.5, 0.2, 0.9], [0.3, 0.4, 0.1]]))
    loss, info = policy_loss(logp, logp, ADV, MASK, 0.2, aggregation)
    assert loss.item() == pytest.approx(expected) and info["clip_fraction"] == 0 and info["kl"] == 0


def test_clipping_and_the_kl_term_by_hand():
    old = torch.zeros(2, 3)
    logp = torch.tensor([[math.log(1.5), 0.0, 0.0], [math.log(1.5), 0.0, 0.0]])  # ratio 1.5 on each first token
    loss, info = policy_loss(logp, old, torch.tensor([1.0, -1.0]), MASK, 0.2, "token-mean")
    # A = 1: min(1.5, 1.2) = 1.2 -> -1.2; A = -1: min(-1.5, -1.2) = -1.5 -> +1.5; the other token -1
    assert loss.item() == pytest.approx((-1.2 - 1 + 1.5) / 3) and info["clip_fraction"] == pytest.approx(2 / 3)
    ref = logp + math.log(2)  # the reference twice as likely on every token: k3 = 2 - log 2 - 1
    loss_kl, info = policy_loss(logp, old, torch.tensor([1.0, -1.0]), MASK, 0.2, "token-mean", ref, kl_coef=0.5)
    assert info["kl"] == pytest.approx(1 - math.log(2))
    assert loss_kl.item() == pytest.approx(loss.item() + 0.5 * (1 - math.log(2)))


def test_kl_of_the_reference_itself_is_zero():
    logp = torch.randn(4, 7).log_softmax(-1)
    assert torch.equal(k3(logp, logp), torch.zeros(4, 7))
    assert (k3(logp, logp.roll(1, 1)) >= 0).all()


def test_the_gradient_pushes_up_what_was_rewarded():
    logp = torch.log(torch.tensor([[0.5, 0.5], [0.5, 0.5]])).requires_grad_()
    loss, _ = policy_loss(logp, logp.detach(), torch.tensor([1.0, -1.0]), torch.ones(2, 2), 0.2, "sequence-mean")
    loss.backward()  # d loss / d logp = -A / (tokens x sequences)
    assert torch.allclose(logp.grad, torch.tensor([[-0.25, -0.25], [0.25, 0.25]]))


def test_reward_functions_with_trls_signature_plug_in(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        "def near_target(prompts, completions, target, **kwargs):\n"
        "    return [1.0 if str(t) in c else 0.0 for c, t in zip(completions, target)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    task = get_task("countdown")
    problem = task.from_record({"numbers": [3, 4], "target": 7})
    theirs = resolve("my_rewards:near_target", task)
    total = combine([(correct_reward(task), 1.0), (theirs, 0.5), (length_penalty(4), 1.0)])
    completions = ["3+4", "7", "3*4+3-4"]  # right; the target's digit but no expression; wrong and long
    got = total([problem.prompt] * 3, completions, problem=[problem] * 3, target=[7] * 3, numbers=[[3, 4]] * 3)
    assert got == pytest.approx([1.0, 0.5, -3 / 4])
    for bad in ("nothing_like_this", "no_such_module:f", "my_rewards:missing"):
        with pytest.raises(ValueError, match="reward"):
            resolve(bad, task)
    sys.modules.pop("my_rewards", None)


# the tiny setting of tests/test_star.py: its round-0 model answers 27% of held-out problems
TINY = ["difficulty=3", "num_labelled=1500", "n_embd=64", "round0_steps=400", "samples_per_problem=4",
        "eval_problems=400", THREADS]
# 160 problems an iteration, so 40 steps of 16 prompts see each 4 times: the reward on them rises by 0.10-0.11
# over 80 steps on seeds 0 and 1 (on 640 new problems, seen once each, by +0.04 / +0.01: it learns the
# prompts it trains on faster than it generalises)
RL = ["iterations=2", "iteration_steps=40", "problems_per_iteration=160", "rl_learning_rate=3e-4"]


@pytest.fixture(scope="module")
def grpo_run(finished_run):
    # the same settings as test_star.py's round0 fixture, so a test process that runs both trains that model once
    round0 = finished_run("star", ["difficulty=3", "num_labelled=1500", "n_embd=64", "round0_steps=400",
                                   "iterations=1", "problems_per_iteration=1200", "samples_per_problem=4",
                                   "iteration_steps=300", "eval_problems=400", THREADS, "iterations=0"])
    return round0, finished_run("grpo", [*TINY, *RL, f"init_from={round0}"])


def test_a_tiny_grpo_run_raises_its_reward_and_records_every_step(grpo_run):
    _, run = grpo_run
    s = summary(run)
    steps = [x for r in s["rounds"][1:] for x in r["rl_steps"]]
    assert len(steps) == 80 and s["samples_drawn"] == 80 * 16 * 8
    first, last = (sum(x["reward_mean"] for x in part) / 20 for part in (steps[:20], steps[-20:]))
    assert 0.1 <= s["rounds"][0]["pass1"] <= 0.4 and last >= first + 0.05, (first, last)
    assert all(x["kl"] >= 0 and 0 <= x["zero_variance_groups"] <= 1 and x["entropy"] > 0 for x in steps)
    assert (run / "plots" / "rl_reward.png").exists() and (run / "plots" / "rl_stats.png").exists()


def test_a_tiny_grpo_run_through_the_native_forward_learns_as_well(grpo_run, finished_run):
    """native=true samples and takes the reference's pass in C: other tokens than the default run's (values
    equal up to rounding, and draws by inverse CDF), the same rise in reward."""
    round0, default = grpo_run
    run = finished_run("grpo", [*TINY, *RL, f"init_from={round0}", "native=true"])
    rewards = {}
    for name, path in (("default", default), ("native", run)):
        steps = [x for r in summary(path)["rounds"][1:] for x in r["rl_steps"]]
        rewards[name] = [sum(x["reward_mean"] for x in part) / 20 for part in (steps[:20], steps[-20:])]
    assert rewards["native"] != rewards["default"]  # a run of its own, not the default path again
    first, last = rewards["native"]
    assert last >= first + 0.05 and last >= rewards["default"][1] - 0.1, rewards


def test_kill_9_mid_iteration_then_resume_equals_an_uninterrupted_grpo_run(tmp_path, grpo_run, finished_run):
    round0, _ = grpo_run
    quick = [*TINY, *RL, "iteration_steps=4", "eval_problems=40", f"init_from={round0}"]  # resuming need not learn
    killed = tmp_path / "killed"
    kill_9_after(["run", "grpo", "--out", str(killed), *sets(quick)], "checkpoints/round-001")  # between iterations
    assert not (killed / "summary.json").exists()
    assert_resume_finishes_as(killed, finished_run("grpo", quick))
