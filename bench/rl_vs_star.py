"""On-policy RL (GRPO) against STaR and iterative DPO at equal sampled completions, from one round-0 model.

    python bench/rl_vs_star.py [--seeds 0,1,2] [--iterations 4] [--out runs/rl-vs-star]

Per seed: bench/star_family.py's Countdown setting and round-0 model (trained once, `init_from`);
then each recipe samples 12,800 completions per iteration: star and dpo 3,200 new problems x 4
answers, grpo 100 steps x 16 prompts x 8 completions (each prompt a new problem). Held-out pass@1
(500 unseen problems, greedy) after every iteration. Prints one JSON line per seed and recipe.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import emit, seed_list
from star_family import SETTING, run

PER_ITERATION = {"star": {"problems_per_iteration": 3200, "samples_per_problem": 4},
                 "dpo": {"problems_per_iteration": 3200, "samples_per_problem": 4},
                 "grpo": {"problems_per_iteration": 1600, "iteration_steps": 100, "prompts_per_step": 16,
                          "group_size": 8}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--recipes", default="star,dpo,grpo")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/rl-vs-star"))
    args = parser.parse_args()
    for seed in seed_list(args.seeds):
        base = {**SETTING, "seed": seed, "threads": args.threads}
        t0 = time.time()
        round0 = run("star", args.out / f"s{seed}" / "round0", {**base, "iterations": 0})
        emit(bench="rl_vs_star", seed=seed, stage="round0", pass1=round0["final_pass1"],
             wall_seconds=round(time.time() - t0, 1))
        for recipe in args.recipes.split(","):
            values = {**base, **PER_ITERATION[recipe], "iterations": args.iterations,
                      "init_from": str(args.out / f"s{seed}" / "round0")}
            s = run(recipe, args.out / f"s{seed}" / recipe, values)
            emit(bench="rl_vs_star", seed=seed, recipe=recipe, samples_drawn=s["samples_drawn"],
                 round0_pass1=s["round0_pass1"], pass1_by_iteration=[r["pass1"] for r in s["rounds"]],
                 final_pass1=s["final_pass1"], final_passk=s["rounds"][-1]["passk"], wall_seconds=s["wall_seconds"])


if __name__ == "__main__":
    main()
