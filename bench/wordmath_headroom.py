"""The room a reward model has over majority voting, measured before any reward-model tuning: the round-0
policy's pass@N (some one of N samples right) against its majority@N, on a dev split, for plain and
hard wordmath (issue: rStar-Math's PPM above majority vote needs that room to exist).

    python bench/wordmath_headroom.py [--seeds 0,1,2] [--tasks wordmath,wordmath-hard] [--problems 200]
                                      [--difficulty 5] [--out runs/wordmath-headroom]

Each run is `selfevolve run rstar --set task=T --set rounds=0 --set eval_split=dev` (round 0: the
policy fine-tuned on the solved seed problems, then scored). Prints one JSON line per run: greedy,
majority@N and pass@N for N = 1, 4, 16, and the room pass@16 - majority@16.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import emit, seed_list
from star_family import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tasks", default="wordmath,wordmath-hard")
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--difficulty", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/wordmath-headroom"))
    args = parser.parse_args()
    for seed in seed_list(args.seeds):
        for task in args.tasks.split(","):
            s = run("rstar", args.out / f"{task}-{seed}", {
                "seed": seed, "task": task, "rounds": 0, "eval_split": "dev", "eval_problems": args.problems,
                "eval_difficulty": args.difficulty, "eval_n": "1,4,16", "threads": args.threads})
            acc = s["rounds"][0]["accuracy"]
            emit(bench="wordmath_headroom", task=task, seed=seed, problems=args.problems,
                 greedy=acc["greedy"]["1"], majority=acc["majority"], passed=acc["pass"],
                 room16=acc["pass"]["16"] - acc["majority"]["16"], wall_seconds=s["wall_seconds"])


if __name__ == "__main__":
    main()
