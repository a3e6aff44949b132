"""The M-STaR ladder on Countdown: each rung against the last, at equal samples, from one round-0 model.

    python bench/mstar_ladder.py [--seeds 0,1,2] [--iterations 4] [--out runs/mstar-ladder]

Rungs (Liu et al. 2024): iterative (ReST-EM: `star --set restart=true`), continuous (`star`), +
re-ranking (`mstar --set auto_temperature=false`: each problem's 2 correct answers the reward model
scores highest), + Reward-Pass@2 (`mstar`: the temperature chosen each iteration). Every rung draws
12,800 samples an iteration: star 3,200 problems x 4; mstar 2,450 x 4 plus the reward model's 2
answers to each of the 1,500 labelled problems. Round 0 is bench/star_family.py's, trained once per
seed. Prints one JSON line per seed and rung.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import emit, seed_list
from star_family import SETTING, run

RUNGS = {"iterative": ("star", {"restart": True, "problems_per_iteration": 3200}),
         "continuous": ("star", {"problems_per_iteration": 3200}),
         "rerank": ("mstar", {"auto_temperature": False, "problems_per_iteration": 2450, "orm_samples": 2}),
         "reward-pass@2": ("mstar", {"problems_per_iteration": 2450, "orm_samples": 2})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--rungs", default=",".join(RUNGS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/mstar-ladder"))
    args = parser.parse_args()
    for seed in seed_list(args.seeds):
        base = {**SETTING, "seed": seed, "threads": args.threads}
        t0 = time.time()
        round0 = run("star", args.out / f"s{seed}" / "round0", {**base, "iterations": 0})
        emit(bench="mstar_ladder", seed=seed, stage="round0", pass1=round0["final_pass1"],
             wall_seconds=round(time.time() - t0, 1))
        for rung in args.rungs.split(","):
            recipe, values = RUNGS[rung]
            s = run(recipe, args.out / f"s{seed}" / rung, {**base, **values, "iterations": args.iterations,
                                                           "init_from": str(args.out / f"s{seed}" / "round0")})
            later = s["rounds"][1:]
            orm = sum(r.get("probe", {}).get("orm_samples", 0) for r in later)
            emit(bench="mstar_ladder", seed=seed, rung=rung, samples_drawn=s["samples_drawn"] + orm,
                 round0_pass1=s["round0_pass1"], pass1_by_iteration=[r["pass1"] for r in s["rounds"]],
                 final_pass1=s["final_pass1"], temperatures=[r["temperature"] for r in later],
                 wall_seconds=s["wall_seconds"])


if __name__ == "__main__":
    main()
