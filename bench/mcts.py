"""MCTS over wordmath steps: batched expansion (all trees' nodes in one sampler call) vs one node at a time.

    python bench/mcts.py [--problems 64] [--rollouts 4] [--train-steps 400]

A policy is first trained briefly on solved problems (so it proposes real steps), then the same
search runs both ways on the same problems, alternating, best of --repeats. Prints one JSON line:
{"bench": "mcts", "batched_nodes_per_s", "serial_nodes_per_s", "speedup", ...}, where a node is
one expansion (the policy proposing `width` candidate steps for one partial solution).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import emit

from selfevolve.config import build_config
from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.progress import Progress
from selfevolve.recipes.rstar import Config, build_policy
from selfevolve.search.mcts import search
from selfevolve.tasks.wordmath import WordMathSteps, WordMathTask
from selfevolve.train.sft import Examples, make_optimizer, train_on_pools


def expanded(trees) -> int:
    return sum(1 for t in trees for n in t.root.walk() if n.expanded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = build_config(Config, {"rollouts": args.rollouts})
    tok, task = CharTokenizer(), WordMathTask()
    policy = build_policy(cfg, tok)
    seed_set = task.sample(cfg.seed_problems, cfg.seed_difficulty, np.random.default_rng(0), mixed=True)
    with Progress(enabled=False) as progress:
        train_on_pools(policy, make_optimizer(policy, cfg.sft()), cfg.sft(),
                       [Examples.encode(tok, [p.prompt for p in seed_set], [p.answer for p in seed_set])], [1.0],
                       args.train_steps, torch.Generator().manual_seed(0), progress, "train")
    problems = task.sample(args.problems, cfg.train_difficulty, np.random.default_rng(1), mixed=True)
    best = {"batched": float("inf"), "serial": float("inf")}
    nodes = {}
    for _ in range(args.repeats):
        for mode in best:
            t0 = time.perf_counter()
            trees = search(policy, tok, WordMathSteps(), problems, cfg.mcts(), torch.Generator().manual_seed(2),
                           serial=mode == "serial")
            best[mode] = min(best[mode], time.perf_counter() - t0)
            nodes[mode] = expanded(trees)
    rates = {mode: nodes[mode] / best[mode] for mode in best}
    emit(bench="mcts", batched_nodes_per_s=round(rates["batched"], 1), serial_nodes_per_s=round(rates["serial"], 1),
         speedup=round(rates["batched"] / rates["serial"], 2), problems=args.problems, rollouts=args.rollouts,
         width=cfg.width, nodes_batched=nodes["batched"], nodes_serial=nodes["serial"],
         batched_seconds=round(best["batched"], 2), serial_seconds=round(best["serial"], 2))


if __name__ == "__main__":
    main()
