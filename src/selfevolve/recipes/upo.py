"""UPO: iterative DPO that trains only on the preference pairs the model is certain about.

Inspired by uncertainty-enhanced preference optimisation (Wang et al. 2024, "Self-Evolutionary
Large Language Models through Uncertainty-Enhanced Preference Optimization", arXiv:2409.11212):

    round 0: supervised fine-tuning on a small labelled seed set
    iteration i: sample answers to new problems and judge them (as STaR); one (accepted, rejected)
             pair per problem that has both (as iterative DPO)
             score every pair `mc_passes` times with Monte Carlo dropout (rate `mc_dropout` on every
             attention and MLP output, at inference): each pass gives the model's preference
             sigmoid(mean log p(chosen) - mean log p(rejected)); the pair's uncertainty is the spread
             keep the `keep_fraction` most certain pairs and take DPO + NLL steps on them

With an exact verifier the labels are right; what the filter removes are pairs whose gradient the
model cannot yet resolve reliably.

    selfevolve run upo --set keep_fraction=0.5
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from selfevolve.judge.uncertainty import certainty_weights, pair_uncertainty
from selfevolve.rng import torch_seed
from selfevolve.selftrain import Learned, SelfTrainConfig, Step, family, sample_at_temperature, self_train
from selfevolve.train.dpo import PreferenceConfig, pair_examples, train_pairs
from selfevolve.train.sft import Examples


@dataclass
class Config(PreferenceConfig, SelfTrainConfig):
    mc_passes: int = 8
    """Stochastic forward passes per pair."""
    mc_dropout: float = 0.1
    """Dropout rate of those passes."""
    keep_fraction: float = 0.9
    """Share of pairs kept, the most certain first."""
    weight_by_certainty: bool = False
    """Also scale each kept pair's loss by its certainty (1 for the most certain, 0 for the least)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mc_passes < 2 or not 0 < self.mc_dropout < 1 or not 0 < self.keep_fraction <= 1:
            raise ValueError("mc_passes must be >= 2, mc_dropout in (0, 1) and keep_fraction in (0, 1]")


def learn_upo(step: Step, samples: dict[str, list]) -> Learned:
    """DPO + NLL on the most certain of this iteration's pairs (optionally weighted by certainty)."""
    cfg, model = step.cfg, step.policy.model
    good, bad = pair_examples(step.policy.tok, samples)
    if not len(good):
        step.progress.log(f"[yellow]round {step.r}: no (accepted, rejected) pair to learn from")
        return Learned(step.optimizer, float("nan"), 0)
    spread = pair_uncertainty(model, good, bad, cfg.mc_passes, cfg.mc_dropout,
                              torch_seed(cfg.seed, "mc-dropout", step.r))
    keep = torch.from_numpy(np.argsort(spread, kind="stable")[: max(1, round(cfg.keep_fraction * len(good)))])
    good, bad = (Examples(e.ids[keep], e.prompt_lens[keep], e.lens[keep]) for e in (good, bad))
    weights = certainty_weights(spread[keep.numpy()]) if cfg.weight_by_certainty else None
    loss, tokens = train_pairs(model, step.optimizer, cfg.preference_sft(), good, bad, cfg.iteration_steps, cfg.beta,
                               cfg.nll_weight, step.gen, step.progress,
                               f"round {step.r}: DPO on the {len(keep)} most certain of {len(spread)} pairs", weights)
    return Learned(step.optimizer, loss, tokens)


def run(cfg: Config, store, progress) -> dict:
    return self_train(cfg, store, progress, propose=sample_at_temperature, learn=learn_upo)


RECIPE = family(Config, run)
