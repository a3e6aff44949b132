"""Iterative DPO on the model's own (correct, incorrect) answers, with an NLL term (iterative RPO).

Pang et al. (2024), "Iterative Reasoning Preference Optimization", arXiv:2404.19733

The STaR loop (recipes/star.py) with a different learning step: every problem with an answer
the judge accepts and one it rejects gives a pair (with the exact verifier: its first correct
answer and its first incorrect one; with judge=orm: the highest- and lowest-scored); the model
takes `iteration_steps` AdamW steps on the DPO loss of the pairs plus `nll_weight` times the
per-token NLL of the chosen answer, against a reference model that is a frozen copy of the model
at the start of the iteration (refreshed every iteration).

    selfevolve run dpo --set beta=0.5 --set nll_weight=1.0
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.recipes import star
from selfevolve.recipes.star import evaluate_file, headline, plots  # noqa: F401
from selfevolve.train.dpo import dpo_step, reference_logprobs
from selfevolve.train.sft import Examples, lr_at


@dataclass
class Config(star.Config):
    beta: float = 1.0
    """DPO inverse temperature (larger keeps the policy nearer the reference). On the tiny Countdown
    setting of the tests, beta 1.0 / lr 1e-4 gave pass@1 +0.047, beta 0.1 / lr 3e-4 +0.012."""
    nll_weight: float = 1.0
    """Weight of the per-token NLL of the chosen answer added to the DPO loss."""
    dpo_learning_rate: float = 1e-4
    """Peak AdamW learning rate of the preference steps (round 0 uses learning_rate)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0 or self.dpo_learning_rate <= 0 or self.nll_weight < 0:
            raise ValueError("beta and dpo_learning_rate must be > 0 and nll_weight >= 0")


def preference_pairs(samples: dict[str, list]) -> tuple[list[str], list[str], list[str]]:
    """(prompt, chosen, rejected) per problem with a selected and a rejected finished answer: the
    selected one the judge scores highest, and the rejected one it scores lowest (first on ties)."""
    chosen: dict[str, tuple[float, str]] = {}
    rejected: dict[str, tuple[float, str]] = {}
    for prompt, text, score, ok in zip(samples["prompt"], samples["answer"], samples["reward"], samples["selected"],
                                       strict=True):
        if ok and (prompt not in chosen or score > chosen[prompt][0]):
            chosen[prompt] = (score, text)
        elif not ok and text != "<no stop>" and (prompt not in rejected or score < rejected[prompt][0]):
            rejected[prompt] = (score, text)
    prompts = [p for p in chosen if p in rejected]
    return prompts, [chosen[p][1] for p in prompts], [rejected[p][1] for p in prompts]


def train_dpo(model, optimizer, cfg: Config, good: Examples, bad: Examples, gen, progress, title: str,
              weights: torch.Tensor | None = None) -> tuple[float, int]:
    """`iteration_steps` DPO + NLL steps on the pairs (good[i], bad[i]), weighted by `weights` if given,
    against the model as it was before them (the reference). Returns the last loss and the tokens
    trained on (both answers of every pair drawn)."""
    ref_good, ref_bad = reference_logprobs(model, good), reference_logprobs(model, bad)
    sft = dataclasses.replace(cfg.sft(), learning_rate=cfg.dpo_learning_rate)
    loss, tokens = float("nan"), 0
    with progress.task(title, total=cfg.iteration_steps) as advance:
        for step in range(cfg.iteration_steps):
            index = torch.randint(len(good), (min(cfg.batch_size, len(good)),), generator=gen)
            loss = dpo_step(model, optimizer, good, bad, ref_good, ref_bad, index,
                            lr_at(step, cfg.iteration_steps, sft), sft, cfg.beta, cfg.nll_weight, weights)
            tokens += int(good.lens[index].sum() + bad.lens[index].sum())
            advance(loss=loss)
    return loss, tokens


def learn_from_pairs(model, optimizer, cfg: Config, samples, gen, progress, r: int, select=None):
    """DPO on this iteration's pairs; `select(good, bad) -> (good, bad, weights, description)` may drop
    or weight some."""
    prompts, chosen, rejected = preference_pairs(samples)
    if not prompts:
        progress.log(f"[yellow]round {r}: no (accepted, rejected) pair to learn from")
        return optimizer, float("nan"), 0
    tok = CharTokenizer()
    good, bad = Examples.encode(tok, prompts, chosen), Examples.encode(tok, prompts, rejected)
    good, bad, weights, what = select(good, bad) if select else (good, bad, None, f"{len(prompts)} pairs")
    return optimizer, *train_dpo(model, optimizer, cfg, good, bad, gen, progress, f"round {r}: DPO on {what}",
                                 weights)


def learn_dpo(model, optimizer, cfg: Config, labelled, kept, base, samples, gen, progress, r: int):
    return learn_from_pairs(model, optimizer, cfg, samples, gen, progress, r)


def run(cfg: Config, store, progress) -> dict:
    return star.run(cfg, store, progress, learn=learn_dpo)
