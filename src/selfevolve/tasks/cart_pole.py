"""A cart-pole for PASTA: gymnasium's CartPole-v1 dynamics batched in torch with a continuous force, its
variants (other physics, other goals) and their experts.

State (x, vx, angle, spin); action a in [-1, 1], the force a * force_mag, so CartPole-v1's two
actions are a = -1 and a = 1 (with those, a step equals gymnasium's: tested). An episode fails once
the pole leans past 12 degrees or the cart leaves [-2.4, 2.4], as in CartPole-v1; every step from
then on earns 0. A step's reward is 1 while up, times exp(-(x - goal)^2) for a skill with a goal
position, so an episode's return (the mean reward) is in [0, 1]. A skill's expert is the LQR
controller of its own dynamics, linearised at the upright pole; `balance` also has Deep GA policies
evolved on gymnasium's CartPole-v1 (evolve/ga.py), which push with full force one way or the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from selfevolve.errors import ConfigError
from selfevolve.rng import rngs

GRAVITY, MASSCART, TAU = 9.8, 1.0, 0.02
X_LIMIT, ANGLE_LIMIT = 2.4, 12 * 2 * math.pi / 360
START = 0.05  # CartPole-v1 starts every state variable uniform in [-0.05, 0.05]
SENSORS = ("x", "vx", "angle", "spin")
ACTION_DIM = 1
# value ranges of (x, vx, angle, spin, force) for component tokens
LOW, HIGH = [-2.4, -2.0, -0.21, -2.0, -1.0], [2.4, 2.0, 0.21, 2.0, 1.0]
PRETRAIN, TASKS = ("balance", "left"), ("right", "long")
EPISODE_STEPS = 200  # 4 seconds


@dataclass(frozen=True)
class Skill:
    goal: float | None = None
    """Where the cart should stay (None: anywhere on the track)."""
    length: float = 0.5
    """Half the pole's length."""
    masspole: float = 0.1
    force_mag: float = 10.0


SKILLS = {
    "balance": Skill(),  # CartPole-v1
    "left": Skill(goal=-1.0),  # balance with the cart held at x = -1
    "right": Skill(goal=1.0),  # ... at x = 1 (a goal the corpus never shows)
    "long": Skill(length=1.5),  # a pole three times as long (a dynamics change: balance's expert fails on it)
}


def skill(name: str) -> Skill:
    if name not in SKILLS:
        raise ConfigError(f"unknown cart-pole skill {name!r}; valid: {', '.join(SKILLS)}")
    return SKILLS[name]


def step(sk: Skill, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """CartPole-v1's Euler step for (N, 4) states and (N,) actions in [-1, 1]."""
    x, vx, angle, spin = s.unbind(1)
    total, arm = MASSCART + sk.masspole, sk.masspole * sk.length
    cos, sin = angle.cos(), angle.sin()
    temp = (sk.force_mag * a.clamp(-1.0, 1.0) + arm * spin**2 * sin) / total
    spin_acc = (GRAVITY * sin - cos * temp) / (sk.length * (4.0 / 3.0 - sk.masspole * cos**2 / total))
    x_acc = temp - arm * spin_acc * cos / total
    return torch.stack([x + TAU * vx, vx + TAU * x_acc, angle + TAU * spin, spin + TAU * spin_acc], 1)


def fallen(s: torch.Tensor) -> torch.Tensor:
    return (s[:, 0].abs() > X_LIMIT) | (s[:, 2].abs() > ANGLE_LIMIT)


@cache
def lqr_gain(sk: Skill, weights: tuple[float, ...] = (1.0, 1.0, 10.0, 1.0), cost: float = 0.1) -> torch.Tensor:
    """K (4,) of the discrete-time LQR of the step linearised at rest with the pole up (the Riccati
    equation iterated to its fixed point): a = -K (s - goal) minimises sum s'Qs + cost a^2."""
    rest = torch.zeros(4, dtype=torch.float64)
    A = torch.autograd.functional.jacobian(lambda s: step(sk, s[None], torch.zeros(1, dtype=s.dtype))[0], rest)
    B = torch.autograd.functional.jacobian(lambda a: step(sk, rest[None], a)[0], torch.zeros(1, dtype=rest.dtype))
    Q, R = torch.diag(torch.tensor(weights, dtype=torch.float64)), torch.tensor([[cost]], dtype=torch.float64)
    P = Q.clone()
    for _ in range(5000):
        K = torch.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        nxt = Q + A.T @ P @ (A - B @ K)
        if torch.allclose(nxt, P, rtol=1e-10, atol=1e-10):
            break
        P = nxt
    return K[0]


def expert(sk: Skill) -> Callable[[torch.Tensor], torch.Tensor]:
    gain, goal = lqr_gain(sk), torch.tensor([sk.goal or 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    return lambda s: -((s - goal) @ gain).clamp(-1.0, 1.0)[:, None]


def _simulate(sk: Skill, act: Callable[[torch.Tensor], torch.Tensor], episodes: int, steps: int, seed: int,
              stream: str, noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """States (steps, E, 4), the acting policy's actions (steps, E, 1) and rewards (steps, E); with
    `noise`, Gaussian noise is added to the executed force (not to the recorded action). Physics in
    float64, as gymnasium's; the policy sees float32 states."""
    gen = rngs(seed, stream).torch
    s = (torch.rand(episodes, 4, generator=gen, dtype=torch.float64) * 2 - 1) * START
    up = torch.ones(episodes, dtype=torch.bool)
    states, actions, rewards = [], [], []
    for _ in range(steps):
        a = act(s.float()).reshape(episodes, ACTION_DIM)
        executed = a[:, 0].double()
        if noise:
            executed = executed + noise * torch.randn(episodes, generator=gen, dtype=torch.float64)
        nxt = step(sk, s, executed)
        up &= ~fallen(nxt)
        at_goal = torch.exp(-(nxt[:, 0] - sk.goal) ** 2) if sk.goal is not None else torch.ones(episodes)
        states.append(s.float())
        actions.append(a.float())
        rewards.append(up.float() * at_goal.float())
        s = nxt
    return torch.stack(states), torch.stack(actions), torch.stack(rewards)


@cache
def ga_policies(seed: int, count: int, generations: int = 3) -> tuple[Callable[[torch.Tensor], torch.Tensor], ...]:
    """The best `count` of a Deep GA population (100 MLPs 4-16-2) after `generations` generations on
    gymnasium's CartPole-v1: near-solvers that balance in their own ways, by full pushes (a = +-1)."""
    from selfevolve.evolve.ga import DeepGA, GAConfig
    from selfevolve.evolve.rollout import mean_return, policy_spec
    from selfevolve.evolve.runner import chunk_seed

    spec = policy_spec("CartPole-v1", (16,))
    ga = DeepGA(GAConfig(pop_size=100, truncation=10, elites=1, sigma=0.1), spec.dim, spec.init)
    state = ga.init(seed)
    for generation in range(generations + 1):
        params, state = ga.ask(state)
        fitness = mean_return(params, chunk_seed(seed, generation), spec, "CartPole-v1", 3)
        if generation < generations:
            state = ga.tell(state, params, fitness)
    best = np.argsort(-fitness, kind="stable")[:count]

    def policy(weights: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
        layers = spec.layers(torch.from_numpy(weights[None].copy()))
        return lambda s: torch.from_numpy(spec.act(layers, s[None]) * 2.0 - 1.0).float()[:, None]

    return tuple(policy(params[i]) for i in best)


def pretraining(names: tuple[str, ...], episodes_each: int, steps: int, seed: int,
                noise_levels: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The corpus: `episodes_each` expert episodes of each skill at each noise level and, for `balance`,
    as many again from three Deep GA policies. States (E, steps, 4), actions (E, steps, 1)."""
    parts, ga = [], ga_policies(seed, 3) if "balance" in names else ()
    for name in names:
        for noise in noise_levels:
            parts.append(episodes(name, episodes_each, steps, seed, noise, f"pretrain/{noise}"))
            for i, act in enumerate(ga if name == "balance" else ()):
                share = episodes_each // 3 + (i < episodes_each % 3)
                states, actions, _ = _simulate(SKILLS[name], act, share, steps, seed, f"pretrain/{noise}/ga{i}", noise)
                parts.append((states.transpose(0, 1), actions.transpose(0, 1)))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def episodes(name: str, n: int, steps: int, seed: int, noise: float,
             stream: str = "demos") -> tuple[torch.Tensor, torch.Tensor]:
    """States (n, steps, 4) and expert actions (n, steps, 1) of `n` expert episodes of a skill."""
    sk = skill(name)
    states, actions, _ = _simulate(sk, expert(sk), n, steps, seed, f"{stream}/{name}", noise)
    return states.transpose(0, 1), actions.transpose(0, 1)


@torch.no_grad()
def mean_return(name: str, act: Callable[[torch.Tensor], torch.Tensor], episodes: int, steps: int,
                seed: int) -> float:
    """A policy's score on a skill: its mean return over held-out episodes (their own start stream)."""
    _, _, rewards = _simulate(skill(name), act, episodes, steps, seed, f"eval/{name}")
    return float(rewards.mean())


def expert_return(name: str, episodes: int, steps: int, seed: int) -> float:
    return mean_return(name, expert(skill(name)), episodes, steps, seed)
