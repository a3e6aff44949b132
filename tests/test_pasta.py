"""PASTA: component tokens, the action-state transformer's losses by hand, the policy's history, and a
tiny run that pretrains, adapts, probes a failed sensor and resumes."""

import math
import re

import pytest
import torch
import torch.nn.functional as F
from helpers import (
    THREADS,
    assert_refused_before_a_run,
    assert_resume_finishes_as,
    kill_9_after,
    sets,
    summary,
)

from selfevolve.config import build_config
from selfevolve.errors import ConfigError
from selfevolve.models.state_action import ActionStateTransformer, Bins
from selfevolve.recipes.pasta import METHODS, Config, build, policy
from selfevolve.tasks.point_mass import HIGH, LOW

TINY = ["pretrain_skills=hold,move", "noise_levels=0.3", "pretrain_episodes=8", "pretrain_steps=150",
        "adapt_steps=150", "eval_episodes=20", "episode_steps=30", "tasks=heavy", "n_embd=32", "context=3",
        THREADS]


def test_component_tokens_round_trip_within_half_a_bin_and_each_dimension_has_its_own_ids():
    bins = Bins(LOW, HIGH, 64)
    x = torch.rand(500, 6) * (torch.tensor(HIGH) - torch.tensor(LOW)) + torch.tensor(LOW)
    ids = bins.encode(x)
    assert ((ids // 64) == torch.arange(6)).all()  # dimension d's tokens are d*64 .. d*64+63
    assert ((bins.decode(ids) - x).abs() <= bins.width / 2 + 1e-6).all()
    far = torch.tensor([[100.0, -100.0, 0.0, 0.0, 5.0, -5.0]])
    assert (bins.encode(far) % 64).tolist() == [[63, 0, 32, 32, 63, 0]]  # outside the range: the end bins
    actions = bins.encode(torch.tensor([[0.3, -0.7]]), first_dim=4)  # action dims take their own slices
    assert (actions // 64 == torch.tensor([4, 5])).all()
    torch.testing.assert_close(bins.decode(actions, first_dim=4), torch.tensor([[0.3, -0.7]]), atol=1 / 64, rtol=0)


def test_the_cloning_loss_counts_only_action_tokens_and_each_step_is_six_tokens():
    cfg = build_config(Config, {"n_embd": 32, "context": 3})
    model = build(cfg, "component", "test")
    states, actions = torch.randn(2, 3, 4), torch.rand(2, 3, 2) * 2 - 1
    ids = model.ids(states, actions)
    assert ids.shape == (2, 18) and ((ids[:, :6] // 64) == torch.arange(6)).all()
    logits = model.head(model.features(model.embed(ids)))
    picked = [p for p in range(17) if (p + 1) % 6 in (4, 5)]  # positions whose next token is an action
    want = F.cross_entropy(logits[:, picked].reshape(-1, logits.shape[-1]), ids[:, [p + 1 for p in picked]].reshape(-1))
    torch.testing.assert_close(model.loss(states, actions, actions_only=True), want)
    everything = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(model.loss(states, actions, actions_only=False), everything)

    modality = build(cfg, "modality", "test")
    h = modality.features(modality._modality(states, actions))  # s0 a0 s1 a1 s2 a2
    torch.testing.assert_close(modality.loss(states, actions, True), F.mse_loss(modality.head_action(h[:, 0::2]),
                                                                                actions))


class Recording(ActionStateTransformer):
    """A real model that also keeps what each call to act() was given."""

    calls: list

    def act(self, states, actions):
        self.calls.append((states.clone(), actions.clone()))
        return super().act(states, actions)


def test_the_policy_reads_the_last_context_steps_and_the_actions_between_them_and_a_failed_sensor_reads_0():
    cfg = build_config(Config, {"n_embd": 32, "context": 3})
    model = build(cfg, "component", "test")
    model.__class__ = Recording
    model.calls = []
    act = policy(model, 3, failed=2)
    seen = [torch.randn(5, 4) for _ in range(5)]
    given = [act(s) for s in seen]
    for t, (states, actions) in enumerate(model.calls):
        first = max(0, t - 2)
        want = torch.stack(seen[first:t + 1], 1).clone()
        want[..., 2] = 0.0
        assert torch.equal(states, want)
        assert actions.shape == (5, t - first, 2)
        if t - first:
            assert torch.equal(actions, torch.stack(given[first:t], 1))
    assert seen[0][:, 2].abs().sum() > 0  # the caller's states are not changed


@pytest.fixture(scope="module")
def tiny_run(finished_run):
    return finished_run("pasta", TINY)


def test_a_tiny_run_pretrains_both_tokenisations_and_every_method_learns_the_task(tiny_run):
    s = summary(tiny_run)
    component, modality = s["pretraining"]
    assert component["tokens"] == "component" and component["loss"] < 0.75 * math.log(64)  # chance is log(bins)
    assert modality["tokens"] == "modality" and modality["loss"] < 0.1
    (task,) = s["tasks"]
    assert task["task"] == "heavy" and set(task["returns"]) == set(task["sensor_failed"]) == set(METHODS)
    standing_still = math.exp(-1)  # the reward of v = 0 when v* = (1, 0)
    assert all(v > standing_still + 0.2 for v in task["returns"].values()), task["returns"]
    assert all(0 <= v <= 1 for v in task["sensor_failed"].values()) and task["expert"] > 0.9
    assert (tiny_run / "plots" / "task-heavy.png").exists()


QUICK = [*TINY, "pretrain_steps=20", "adapt_steps=20", "eval_episodes=4"]  # resuming need not learn much


def test_kill_9_then_resume_equals_an_uninterrupted_run(finished_run, tmp_path):
    killed = tmp_path / "killed"
    kill_9_after(["run", "pasta", "--out", str(killed), *sets(QUICK)], "state.json@1")  # after one pretraining
    assert_resume_finishes_as(killed, finished_run("pasta", QUICK))


def test_bad_settings_are_one_clear_error_before_a_run_exists(tmp_path):
    assert_refused_before_a_run(tmp_path, "pasta", "failed_sensor must be one of x, y, vx, vy", "failed_sensor=z")


@pytest.mark.parametrize("values,message", [({"context": 80}, "context (80) must be <= episode_steps"),
                                             ({"tasks": "fly"}, "unknown point-mass skill 'fly'"),
                                             ({"env": "mars"}, "env must be one of point-mass, cart-pole"),
                                             ({"env": "cart-pole", "tasks": "diagonal"},
                                              "unknown cart-pole skill 'diagonal'"),
                                             ({"env": "cart-pole", "failed_sensor": "y"},
                                              "failed_sensor must be one of x, vx, angle, spin")])
def test_each_bad_setting_names_itself(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(Config, values)


def test_on_the_cart_pole_a_step_is_five_tokens_and_the_policy_pushes_one_force():
    cfg = build_config(Config, {"env": "cart-pole", "n_embd": 32, "context": 3})
    assert (cfg.pretrain_skills, cfg.tasks, cfg.episode_steps) == (("balance", "left"), ("right", "long"), 200)
    model = build(cfg, "component", "test")
    states, actions = torch.randn(2, 3, 4) * 0.1, torch.rand(2, 3, 1) * 2 - 1
    ids = model.ids(states, actions)
    assert ids.shape == (2, 15) and ((ids[:, :5] // 64) == torch.arange(5)).all()
    picked = [p for p in range(14) if (p + 1) % 5 == 4]  # the force token of each step is the only target
    logits = model.head(model.features(model.embed(ids)))
    want = F.cross_entropy(logits[:, picked].reshape(-1, logits.shape[-1]), ids[:, [p + 1 for p in picked]].reshape(-1))
    torch.testing.assert_close(model.loss(states, actions, actions_only=True), want)
    act = policy(build(cfg, "modality", "test"), 3, failed=1)
    forces = [act(torch.randn(7, 4) * 0.1) for _ in range(4)]
    assert all(f.shape == (7, 1) and f.abs().max() <= 1 for f in forces)
