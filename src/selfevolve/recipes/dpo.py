"""Iterative DPO on the model's own (correct, incorrect) answers, with an NLL term (iterative RPO).

Pang et al. (2024), "Iterative Reasoning Preference Optimization", arXiv:2404.19733

The STaR loop (recipes/star.py) with a different learning step: every problem that got both
a correct and an incorrect answer gives a pair (its first distinct correct answer, its first
incorrect one); the model takes `iteration_steps` AdamW steps on the DPO loss of the pairs plus
`nll_weight` times the per-token NLL of the chosen answer, against a reference model that is a
frozen copy of the model at the start of the iteration (refreshed every iteration).

    selfevolve run dpo --set beta=0.5 --set nll_weight=1.0
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.recipes import star
from selfevolve.recipes.star import headline, plots  # noqa: F401
from selfevolve.train.dpo import dpo_step
from selfevolve.train.sft import Examples, SFTConfig, lr_at


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
    """(prompt, chosen, rejected) per problem with both a correct and an incorrect finished answer."""
    first_good: dict[str, str] = {}
    first_bad: dict[str, str] = {}
    for prompt, text, ok in zip(samples["prompt"], samples["answer"], samples["correct"], strict=True):
        if ok:
            first_good.setdefault(prompt, text)
        elif text != "<no stop>":
            first_bad.setdefault(prompt, text)
    prompts = [p for p in first_good if p in first_bad]
    return prompts, [first_good[p] for p in prompts], [first_bad[p] for p in prompts]


def train_dpo(model, optimizer, cfg: Config, good: Examples, bad: Examples, gen, progress, title: str) -> float:
    """`iteration_steps` DPO + NLL steps on the pairs (good[i], bad[i]) against a frozen copy of the model."""
    reference = copy.deepcopy(model).eval()
    sft = SFTConfig(learning_rate=cfg.dpo_learning_rate, batch_size=cfg.batch_size, warmup_steps=cfg.warmup_steps)
    loss = float("nan")
    with progress.task(title, total=cfg.iteration_steps) as advance:
        for step in range(cfg.iteration_steps):
            index = torch.randint(len(good), (min(cfg.batch_size, len(good)),), generator=gen)
            loss = dpo_step(model, reference, optimizer, good, bad, index, lr_at(step, cfg.iteration_steps, sft), sft,
                            cfg.beta, cfg.nll_weight)
            advance(loss=loss)
    return loss


def learn_from_pairs(model, optimizer, cfg: Config, samples, gen, progress, r: int, select=None):
    """DPO on this iteration's pairs; `select(good, bad) -> (good, bad, description)` may drop some."""
    prompts, chosen, rejected = preference_pairs(samples)
    if not prompts:
        progress.log(f"[yellow]round {r}: no (correct, incorrect) pair to learn from")
        return optimizer, float("nan")
    tok = CharTokenizer()
    good, bad = Examples.encode(tok, prompts, chosen), Examples.encode(tok, prompts, rejected)
    good, bad, what = select(good, bad) if select else (good, bad, f"{len(prompts)} pairs")
    return optimizer, train_dpo(model, optimizer, cfg, good, bad, gen, progress, f"round {r}: DPO on {what}")


def learn_dpo(model, optimizer, cfg: Config, labelled, kept, base, samples, gen, progress, r: int):
    return learn_from_pairs(model, optimizer, cfg, samples, gen, progress, r)


def run(cfg: Config, store, progress) -> dict:
    return star.run(cfg, store, progress, learn=learn_dpo)
