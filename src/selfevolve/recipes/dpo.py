"""Iterative DPO on the model's own (correct, incorrect) answers, with an NLL term (iterative RPO).

Pang et al. (2024), "Iterative Reasoning Preference Optimization", arXiv:2404.19733

    round 0: supervised fine-tuning on a small labelled seed set
    iteration i: sample answers to new problems and judge them (as STaR); every problem with an
             answer the judge accepts and one it rejects gives a pair (with the exact verifier: its
             first correct and first incorrect answer; with judge=orm: the highest- and lowest-scored)
             `iteration_steps` AdamW steps on the DPO loss of the pairs plus `nll_weight` x the
             per-token NLL of the chosen answer, against a reference that is a frozen copy of the
             model at the start of the iteration (refreshed every iteration)

    selfevolve run dpo --set beta=0.5 --set nll_weight=1.0
"""

from __future__ import annotations

from dataclasses import dataclass

from selfevolve.selftrain import Learned, SelfTrainConfig, Step, family, sample_at_temperature, self_train
from selfevolve.train.dpo import PreferenceConfig, pair_examples, train_pairs


@dataclass
class Config(PreferenceConfig, SelfTrainConfig):
    pass


def learn_dpo(step: Step, samples: dict[str, list]) -> Learned:
    """DPO + NLL on this iteration's (accepted, rejected) pairs, encoded with the policy's tokenizer."""
    cfg = step.cfg
    good, bad = pair_examples(step.policy.tok, samples)
    if not len(good):
        step.progress.log(f"[yellow]round {step.r}: no (accepted, rejected) pair to learn from")
        return Learned(step.optimizer, float("nan"), 0)
    loss, tokens = train_pairs(step.policy.model, step.optimizer, cfg.preference_sft(), good, bad, cfg.iteration_steps,
                               cfg.beta, cfg.nll_weight, step.gen, step.progress,
                               f"round {step.r}: DPO on {len(good)} pairs")
    return Learned(step.optimizer, loss, tokens)


def run(cfg: Config, store, progress) -> dict:
    return self_train(cfg, store, progress, propose=sample_at_temperature, learn=learn_dpo)


RECIPE = family(Config, run)
