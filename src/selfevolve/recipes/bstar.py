"""B-STaR: self-training that watches exploration and exploitation and rebalances them.

Zeng et al. (2024), "B-STaR: Monitoring and Balancing Exploration and Exploitation in
Self-Taught Reasoners", arXiv:2412.17256

The STaR loop (recipes/star.py), plus: before each iteration, sample a probe of the
iteration's problems at every temperature of `temperature_grid`, score each with the balance
score (distinct correct answers per problem, capped at n* = balance_target, times the share of
distinct answers among those selected), and sample the iteration at the best temperature. With
an exact verifier every correct answer is selected, so the reward threshold of the paper has
nothing to choose; the temperature is what moves the balance.

    selfevolve run bstar --set temperature_grid=0.6,0.8,1.0,1.2
"""

from __future__ import annotations

from dataclasses import dataclass

from selfevolve.recipes import star
from selfevolve.recipes.star import exploration_metrics, headline, plots, sample_and_verify  # noqa: F401


@dataclass
class Config(star.Config):
    temperature_grid: tuple[float, ...] = (0.6, 0.8, 1.0, 1.2)
    """Temperatures tried on the probe before each iteration."""
    probe_problems: int = 200
    """Problems of the iteration sampled at every grid temperature to choose one."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.temperature_grid or min(self.temperature_grid) <= 0:
            raise ValueError(f"temperature_grid must be positive temperatures, got {self.temperature_grid}")
        if self.probe_problems < 1:
            raise ValueError(f"probe_problems must be >= 1, got {self.probe_problems}")


def balanced_temperature(model, tok, task, cfg: Config, problems, gen, progress) -> tuple[float, dict]:
    """The grid temperature with the highest balance score on a probe of `problems`."""
    probe = problems[: cfg.probe_problems]
    scores = {}
    with progress.task(f"probe {len(cfg.temperature_grid)} temperatures on {len(probe)} problems", total=None):
        for t in cfg.temperature_grid:
            texts, correct = sample_and_verify(model, tok, task, probe, cfg.samples_per_problem, t, gen)
            scores[str(t)] = exploration_metrics(correct, texts, cfg.balance_target)["balance"]
    best = max(cfg.temperature_grid, key=lambda t: scores[str(t)])
    return best, scores


def run(cfg: Config, store, progress) -> dict:
    return star.run(cfg, store, progress, pick_temperature=balanced_temperature)
