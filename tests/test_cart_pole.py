"""The cart-pole of PASTA's classic-control corpus: gymnasium's step, experts that balance, a dynamics change
that defeats the old expert, Deep GA policies in the corpus."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from selfevolve.errors import ConfigError
from selfevolve.tasks import cart_pole as cp


def test_a_step_with_full_force_either_way_is_gymnasiums_cartpole_step_bit_for_bit():
    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=3)
    s = torch.tensor(env.state, dtype=torch.float64)[None]
    terminated, steps = False, 0
    for push in np.random.default_rng(0).integers(2, size=100):  # random pushes: it falls within 100 steps
        _, _, terminated, _, _ = env.step(int(push))
        s = cp.step(cp.SKILLS["balance"], s, torch.tensor([2.0 * push - 1], dtype=torch.float64))
        steps += 1
        assert np.array_equal(env.state, s[0].numpy()) and bool(cp.fallen(s)[0]) == terminated
        if terminated:
            break
    assert terminated and steps > 5


def test_each_skills_expert_does_its_skill_and_the_long_pole_defeats_balances_expert():
    still = lambda s: torch.zeros(len(s), 1)  # noqa: E731
    for name in cp.SKILLS:
        expert, nothing = cp.expert_return(name, 50, 200, 0), cp.mean_return(name, still, 50, 200, 0)
        assert expert > nothing + 0.5 and expert >= (0.75 if cp.SKILLS[name].goal else 0.99), (name, expert)
    # held 4 s at x = +-1 from a start at 0: the way there costs a fifth of the return
    assert cp.expert_return("right", 50, 200, 0) == pytest.approx(cp.expert_return("left", 50, 200, 0), abs=0.02)
    assert cp.mean_return("long", cp.expert(cp.SKILLS["balance"]), 50, 200, 0) < 0.3
    with pytest.raises(ConfigError, match="unknown cart-pole skill 'fly'"):
        cp.skill("fly")


def test_the_corpus_holds_each_expert_at_each_noise_and_deep_ga_policies_that_push_full_force():
    ga = cp.ga_policies(0, 3)
    assert all(cp.mean_return("balance", act, 20, 200, 0) > 0.95 for act in ga)
    states, actions = cp.pretraining(("balance", "left"), 4, 30, 0, (0.1, 0.5))
    # per skill and noise level 4 expert episodes; balance's are followed by 4 of the GA policies (2 + 1 + 1)
    assert states.shape == (24, 30, 4) and actions.shape == (24, 30, 1)
    experts, by_ga = actions[[*range(4), *range(8, 12), *range(16, 24)]], actions[[*range(4, 8), *range(12, 16)]]
    assert set(by_ga.unique().tolist()) == {-1.0, 1.0} and (experts.abs() < 1).float().mean() > 0.5
    assert not torch.equal(states[:4], states[8:12])  # another noise level, other episodes
