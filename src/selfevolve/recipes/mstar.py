"""M-STaR: continuous self-training, reward-model re-ranking, the temperature chosen by Reward-Pass@2.

Continuous training keeps one optimizer across iterations; a reward model re-ranks the correct
answers; the sampling temperature is re-chosen every iteration by Reward-Pass@2.

Liu et al. (2024), "Diving into Self-Evolving Training for Multimodal Reasoning" (M-STaR),
arXiv:2412.17451

    round 0: supervised fine-tuning on a small labelled seed set (or init_from)
    iteration i: train a reward model on the policy's verified answers to the labelled problems
             (judge/outcome.py; an outcome model: Countdown answers have no steps to score);
             with auto_temperature, sample the same `probe_problems` at every grid temperature and
             keep the one with the best Reward-Pass@2 (share of problems where one of the two answers
             the reward model ranks highest is correct), then the rest of the problems at it;
             keep each problem's `rerank_top` correct answers that the reward model scores highest;
             fine-tune as STaR, continuing (the paper's continuous self-evolving) or with restart

The rungs of the paper's ladder are settings: `selfevolve run star --set restart=true` (iterative),
`star` (continuous), `mstar --set auto_temperature=false` (+ re-ranking), `mstar` (+ Reward-Pass@2).
The reward model's own samples count in `samples`, so rungs compare at equal samples when
problems_per_iteration leaves room for them (bench/mstar_ladder.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from selfevolve.judge.outcome import train_outcome_judge
from selfevolve.search.answers import Answers
from selfevolve.selftrain import (
    ProbeConfig,
    Proposal,
    SelfTrainConfig,
    Step,
    family,
    finetune_on_kept,
    probe_temperatures,
    sample_at_temperature,
    self_train,
)


@dataclass
class Config(ProbeConfig, SelfTrainConfig):
    rerank_top: int = 2
    """Correct answers kept per problem: the ones the reward model scores highest (0: every correct one)."""
    auto_temperature: bool = True
    """Choose each iteration's temperature from temperature_grid by Reward-Pass@2 on a probe."""
    orm_samples: int = 2

    def probes(self) -> bool:
        return self.auto_temperature

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.judge != "verifier":
            raise ValueError("mstar keeps verified answers and ranks them by its own reward model: judge=verifier")
        if self.rerank_top < 0:
            raise ValueError(f"rerank_top must be >= 0, got {self.rerank_top}")


def reward_pass_at_2(answers: Answers, ranker: np.ndarray) -> float:
    """Share of problems where one of the two answers the reward model scores highest is correct."""
    top2 = np.argsort(-ranker, axis=1, kind="stable")[:, :2]
    return float(np.take_along_axis(answers.correct, top2, axis=1).any(axis=1).mean())


def ranked_sampling(step: Step, problems) -> Proposal:
    """Answers scored verdict + ORM/2 (correct ones in [1, 1.5], wrong ones in [0, 0.5]), so threshold 1
    accepts the correct answers and keep_top ranks them by the reward model."""
    cfg = step.cfg
    orm, info, _ = train_outcome_judge(step.policy, step.task, step.seed_set, cfg.orm_samples, cfg.temperature,
                                    cfg.orm_steps, cfg.sft(), step.gen, step.progress, f"round {step.r}")

    def judge(ps, texts, correct):
        return correct + orm(ps, texts, correct) / 2

    step = dataclasses.replace(step, judge=judge)
    if cfg.auto_temperature:
        answers, temperature, _, scores = probe_temperatures(
            step, problems, cfg.temperature_grid, cfg.probe_problems,
            lambda probe: {"reward_pass@2": reward_pass_at_2(probe, probe.reward - probe.correct)})
    else:
        answers, temperature, scores = sample_at_temperature(step, problems).answers, cfg.temperature, {}
    return Proposal(answers, temperature, 1.0, {**scores, **info}, cfg.rerank_top)


def run(cfg: Config, store, progress) -> dict:
    return self_train(cfg, store, progress, propose=ranked_sampling, learn=finetune_on_kept)


RECIPE = family(Config, run)
