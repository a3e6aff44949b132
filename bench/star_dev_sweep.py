"""Choose defaults on a dev split: dpo's beta and learning rate, upo's keep_fraction, grpo's learning rate
and reward scaling.

    python bench/star_dev_sweep.py [--seed 0] [--out runs/star-dev-sweep] [--recipes dpo,upo,grpo]
                                   [--set dpo.beta=0.3,1,3 ...]  (narrow a grid)

The setting is bench/star_family.py's (Countdown, one shared round-0 model, four iterations); every
run evaluates on `eval_split=dev`, problems that are neither test, labelled nor self-training ones,
so the test split stays untouched by the choice. dpo's grid is beta x dpo_learning_rate; upo's is
keep_fraction at dpo's chosen pair; grpo's is rl_learning_rate x scale_rewards (GRPO or Dr. GRPO).
Prints one JSON line per run (dev final and best pass@1) and one per choice (the best final dev
pass@1; the earlier value on a tie). Then measure the chosen defaults on the test split with
bench/star_family.py and bench/rl_vs_star.py.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from common import emit
from star_family import SETTING, run

GRIDS = {"dpo": {"beta": [0.3, 1.0, 3.0], "dpo_learning_rate": [3e-5, 1e-4, 3e-4]},
         "upo": {"keep_fraction": [0.5, 0.7, 0.9, 1.0]},
         "grpo": {"rl_learning_rate": [1e-4, 3e-4], "scale_rewards": [True, False]}}


def sweep(recipe: str, grid: dict, fixed: dict, common: dict, out: Path) -> dict:
    """Run every point of the grid on dev; returns the point with the best final dev pass@1."""
    best, best_score = None, -1.0
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values, strict=True))
        name = "-".join(f"{k}={v}" for k, v in point.items())
        s = run(recipe, out / f"{recipe}-{name}", {**common, **fixed, **point})
        emit(bench="star_dev_sweep", recipe=recipe, **fixed, **point, dev_round0_pass1=s["round0_pass1"],
             dev_final_pass1=s["final_pass1"], dev_best_pass1=s["best_pass1"], wall_seconds=s["wall_seconds"])
        if s["final_pass1"] > best_score:
            best, best_score = point, s["final_pass1"]
    emit(bench="star_dev_sweep", recipe=recipe, chosen=best, dev_final_pass1=best_score)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/star-dev-sweep"))
    parser.add_argument("--recipes", default="dpo,upo,grpo")
    parser.add_argument("--set", action="append", default=[], help="narrow a grid: recipe.key=v1,v2 (repeatable)")
    args = parser.parse_args()
    recipes = args.recipes.split(",")
    grids = {r: dict(g) for r, g in GRIDS.items()}
    for item in args.set:
        key, _, values = item.partition("=")
        recipe, _, name = key.partition(".")
        grids[recipe][name] = [type(grids[recipe][name][0])(v) if not isinstance(grids[recipe][name][0], bool)
                               else v == "true" for v in values.split(",")]
    t0 = time.time()
    base = {**SETTING, "seed": args.seed, "threads": args.threads}
    run("star", args.out / "round0", {**base, "iterations": 0})
    common = {**base, "iterations": args.iterations, "init_from": str(args.out / "round0"), "eval_split": "dev"}
    if "dpo" in recipes or "upo" in recipes:
        dpo = sweep("dpo", grids["dpo"], {}, common, args.out)
        if "upo" in recipes:
            sweep("upo", grids["upo"], dpo, common, args.out)
    if "grpo" in recipes:
        sweep("grpo", grids["grpo"], {"iteration_steps": 100, "problems_per_iteration": 1600}, common, args.out)
    emit(bench="star_dev_sweep", stage="total", wall_seconds=round(time.time() - t0, 1))


if __name__ == "__main__":
    main()
