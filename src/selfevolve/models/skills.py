"""A frozen policy with a library of LoRA skills, composed per state in parameter space (PSEC).

Every linear layer l of the base MLP keeps its weights W_l; skill i adds the low-rank update
scale * B_il A_il. Composing with weights w (one per skill) gives the layer W_l + scale sum_i w_i B_il A_il:
a merge in parameter space, evaluated here for a whole batch at once with one weight vector per
state (`forward(obs, weights)` with weights (N, k)). A skill's B starts at zero, so adding one
changes nothing until it is trained; training a skill touches only its own A and B.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from selfevolve.rng import seeded


class Lora(nn.Module):
    """One skill: an (A, B) pair for every layer of the base."""

    def __init__(self, sizes: list[int], rank: int) -> None:
        super().__init__()
        self.A = nn.ParameterList(nn.Parameter(torch.randn(rank, a) / a ** 0.5) for a in sizes[:-1])
        self.B = nn.ParameterList(nn.Parameter(torch.zeros(b, rank)) for b in sizes[1:])


class SkillPolicy(nn.Module):
    """An MLP (tanh after every layer: actions in [-1, 1]) and its skill library."""

    def __init__(self, sizes: list[int], rank: int, scale: float = 1.0) -> None:
        super().__init__()
        self.sizes, self.rank, self.scale = list(sizes), rank, scale
        self.base = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False))
        self.skills = nn.ModuleList()

    def add_skill(self, seed: int, name: str) -> int:
        """A fresh skill (B = 0, so the policy is unchanged); returns its index."""
        self.skills.append(seeded(lambda: Lora(self.sizes, self.rank), seed, "skill", name))
        return len(self.skills) - 1

    def forward(self, obs: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Actions for (N, d) states; `weights` (N, k) mixes the k skills per state (None: the base)."""
        h = obs
        for layer, linear in enumerate(self.base):
            out = linear(h)
            if weights is not None:
                low = torch.stack([h @ s.A[layer].T @ s.B[layer].T for s in self.skills], 1)  # (N, k, out)
                out = out + self.scale * (weights.unsqueeze(-1) * low).sum(1)
            h = torch.tanh(out)
        return h

    def merged(self, weights: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's (weight, bias) after merging the skills with one weight vector (k,)."""
        out = []
        for layer, linear in enumerate(self.base):
            delta = sum(w * s.B[layer] @ s.A[layer] for w, s in zip(weights, self.skills, strict=True))
            out.append((linear.weight + self.scale * delta, linear.bias))
        return out

    def base_only(self) -> SkillPolicy:
        """A copy of the base without the library (for full fine-tuning)."""
        plain = copy.deepcopy(self)
        plain.skills = nn.ModuleList()
        return plain


class Composer(nn.Module):
    """Weights over k skills: per state (PSEC's context-aware network) or one vector for all states.
    Both start at `start` for every state (a uniform merge, say), so learning begins from a known merge."""

    def __init__(self, obs_dim: int, start: torch.Tensor, per_state: bool, hidden: int = 32) -> None:
        super().__init__()
        self.per_state = per_state
        if per_state:
            self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, len(start)))
            nn.init.zeros_(self.net[2].weight)
            with torch.no_grad():
                self.net[2].bias.copy_(start)
        else:
            self.weights = nn.Parameter(start.clone().float())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs) if self.per_state else self.weights.expand(len(obs), -1)
