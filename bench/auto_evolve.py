"""Auto-Evolve against chain of thought and a fixed module set: the same model, problems and settings.

    python bench/auto_evolve.py [--seeds 0,1,2] [--task wordmath] [--problems 40] [--refinements 2]
                                [--model smollm2 | --base-url URL --model NAME] [--out runs/auto-evolve]

Prints one JSON line per seed: held-out accuracy of chain of thought, of plans from the fixed modules,
and of Auto-Evolve's plans from the model's own modules after 0 .. refinements refinements; the share
of replies that stated a number; the modules the model wrote; seconds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import emit, seed_list
from star_family import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--task", default="wordmath")
    parser.add_argument("--difficulty", type=int, default=2)
    parser.add_argument("--problems", type=int, default=40)
    parser.add_argument("--refinements", type=int, default=2)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--base-url", default="")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/auto-evolve"))
    args = parser.parse_args()
    for seed in seed_list(args.seeds):
        s = run("auto-evolve", args.out / f"{args.task}-{seed}", {
            "seed": seed, "task": args.task, "difficulty": args.difficulty, "problems": args.problems,
            "refinements": args.refinements, "model": args.model, "base_url": args.base_url, "threads": args.threads})
        emit(bench="auto_evolve", seed=seed, task=args.task, difficulty=args.difficulty, problems=s["problems"],
             model=args.model, cot=s["accuracy"]["cot"], fixed_modules=s["accuracy"]["fixed_modules"],
             auto_evolve_by_refinement=s["auto_evolve_by_refinement"], answered=s["answered"],
             modules=s["modules"], wall_seconds=round(s["wall_seconds"], 1))


if __name__ == "__main__":
    main()
