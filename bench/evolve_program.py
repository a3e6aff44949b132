"""Program evolution at an equal number of evaluations: a language model as the operator against random
edits to the same code, and (regression) against our GP on the same points.

    python bench/evolve_program.py [--seeds 0,1,2] [--problems regression,packing,minimize]
                                   [--operators lm,random] [--generations 8] [--children 16]
                                   [--model smollm2 | --base-url URL --model NAME] [--out runs/evolve-program]

Every side gets 1 + generations x children evaluations (GP, population 32: its best training RMSE
at the first generation where it has evaluated as many expressions). Prints one JSON line per run: best score (higher is
better), the score of the starting program, the share of children that ran and scored, evaluations
per second, seconds in the model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import emit
from star_family import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--problems", default="regression,packing,minimize")
    parser.add_argument("--operators", default="lm,random")
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--children", type=int, default=16)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--base-url", default="")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/evolve-program"))
    args = parser.parse_args()
    for seed in (int(s) for s in args.seeds.split(",")):
        for problem in args.problems.split(","):
            for operator in args.operators.split(","):
                s = run("evolve-program", args.out / f"{problem}-{operator}-{seed}", {
                    "seed": seed, "problem": problem, "operator": operator, "generations": args.generations,
                    "children": args.children, "model": args.model, "base_url": args.base_url,
                    "threads": args.threads})
                emit(bench="evolve_program", problem=problem, seed=seed, operator=operator,
                     model=s["model"], start_score=s["start_score"], best_score=s["best_score"],
                     best_metrics=s["best_metrics"], evaluations=s["evaluations"], valid_share=s["valid_share"],
                     evaluations_per_second=s["evaluations_per_second"], lm_seconds=s["lm_seconds"],
                     wall_seconds=s["wall_seconds"])
            if problem == "regression":  # GP's best RMSE once it has spent as many evaluations
                budget = 1 + args.generations * args.children
                g = run("gp", args.out / f"regression-gp-{seed}", {
                    "seed": seed, "problem": "nguyen-2", "mate_choice": "none", "pop_size": 32, "generations": 500})
                at = next((r for r in g["generations_log"] if r["evaluations"] >= budget), g["generations_log"][-1])
                emit(bench="evolve_program", problem=problem, seed=seed, operator="gp (population 32)",
                     best_score=-at["best_rmse"], evaluations=at["evaluations"], generation=at["generation"])


if __name__ == "__main__":
    main()
