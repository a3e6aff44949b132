"""Behaviour cloning's loop for the small policies (psec, pasta): Adam over minibatches the caller draws."""

from __future__ import annotations

from collections.abc import Callable

import torch


def fit(params: list[torch.nn.Parameter], batch_loss: Callable[[torch.Generator], torch.Tensor], steps: int,
        lr: float, gen: torch.Generator) -> float:
    """`steps` Adam steps on `batch_loss(gen)` (a fresh minibatch each call); the last loss."""
    optimizer = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        loss = batch_loss(gen)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()
