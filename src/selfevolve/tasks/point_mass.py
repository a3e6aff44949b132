"""A point mass on a plane and the skills asked of it: PSEC's continual chain and its new tasks.

State (x, y, vx, vy); action a force in [-1, 1]^2; each step v <- v (1 - DRAG dt) + GAIN a dt / mass,
then p <- p + v dt. A skill is a desired velocity field v*(s); a step's reward is exp(-|v - v*(s)|^2),
so an episode's return (the mean reward, in [0, 1]) says how closely the mass followed the field. A
skill's expert is a proportional controller on the velocity error, clipped to the action box.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from selfevolve.errors import ConfigError
from selfevolve.rng import rngs

DT, DRAG, GAIN = 0.1, 0.5, 4.0
RESPONSE = 0.3  # seconds the expert takes to close a velocity error
SENSORS = ("x", "y", "vx", "vy")
ACTION_DIM = 2
# value ranges of (x, y, vx, vy, force x, force y) for component tokens: a mass at speed 2 for 50 steps
# ends 11 from where it started; values outside are clipped to the end bins
LOW, HIGH = [-12.0, -12.0, -3.0, -3.0, -1.0, -1.0], [12.0, 12.0, 3.0, 3.0, 1.0, 1.0]
PRETRAIN, TASKS = ("hold", "move", "fast", "up"), ("diagonal", "switch", "heavy")
EPISODE_STEPS = 50  # 5 seconds


def _const(vx: float, vy: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda s: torch.tensor([vx, vy]).expand(len(s), 2)


def _home(s: torch.Tensor) -> torch.Tensor:
    """Towards the origin, at most speed 1: the base skill."""
    v = -s[:, :2]
    return v / v.norm(dim=1, keepdim=True).clamp(min=1.0)


def _up_then_right(s: torch.Tensor) -> torch.Tensor:
    """Up while below the x axis, right above it: which old skill to follow depends on the state."""
    above = (s[:, 1:2] > 0).float()
    return above * torch.tensor([1.0, 0.0]) + (1 - above) * torch.tensor([0.0, 1.0])


@dataclass(frozen=True)
class Skill:
    field: Callable[[torch.Tensor], torch.Tensor]
    """(N, 4) states -> (N, 2) desired velocities."""
    mass: float = 1.0


SKILLS = {
    "hold": Skill(_home),  # go to the origin and stay
    "move": Skill(_const(1, 0)),  # move right at speed 1
    "fast": Skill(_const(2, 0)),  # move right at speed 2
    "up": Skill(_const(0, 1)),  # move up at speed 1
    "diagonal": Skill(_const(1, 1)),  # move right and up at once (two objectives)
    "switch": Skill(_up_then_right),  # up below the x axis, right above it (a per-state choice)
    "heavy": Skill(_const(1, 0), mass=3.0),  # move right with three times the mass (a dynamics shift)
}


def skill(name: str) -> Skill:
    if name not in SKILLS:
        raise ConfigError(f"unknown point-mass skill {name!r}; valid: {', '.join(SKILLS)}")
    return SKILLS[name]


def expert(sk: Skill, s: torch.Tensor) -> torch.Tensor:
    """The force that closes the velocity error in RESPONSE seconds, against the drag."""
    v = s[:, 2:]
    accel = (sk.field(s) - v) / RESPONSE
    return (sk.mass * (accel + DRAG * v) / GAIN).clamp(-1.0, 1.0)


def _simulate(sk: Skill, act: Callable[[torch.Tensor], torch.Tensor], episodes: int, steps: int, seed: int,
              stream: str, noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """States (steps, E, 4), the acting policy's actions (steps, E, 2) and rewards (steps, E); with
    `noise`, Gaussian noise is added to the executed force (not to the recorded action)."""
    gen = rngs(seed, stream).torch
    s = torch.cat([torch.rand(episodes, 2, generator=gen) * 2 - 1, torch.rand(episodes, 2, generator=gen) - 0.5], 1)
    states, actions, rewards = [], [], []
    for _ in range(steps):
        a = act(s)
        executed = (a + noise * torch.randn(a.shape, generator=gen)).clamp(-1.0, 1.0) if noise else a
        v = s[:, 2:] * (1 - DRAG * DT) + GAIN * executed * DT / sk.mass
        nxt = torch.cat([s[:, :2] + v * DT, v], 1)
        states.append(s)
        actions.append(a)
        rewards.append(torch.exp(-((v - sk.field(nxt)) ** 2).sum(1)))
        s = nxt
    return torch.stack(states), torch.stack(actions), torch.stack(rewards)


def episodes(name: str, n: int, steps: int, seed: int, noise: float,
             stream: str = "demos") -> tuple[torch.Tensor, torch.Tensor]:
    """States (n, steps, 4) and expert actions (n, steps, 2) of `n` expert episodes of a skill; the
    executed force is noisy, so the episodes also show how the expert recovers."""
    sk = skill(name)
    states, actions, _ = _simulate(sk, lambda s: expert(sk, s), n, steps, seed, f"{stream}/{name}", noise)
    return states.transpose(0, 1), actions.transpose(0, 1)


def pretraining(names: tuple[str, ...], episodes_each: int, steps: int, seed: int,
                noise_levels: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The corpus: `episodes_each` expert episodes of each skill at each noise level."""
    parts = [episodes(name, episodes_each, steps, seed, noise, f"pretrain/{noise}")
             for name in names for noise in noise_levels]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def demonstrations(name: str, n: int, steps: int, seed: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(state, expert action) pairs of `n` expert episodes, flattened step by step."""
    states, actions = episodes(name, n, steps, seed, noise)
    return states.transpose(0, 1).reshape(-1, 4), actions.transpose(0, 1).reshape(-1, 2)


@torch.no_grad()
def episode_returns(name: str, act: Callable[[torch.Tensor], torch.Tensor], episodes: int, steps: int,
                    seed: int) -> torch.Tensor:
    """Each held-out episode's mean reward under `act` (start states from their own stream, never a
    demonstration's)."""
    _, _, rewards = _simulate(skill(name), act, episodes, steps, seed, f"eval/{name}")
    return rewards.mean(0)


def mean_return(name: str, act: Callable[[torch.Tensor], torch.Tensor], episodes: int, steps: int,
                seed: int) -> float:
    """A policy's score on a skill: its mean return over the held-out episodes."""
    return float(episode_returns(name, act, episodes, steps, seed).mean())


def expert_return(name: str, episodes: int, steps: int, seed: int) -> float:
    sk = skill(name)
    return mean_return(name, lambda s: expert(sk, s), episodes, steps, seed)
