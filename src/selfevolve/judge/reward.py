"""Outcome reward model (ORM): the policy's transformer with a scalar head, read at the stop token.

It learns P(answer is correct | problem, answer) from the loop's own answers on problems whose
verdict is known, and then judges answers to problems that have none. Initialised from the
policy's weights, as reward models usually are, so it starts from what the policy knows.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfevolve.models.transformer import Transformer
from selfevolve.progress import Progress
from selfevolve.train.sft import Examples, SFTConfig, apply_loss, lr_at, make_optimizer


class RewardModel(nn.Module):
    """Scalar score (a logit) per sequence, read from the hidden state of its last token."""

    def __init__(self, body: Transformer) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(body.cfg.n_embd, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_policy(cls, policy: Transformer) -> RewardModel:
        return cls(copy.deepcopy(policy))

    def forward(self, ids: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """ids (B, T) right-padded, lens (B,) -> logits (B,)."""
        h = self.body.features(ids)  # (B, T, C)
        return self.head(h[torch.arange(len(ids)), lens - 1]).squeeze(-1)

    @torch.no_grad()
    def score(self, examples: Examples, batch_size: int = 512) -> np.ndarray:
        """P(correct) for every example, in order."""
        self.eval()
        out = []
        for lo in range(0, len(examples), batch_size):
            index = torch.arange(lo, min(lo + batch_size, len(examples)))
            T = int(examples.lens[index].max())
            out.append(torch.sigmoid(self(examples.ids[index, :T], examples.lens[index])))
        return torch.cat(out).numpy() if out else np.zeros(0)


def train_orm(model: RewardModel, examples: Examples, labels: np.ndarray, steps: int, sft: SFTConfig,
              gen: torch.Generator, progress: Progress, title: str) -> float:
    """`steps` AdamW steps of binary cross-entropy on (example, correct?) with classes weighted
    equally, so a policy that is mostly wrong does not teach the judge to say "wrong" to all."""
    target = torch.as_tensor(labels, dtype=torch.float32)
    pos = float(target.mean())
    weight = torch.where(target > 0, 0.5 / max(pos, 1e-6), 0.5 / max(1 - pos, 1e-6))
    optimizer = make_optimizer(model.body, sft)
    optimizer.add_param_group({"params": list(model.head.parameters()), "weight_decay": 0.0})
    loss = float("nan")
    with progress.task(title, total=steps) as advance:
        for step in range(steps):
            model.train()
            index = torch.randint(len(examples), (min(sft.batch_size, len(examples)),), generator=gen)
            T = int(examples.lens[index].max())
            logits = model(examples.ids[index, :T], examples.lens[index])
            batch_loss = F.binary_cross_entropy_with_logits(logits, target[index], weight=weight[index])
            loss = apply_loss(model, optimizer, batch_loss, lr_at(step, steps, sft), sft)
            advance(loss=loss)
    return loss
