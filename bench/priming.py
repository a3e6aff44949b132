"""Cognitive-behaviour priming: five round-0 answer styles, then the same GRPO budget, seeds 0-2.

    python bench/priming.py [--seeds 0,1,2] [--styles answer,optimal,search,search-wrong,filler]
                            [--set key=value ...] [--out runs/priming]

Each style primes a fresh model on the same labelled Countdown problems for the same number of
steps (recipes/priming.py's defaults), then RL runs with the same prompts, group size and steps.
Prints one JSON line per seed and style: held-out pass@1 after priming and after each iteration,
and the behaviours per completion (verification, backtracking, subgoal) over the first and the
last 10 RL steps, as counted by tasks/countdown_traces.count_behaviours.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import emit, seed_list
from star_family import run

from selfevolve.config import parse_overrides
from selfevolve.tasks.countdown_traces import BEHAVIOURS, STYLES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--styles", default=",".join(STYLES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="override a setting: key=value")
    parser.add_argument("--out", type=Path, default=Path("runs/priming"))
    args = parser.parse_args()
    for seed in seed_list(args.seeds):
        for style in args.styles.split(","):
            values = {**parse_overrides(args.set), "priming": style, "seed": seed, "threads": args.threads}
            s = run("priming", args.out / f"s{seed}" / style, values)
            steps = [x for r in s["rounds"][1:] for x in r["rl_steps"]]
            emit(bench="priming", seed=seed, style=style, round0_pass1=s["round0_pass1"],
                 pass1_by_iteration=[r["pass1"] for r in s["rounds"]], final_pass1=s["final_pass1"],
                 gain=round(s["final_pass1"] - s["round0_pass1"], 4), samples_drawn=s["samples_drawn"],
                 **{f"{name}_first": round(float(np.mean([x[name] for x in steps[:10]])), 3) for name in BEHAVIOURS},
                 **{f"{name}_last": round(float(np.mean([x[name] for x in steps[-10:]])), 3) for name in BEHAVIOURS},
                 length_last=round(float(np.mean([x["completion_length"] for x in steps[-10:]])), 1),
                 wall_seconds=s["wall_seconds"])


if __name__ == "__main__":
    main()
