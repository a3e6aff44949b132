"""PSEC on the point-mass plane: every composition method at equal demonstrations, over seeds and demo counts.

    python bench/psec.py [--seeds 0,1,2] [--demos 1,2,4] [--set key=value ...] [--out runs/psec]

One default `selfevolve run psec` per seed and demo count (the chain's skills and every new task
learn from that many expert episodes). Prints one JSON line per run and task with each method's
held-out return, one per run with the chain's forgetting, and one per demo count and task with the
mean over seeds and how many seeds PSEC beat each other method on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import emit, seed_list
from star_family import run

from selfevolve.config import parse_overrides
from selfevolve.recipes.psec import METHODS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--demos", default="1,2,4")
    parser.add_argument("--set", action="append", default=[], help="override a setting: key=value")
    parser.add_argument("--out", type=Path, default=Path("runs/psec"))
    args = parser.parse_args()
    seeds = seed_list(args.seeds)
    for demos in (int(d) for d in args.demos.split(",")):
        by_task: dict[str, list[dict]] = {}
        for seed in seeds:
            s = run("psec", args.out / f"d{demos}-s{seed}", {**parse_overrides(args.set), "seed": seed, "demos": demos})
            for t in s["tasks"]:
                emit(bench="psec", seed=seed, demos=demos, task=t["task"], base=round(t["base"], 4),
                     expert=round(t["expert"], 4), **{m: round(v, 4) for m, v in t["returns"].items()})
                by_task.setdefault(t["task"], []).append(t["returns"])
            emit(bench="psec", seed=seed, demos=demos, forgetting_library=s["forgetting"]["library"],
                 forgetting_fine_tuned={k: round(v, 4) for k, v in s["forgetting"]["fine_tuned"].items()},
                 base_unchanged=s["base_unchanged"], wall_seconds=round(s["wall_seconds"], 1))
        for task, runs in by_task.items():
            emit(bench="psec", demos=demos, task=task, seeds=len(runs),
                 mean={m: round(float(np.mean([r[m] for r in runs])), 4) for m in METHODS},
                 psec_wins={m: sum(r["psec"] > r[m] for r in runs) for m in METHODS if m != "psec"})


if __name__ == "__main__":
    main()
