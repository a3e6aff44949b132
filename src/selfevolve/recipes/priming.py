"""Cognitive-behaviour priming, then on-policy RL: which round-0 answers let RL go furthest.

Gandhi et al. (2025), "Cognitive Behaviors that Enable Self-Improving Reasoners, or, Four Habits of
Highly Effective STaRs", arXiv:2503.01307

    round 0: supervised fine-tuning on `num_labelled` Countdown problems whose answers are written in
             one priming style (tasks/countdown_traces.py): answer only, the optimal path only, a
             person-like search that verifies, backtracks and sets subgoals (ending right, or with a
             slip to a wrong answer), or length-matched filler
    iteration i: GRPO exactly as `selfevolve run grpo` (the same budget for every style), rewarded by
             the final answer after "#"; every step also counts the behaviours in its completions

    selfevolve run priming --set priming=search-wrong
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfevolve.on_policy import OnPolicyConfig, learn_on_policy, rl_plots
from selfevolve.selftrain import Learned, Proposal, Step, family, self_train
from selfevolve.tasks.base import Problem
from selfevolve.tasks.countdown_traces import BEHAVIOURS, STYLES, TracedCountdown, count_behaviours


@dataclass
class Config(OnPolicyConfig):
    priming: str = "search"
    """Round-0 answer style: answer, optimal, search, search-wrong or filler."""

    def __post_init__(self) -> None:
        if self.priming not in STYLES:
            raise ValueError(f"priming must be one of {', '.join(STYLES)}, got {self.priming!r}")
        if self.task != "countdown":
            raise ValueError(f"priming traces are written for countdown, got task={self.task!r}")
        super().__post_init__()

    def make_task(self) -> TracedCountdown:
        return TracedCountdown(self.priming)


def learn_primed(step: Step, problems: list[Problem]) -> tuple[Proposal, Learned]:
    """GRPO's iteration, with each step's mean count of every behaviour per completion."""
    proposal, learned = learn_on_policy(step, problems)
    per, texts = step.cfg.prompts_per_step, proposal.answers.texts
    for s, stats in enumerate(learned.info["rl_steps"]):
        counts = [count_behaviours(t) for row in texts[s * per:(s + 1) * per] for t in row]
        stats.update({name: float(np.mean([c[name] for c in counts])) for name in BEHAVIOURS})
    return proposal, learned


def behaviour_plot(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_lines

    steps = [s for r in summary["rounds"][1:] for s in r["rl_steps"]]
    if not steps:
        return []
    return [plot_lines(list(range(1, len(steps) + 1)), {name: [s[name] for s in steps] for name in BEHAVIOURS},
                       "behaviours per completion over RL steps", "RL step", "count per completion",
                       plot_dir / "behaviours.png")]


def run(cfg: Config, store, progress) -> dict:
    return self_train(cfg, store, progress, act=learn_primed)


RECIPE = family(Config, run, lambda summary, plot_dir: rl_plots(summary, plot_dir)
                + behaviour_plot(summary, plot_dir))
