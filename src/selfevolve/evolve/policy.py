"""Many small MLP policies evaluated as one batched computation.

A population of P networks with the same layer sizes is a (P, dim) float32 matrix; one
`act` call maps observations (P, E, obs) of E environments per network to actions with a
batched matmul per layer, so evaluating the population costs a few tensor ops per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class MLPSpec:
    sizes: tuple[int, ...]  # obs_dim, hidden..., out_dim
    discrete: bool  # argmax over outputs, else tanh scaled to [low, high]
    low: float = -1.0
    high: float = 1.0

    @property
    def dim(self) -> int:
        return sum(i * o + o for i, o in zip(self.sizes, self.sizes[1:], strict=False))

    def init(self, seed: int) -> np.ndarray:
        """Weights N(0, 1/fan_in), biases 0: the genome's starting point."""
        rng = np.random.default_rng(seed)
        parts = []
        for i, o in zip(self.sizes, self.sizes[1:], strict=False):
            parts.append(rng.standard_normal(i * o, dtype=np.float32) / np.float32(np.sqrt(i)))
            parts.append(np.zeros(o, dtype=np.float32))
        return np.concatenate(parts)

    def layers(self, params: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(P, dim) -> per layer W (P, in, out) and b (P, 1, out), views into params."""
        out, at, P = [], 0, params.shape[0]
        for i, o in zip(self.sizes, self.sizes[1:], strict=False):
            w = params[:, at : at + i * o].view(P, i, o)
            b = params[:, at + i * o : at + i * o + o].view(P, 1, o)
            out.append((w, b))
            at += i * o + o
        return out

    def act(self, layers, obs: torch.Tensor) -> np.ndarray:
        """Observations (P, E, obs_dim) -> actions (P * E,) (discrete) or (P * E, act_dim)."""
        h = obs
        for n, (w, b) in enumerate(layers):
            h = torch.baddbmm(b, h, w)
            if n < len(layers) - 1:
                h = torch.tanh(h)
        if self.discrete:
            return h.argmax(-1).flatten().numpy()
        scaled = self.low + (torch.tanh(h) + 1) * (self.high - self.low) / 2
        return scaled.flatten(0, 1).numpy()
