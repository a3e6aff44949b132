"""B-STaR: self-training that watches exploration and exploitation and rebalances them.

Zeng et al. (2024), "B-STaR: Monitoring and Balancing Exploration and Exploitation in
Self-Taught Reasoners", arXiv:2412.17256

The STaR loop (recipes/star.py), plus: each iteration first samples the same `probe_problems` of
its problems at every temperature of `temperature_grid` (one subset for all, as in the paper, so
the temperatures are compared on equal problems), scores every (temperature, reward threshold)
pair with the balance score (distinct correct selected answers per problem, capped at
n* = balance_target, times their share of the distinct selected answers), and samples the rest of
its problems at the best temperature. The probe's answers are kept as training data too, and the
problems it displaces are not drawn, so bstar draws exactly as many samples as star. The
iteration's monitors describe the samples at the chosen temperature. With the exact verifier every
threshold selects the same answers; with judge=orm, `threshold_grid` is searched.

    selfevolve run bstar --set temperature_grid=0.6,0.8,1.0,1.2
"""

from __future__ import annotations

from dataclasses import dataclass

from selfevolve.recipes import star
from selfevolve.recipes.star import Answers, exploration_metrics, sample_and_judge
from selfevolve.recipes.star import evaluate_file as evaluate_file
from selfevolve.recipes.star import headline as headline
from selfevolve.recipes.star import plots as plots


@dataclass
class Config(star.Config):
    temperature_grid: tuple[float, ...] = (0.6, 0.8, 1.0, 1.2)
    """Temperatures tried on the probe before each iteration."""
    threshold_grid: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    """Reward thresholds tried on the probe (judge=orm only; the verifier uses reward_threshold)."""
    probe_problems: int = 200
    """Problems of the iteration sampled at each grid temperature to choose one."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.temperature_grid or min(self.temperature_grid) <= 0:
            raise ValueError(f"temperature_grid must be positive temperatures, got {self.temperature_grid}")
        if not self.threshold_grid or not all(0 < t <= 1 for t in self.threshold_grid):
            raise ValueError(f"threshold_grid must be thresholds in (0, 1], got {self.threshold_grid}")
        probed = self.probe_problems * len(self.temperature_grid)
        if self.probe_problems < 1 or probed >= self.problems_per_iteration:
            raise ValueError(f"probe_problems x temperatures ({probed}) must be >= 1 and below "
                             f"problems_per_iteration ({self.problems_per_iteration})")


def balanced_sampling(model, tok, task, cfg: Config, problems, gen, progress, judge):
    """Probe every grid temperature on the first `probe_problems` of `problems`, pick the (temperature,
    threshold) with the highest balance score, sample the problems after the probe's share of the
    budget at that temperature."""
    n = cfg.probe_problems
    thresholds = cfg.threshold_grid if cfg.judge == "orm" else (cfg.reward_threshold,)
    probes, scores = [], {}
    with progress.task(f"probe {len(cfg.temperature_grid)} temperatures on the same {n} problems", total=None):
        for t in cfg.temperature_grid:
            probes.append(sample_and_judge(model, tok, task, problems[:n], cfg.samples_per_problem, t, gen, judge))
            scores[str(t)] = {str(th): exploration_metrics(probes[-1].correct, probes[-1].texts, cfg.balance_target,
                                                           probes[-1].reward, th)["balance"] for th in thresholds}
    best_t, best_th = max(((t, th) for t in cfg.temperature_grid for th in thresholds),
                          key=lambda pair: scores[str(pair[0])][str(pair[1])])
    rest = problems[len(probes) * n:]
    with progress.task(f"sample {cfg.samples_per_problem} answers x {len(rest)} at T={best_t}", total=None):
        probes.append(sample_and_judge(model, tok, task, rest, cfg.samples_per_problem, best_t, gen, judge))
    return Answers.concat(probes), best_t, best_th, scores


def run(cfg: Config, store, progress) -> dict:
    return star.run(cfg, store, progress, propose=balanced_sampling)
