"""Held-out comparison of every way a policy with reward models can answer: greedy, best-of-N by
majority vote or by a reward model, and MCTS guided by the process preference model, each at N."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from selfevolve.judge.reward import value_fn
from selfevolve.models.policy import Policy
from selfevolve.progress import Progress
from selfevolve.search.best_of_n import FinalAnswerTask, compare_strategies
from selfevolve.search.mcts import MCTSConfig, StepFormat, search
from selfevolve.tasks.base import Problem

STRATEGIES = ("greedy", "majority", "orm", "prm", "ppm", "mcts_ppm")


def guided_search(policy: Policy, rm, steps: StepFormat, cfg: MCTSConfig, problems: list[Problem],
                  gen: torch.Generator, progress: Progress):
    """MCTS without gold answers: the reward model values every step and every terminal."""
    with progress.task(f"PPM-guided MCTS, {cfg.rollouts} rollouts x {len(problems)} problems",
                       total=cfg.rollouts) as advance:
        return search(policy.model, policy.tok, steps, problems, cfg, gen, value_fn=value_fn(rm, policy.tok),
                      use_gold=False, on_rollout=advance)


def compare_all(policy: Policy, rms: dict | None, task: FinalAnswerTask, steps: StepFormat, cfg: MCTSConfig,
                problems: list[Problem], ns: list[int], temperature: float, gen: torch.Generator,
                progress: Progress) -> tuple[dict, dict, dict]:
    """Held-out accuracy and tokens, {strategy: {N: value}}, of every strategy (and `pass`, the ceiling
    of the choosers; MCTS with the PPM at N rollouts when there are reward models), and greedy
    accuracy by number of steps."""
    ns = sorted(ns)
    with progress.task(f"evaluate: greedy and {ns[-1]} samples x {len(problems)} problems", 2 * len(problems)) as step:
        acc, tokens, right = compare_strategies(policy, task, problems, ns, temperature, gen, rms or {}, step)
    difficulty = np.array([p.difficulty for p in problems])
    by_steps = {str(d): float(np.mean(np.array(right)[difficulty == d])) for d in sorted(set(difficulty.tolist()))}
    if rms:
        trees = guided_search(policy, rms["ppm"], steps, replace(cfg, rollouts=ns[-1]), problems, gen, progress)
        picked = {n: [t.answers_after[n - 1] for t in trees] for n in ns}
        acc["mcts_ppm"] = {str(n): float(np.mean([task.verify(t.problem, text) for t, (_, text, _)
                                                  in zip(trees, picked[n], strict=True)])) for n in ns}
        tokens["mcts_ppm"] = {str(n): float(np.mean([used for *_, used in picked[n]])) for n in ns}
    return ({s: acc.get(s, {}) for s in (*STRATEGIES, "pass")}, {s: tokens.get(s, {}) for s in STRATEGIES},
            by_steps)
