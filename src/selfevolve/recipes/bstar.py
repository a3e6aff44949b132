"""B-STaR: self-training that watches exploration and exploitation and rebalances them.

Zeng et al. (2024), "B-STaR: Monitoring and Balancing Exploration and Exploitation in
Self-Taught Reasoners", arXiv:2412.17256

    round 0: supervised fine-tuning on a small labelled seed set
    iteration i: sample the same `probe_problems` of the iteration's problems at every temperature
             of `temperature_grid` (one subset for all, as in the paper, so the temperatures are
             compared on equal problems); score every (temperature, reward threshold) pair by the
             balance score: distinct correct selected answers per problem, capped at
             n* = balance_target, times their share of the distinct selected answers
             sample the rest of the iteration's problems at the best temperature, keep and
             fine-tune as STaR (the probe's answers are training data too, and the problems it
             displaces are not drawn, so bstar draws exactly as many samples as star)

With the exact verifier every threshold selects the same answers. With judge=orm, `threshold_grid`
is searched and "correct" in the balance score is the reward model's own belief (the sum of its
P(correct) over the selected answers): a run knows no gold label. `balance_from=oracle` reads the
gold verdicts instead, an upper bound for analysis, never a fair comparison.

    selfevolve run bstar --set temperature_grid=0.6,0.8,1.0,1.2
"""

from __future__ import annotations

from dataclasses import dataclass

from selfevolve.metrics import exploration_metrics, judged_balance
from selfevolve.search.answers import Answers
from selfevolve.selftrain import (
    ProbeConfig,
    Proposal,
    SelfTrainConfig,
    Step,
    family,
    finetune_on_kept,
    probe_temperatures,
    self_train,
)

BALANCE_FROM = ("judge", "oracle")


@dataclass
class Config(ProbeConfig, SelfTrainConfig):
    threshold_grid: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    """Reward thresholds tried on the probe (judge=orm only; the verifier uses reward_threshold)."""
    balance_from: str = "judge"
    """What counts as correct in the balance score: `judge` (the verifier, or with judge=orm the reward
    model's P(correct)) or `oracle` (gold verdicts even with judge=orm: an upper bound, not a method)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.threshold_grid or not all(0 < t <= 1 for t in self.threshold_grid):
            raise ValueError(f"threshold_grid must be thresholds in (0, 1], got {self.threshold_grid}")
        if self.balance_from not in BALANCE_FROM:
            raise ValueError(f"balance_from must be one of {', '.join(BALANCE_FROM)}, got {self.balance_from!r}")


def balance(cfg: Config, answers: Answers, threshold: float) -> float:
    if cfg.judge == "orm" and cfg.balance_from == "judge":
        return judged_balance(answers.texts, answers.reward, threshold, cfg.balance_target)
    return exploration_metrics(answers.correct, answers.texts, cfg.balance_target, answers.reward, threshold)["balance"]


def balanced_sampling(step: Step, problems) -> Proposal:
    """Probe every grid temperature on the first `probe_problems` of `problems`, pick the (temperature,
    threshold) with the highest balance score, sample the problems after the probe's share of the
    budget at that temperature."""
    cfg = step.cfg
    thresholds = cfg.threshold_grid if cfg.judge == "orm" else (cfg.reward_threshold,)
    answers, best_t, best_th, scores = probe_temperatures(
        step, problems, cfg.temperature_grid, cfg.probe_problems,
        lambda probe: {str(th): balance(cfg, probe, th) for th in thresholds})
    return Proposal(answers, best_t, float(best_th), scores)


def run(cfg: Config, store, progress) -> dict:
    return self_train(cfg, store, progress, propose=balanced_sampling, learn=finetune_on_kept)


RECIPE = family(Config, run)
