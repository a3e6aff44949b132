"""How sure is the model of a preference? Monte Carlo dropout over pairs of answers (UPO)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from selfevolve.models.transformer import MLP, Attention
from selfevolve.train.dpo import answer_logprobs
from selfevolve.train.sft import Examples


@contextmanager
def mc_dropout(model: torch.nn.Module, p: float) -> Iterator[None]:
    """Dropout on every attention and MLP output while inside, whatever the model was trained with."""
    hooks = [m.register_forward_hook(lambda _m, _in, out: F.dropout(out, p, training=True))
             for m in model.modules() if isinstance(m, Attention | MLP)]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


@torch.no_grad()
def pair_uncertainty(model, good: Examples, bad: Examples, passes: int, p: float, seed: int) -> np.ndarray:
    """Standard deviation over MC-dropout passes of each pair's preference for the chosen answer. (pairs,)"""
    index = torch.arange(len(good))
    (ci, cl), (ri, rl) = good.batch(index), bad.batch(index)
    prefs = []
    with torch.random.fork_rng(), mc_dropout(model, p):
        torch.manual_seed(seed)
        for _ in range(passes):
            lp_c, n_c = answer_logprobs(model, ci, cl)
            lp_r, n_r = answer_logprobs(model, ri, rl)
            prefs.append(torch.sigmoid(lp_c / n_c - lp_r / n_r))
    return torch.stack(prefs).std(0).numpy()


def certainty_weights(spread: np.ndarray) -> torch.Tensor:
    """Per-pair loss weights falling linearly from 1 (most certain) to 0 (most uncertain of those kept)."""
    span = spread.max() - spread.min()
    return torch.from_numpy(1 - (spread - spread.min()) / span if span > 0 else np.ones_like(spread)).float()
