"""Direct preference optimisation with an NLL term on the chosen answer (iterative RPO style).

Rafailov et al. (2023), "Direct Preference Optimization", arXiv:2305.18290; Pang et al.
(2024), "Iterative Reasoning Preference Optimization", arXiv:2404.19733:

    loss = -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))) + nll_weight * NLL(chosen) / |chosen|

where pi_* and ref_* are summed log-probabilities of the answer tokens under the policy and the
frozen reference model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfevolve.train.sft import IGNORE, Examples, SFTConfig, apply_loss


def answer_logprobs(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor,
                                                                                                  torch.Tensor]:
    """Summed log-probability of each row's answer tokens, and how many there are. (B, T) -> (B,), (B,)."""
    logp = model(inputs).float().log_softmax(-1)
    mask = labels != IGNORE
    token = logp.gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    return (token * mask).sum(-1), mask.sum(-1)


def dpo_loss(pi_chosen: torch.Tensor, pi_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-pair DPO loss from summed answer log-probabilities. All (B,) -> (B,)."""
    return -F.logsigmoid(beta * ((pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)))


@torch.no_grad()
def reference_logprobs(model: torch.nn.Module, examples: Examples, batch_size: int = 64) -> torch.Tensor:
    """Summed answer log-probabilities of every example under the model as it is now: the frozen
    reference of a DPO iteration, computed once instead of on every step's batch."""
    model.eval()
    parts = [answer_logprobs(model, *examples.batch(torch.arange(lo, min(lo + batch_size, len(examples)))))[0]
             for lo in range(0, len(examples), batch_size)]
    return torch.cat(parts)


def dpo_step(model, optimizer, chosen: Examples, rejected: Examples, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, index: torch.Tensor, lr: float, cfg: SFTConfig, beta: float,
             nll_weight: float, weights: torch.Tensor | None = None) -> float:
    """One AdamW step on the pairs in `index` against the reference log-probabilities of all pairs,
    each pair's loss scaled by `weights[index]` if given (a weighted mean); returns the loss."""
    model.train()
    (ci, cl), (ri, rl) = chosen.batch(index), rejected.batch(index)
    pi_c, n_c = answer_logprobs(model, ci, cl)
    pi_r, _ = answer_logprobs(model, ri, rl)
    per_pair = dpo_loss(pi_c, pi_r, ref_chosen[index], ref_rejected[index], beta) - nll_weight * pi_c / n_c.clamp(min=1)
    w = torch.ones_like(per_pair) if weights is None else weights[index]
    return apply_loss(model, optimizer, (w * per_pair).sum() / w.sum().clamp(min=1e-8), lr, cfg)
