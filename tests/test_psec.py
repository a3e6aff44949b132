"""PSEC: LoRA skills on a frozen policy, composed per state. The merge is checked by hand, the base's
bytes after training skills, and a tiny run for learning, forgetting and resuming."""

import re

import pytest
import torch
from helpers import (
    assert_refused_before_a_run,
    assert_resume_finishes_as,
    kill_9_after,
    sets,
    summary,
)

from selfevolve.config import build_config
from selfevolve.errors import ConfigError
from selfevolve.models.skills import Composer, SkillPolicy
from selfevolve.recipes.psec import METHODS, Config, learn_skill
from selfevolve.tasks.point_mass import SKILLS, demonstrations, episode_returns, expert, expert_return

TINY = ["base_demos=10", "demos=2", "base_steps=600", "skill_steps=300", "eval_episodes=50", "skills=move,up",
        "tasks=diagonal"]


def hand_forward(policy: SkillPolicy, obs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The policy with its skills merged into each layer's weight by one weight vector, written out."""
    h = obs
    for layer, linear in enumerate(policy.base):
        weight = linear.weight.clone()
        for i, s in enumerate(policy.skills):
            weight += policy.scale * w[i] * (s.B[layer] @ s.A[layer])
        h = torch.tanh(h @ weight.T + linear.bias)
    return h


def test_per_state_composition_is_the_parameter_space_merge_of_each_state_s_weights():
    torch.manual_seed(0)
    policy = SkillPolicy([4, 8, 8, 2], rank=2, scale=0.5)
    obs = torch.randn(3, 4)
    base_out = policy(obs)
    for name in ("a", "b"):
        policy.add_skill(0, name)
    assert torch.equal(policy(obs, torch.randn(3, 2)), base_out)  # fresh skills (B = 0) change nothing
    with torch.no_grad():
        for s in policy.skills:
            for b in s.B:
                b.normal_()
    weights = torch.tensor([[0.3, -1.2], [1.0, 0.0], [0.5, 2.0]])  # one vector per state, not normalised
    got = policy(obs, weights)
    for n in range(3):
        want = hand_forward(policy, obs[n:n + 1], weights[n])
        torch.testing.assert_close(got[n:n + 1], want)
        merged = [(w, b) for w, b in policy.merged(weights[n])]
        h = obs[n:n + 1]
        for w, b in merged:
            h = torch.tanh(h @ w.T + b)
        torch.testing.assert_close(h, want)
    assert not torch.allclose(got[0], hand_forward(policy, obs[:1], weights[1])[0])


def test_composers_start_on_the_new_skill_and_training_a_skill_leaves_everything_else_bit_identical():
    start = torch.tensor([0.0, 0.0, 1.0])
    states = torch.randn(5, 4)
    for per_state in (True, False):
        assert torch.equal(Composer(4, start, per_state)(states), start.expand(5, 3))
    cfg = Config(skill_steps=50, base_steps=50)
    policy = SkillPolicy([4, 16, 16, 2], rank=2)
    policy.base.requires_grad_(False)
    learn_skill(policy, "move", cfg, demonstrations("move", 1, 20, 0, 0.3))
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    learn_skill(policy, "up", cfg, demonstrations("up", 1, 20, 0, 0.3))
    after = policy.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the base and the older skill, byte for byte
    assert any(not torch.equal(b, torch.zeros_like(b)) for b in policy.skills[1].B)  # the new one trained


def test_each_expert_follows_its_field_and_the_reward_tells_it_from_standing_still():
    for name in SKILLS:
        assert expert_return(name, 50, 50, 0) > 0.9, name
    assert episode_returns("move", lambda s: torch.zeros(len(s), 2), 50, 50, 0).mean() < 0.4
    heavy, light = SKILLS["heavy"], SKILLS["move"]
    s = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    assert expert(heavy, s)[0, 0] > expert(light, s)[0, 0] > 0  # more mass, more force for the same field
    demo_starts = demonstrations("move", 3, 1, 0, 0.0)[0]
    eval_starts = []
    episode_returns("move", lambda s: (eval_starts.append(s.clone()), torch.zeros(len(s), 2))[1], 3, 1, 0)
    assert not torch.isclose(demo_starts[:, None], eval_starts[0][None]).all(-1).any()  # held out


@pytest.fixture(scope="module")
def tiny_run(finished_run):
    return finished_run("psec", TINY)


def test_a_tiny_run_learns_each_skill_forgets_none_and_scores_every_method(tiny_run):
    s = summary(tiny_run)
    base, move, up = s["chain"]
    assert [r["skill"] for r in s["chain"]] == ["hold", "move", "up"] and s["base_unchanged"]
    assert base["library"]["hold"] > 0.9
    assert move["library"]["move"] > 0.9 and up["library"]["up"] > 0.85  # each skill learnt from 2 episodes
    assert s["forgetting"]["library"] == {"hold": 0.0, "move": 0.0, "up": 0.0}  # the library forgets nothing
    assert s["forgetting"]["fine_tuned"]["hold"] > 0.5  # one network fine-tuned in turn forgets its base skill
    (task,) = s["tasks"]
    assert task["task"] == "diagonal" and set(task["returns"]) == set(METHODS)
    assert task["returns"]["psec"] > task["base"] + 0.4 and task["expert"] > 0.9
    assert all(0 <= v <= 1 for v in task["returns"].values())
    plots = tiny_run / "plots"
    assert (plots / "forgetting.png").exists() and (plots / "task-diagonal.png").exists()


def test_kill_9_then_resume_equals_an_uninterrupted_run(tiny_run, tmp_path):
    killed = tmp_path / "killed"
    kill_9_after(["run", "psec", "--out", str(killed), *sets(TINY)], "state.json@2")  # after the first skill
    assert not (killed / "summary.json").exists()
    assert_resume_finishes_as(killed, tiny_run)


def test_bad_settings_are_one_clear_error_before_a_run_exists(tmp_path):
    assert_refused_before_a_run(tmp_path, "psec", "unknown point-mass skill 'fly'", "skills=fly")


@pytest.mark.parametrize("values,message", [({"skills": "hold"}, "must be distinct"),
                                             ({"demos": 0}, "demos must be >= 1")])
def test_each_bad_setting_names_itself(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(Config, values)
