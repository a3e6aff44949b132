"""Direct preference optimisation with an NLL term on the chosen answer (iterative RPO style).

Rafailov et al. (2023), "Direct Preference Optimization", arXiv:2305.18290; Pang et al.
(2024), "Iterative Reasoning Preference Optimization", arXiv:2404.19733:

    loss = -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))) + nll_weight * NLL(chosen) / |chosen|

where pi_* and ref_* are summed log-probabilities of the answer tokens under the policy and the
frozen reference model. A pair's two answers follow one prompt, which is read once
(train/shared_prompts.py): a long prompt (LongPO's documents) costs half, and the output head runs
only on answer tokens.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from selfevolve.progress import Progress
from selfevolve.search.answers import preference_pairs
from selfevolve.train.sft import Examples, SFTConfig, apply_loss, lr_at, token_logprobs
from selfevolve.train.shared_prompts import share_prompts, shared_logprobs


def answer_logprobs(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor,
                                                                                                  torch.Tensor]:
    """Summed log-probability of each row's answer tokens, and how many there are. (B, T) -> (B,), (B,)."""
    logp, mask, _ = token_logprobs(model, inputs, labels)
    return logp.sum(-1), mask.sum(-1)


def dpo_loss(pi_chosen: torch.Tensor, pi_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-pair DPO loss from summed answer log-probabilities. All (B,) -> (B,)."""
    return -F.logsigmoid(beta * ((pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)))


def pair_logprobs(model: torch.nn.Module, chosen: Examples, rejected: Examples, index: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed answer log-probabilities of the pairs in `index` (chosen, its answer tokens, rejected),
    each pair's prompt read once where both rows hold the same one, else the two sides apart."""
    n = len(index)
    pairs = Examples.concat([chosen.select(index), rejected.select(index)])
    pairs = pairs.select(torch.stack([torch.arange(n), torch.arange(n, 2 * n)], 1).flatten())  # c0, r0, c1, ...
    packed = share_prompts(model, pairs, 2)
    if packed is None:
        pi_c, n_c = answer_logprobs(model, *chosen.batch(index))
        return pi_c, n_c, answer_logprobs(model, *rejected.batch(index))[0]
    logp, mask, _ = shared_logprobs(model, packed, 1.0)
    sums, counts = logp.sum(-1), mask.sum(-1)
    return sums[0::2], counts[0::2], sums[1::2]


@torch.no_grad()
def reference_pairs(model: torch.nn.Module, chosen: Examples, rejected: Examples, batch_size: int = 64
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """`pair_logprobs` of every pair under the model as it is now, for both sides: the frozen
    reference of a DPO iteration, computed once, the same way as the policy's on every step."""
    model.eval()
    parts = [pair_logprobs(model, chosen, rejected, torch.arange(lo, min(lo + batch_size, len(chosen))))
             for lo in range(0, len(chosen), batch_size)]
    return torch.cat([c for c, _, _ in parts]), torch.cat([r for _, _, r in parts])


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
    pi_c, n_c, pi_r = pair_logprobs(model, chosen, rejected, index)
    per_pair = dpo_loss(pi_c, pi_r, ref_chosen[index], ref_rejected[index], beta) - nll_weight * pi_c / n_c.clamp(min=1)
    w = torch.ones_like(per_pair) if weights is None else weights[index]
    return apply_loss(model, optimizer, (w * per_pair).sum() / w.sum().clamp(min=1e-8), lr, cfg)


@dataclass
class PreferenceConfig:
    """The preference-learning knobs every DPO-family recipe shares."""

    beta: float = 1.0
    """DPO inverse temperature (larger keeps the policy nearer the reference)."""
    nll_weight: float = 1.0
    """Weight of the per-token NLL of the chosen answer added to the DPO loss."""
    dpo_learning_rate: float = 1e-4
    """Peak AdamW learning rate of the preference steps (round 0 uses learning_rate)."""

    def __post_init__(self) -> None:
        super().__post_init__()  # type: ignore[misc]  (a mixin before the recipe's config base)
        if self.beta <= 0 or self.dpo_learning_rate <= 0 or self.nll_weight < 0:
            raise ValueError("beta and dpo_learning_rate must be > 0 and nll_weight >= 0")

    def preference_sft(self) -> SFTConfig:
        """The optimiser settings of the preference steps."""
        return dataclasses.replace(self.sft(), learning_rate=self.dpo_learning_rate)  # type: ignore[attr-defined]


def pair_examples(tok, samples: dict[str, list]) -> tuple[Examples, Examples]:
    """A sample table's (accepted, rejected) pairs (see `preference_pairs`), encoded with `tok`."""
    prompts, chosen, rejected = preference_pairs(samples)
    return Examples.encode(tok, prompts, chosen), Examples.encode(tok, prompts, rejected)


def train_pairs(model, optimizer, sft: SFTConfig, good: Examples, bad: Examples, steps: int, beta: float,
                nll_weight: float, gen: torch.Generator, progress: Progress, title: str,
                weights: torch.Tensor | None = None,
                reference: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[float, int]:
    """`steps` DPO + NLL steps on the pairs (good[i], bad[i]), weighted by `weights` if given, against
    the reference's summed answer log-probabilities (default: the model as it was before them, on the
    same examples; LongPO's come from the short-context prompts). Returns the last loss and the tokens
    trained on (both answers of every pair drawn)."""
    ref_good, ref_bad = reference or reference_pairs(model, good, bad)
    loss, tokens = float("nan"), 0
    with progress.task(title, total=steps) as advance:
        for step in range(steps):
            index = torch.randint(len(good), (min(sft.batch_size, len(good)),), generator=gen)
            loss = dpo_step(model, optimizer, good, bad, ref_good, ref_bad, index, lr_at(step, steps, sft), sft, beta,
                            nll_weight, weights)
            tokens += int(good.lens[index].sum() + bad.lens[index].sum())
            advance(loss=loss)
    return loss, tokens
