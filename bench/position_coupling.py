"""Position coupling in rstar's round-0 policy: greedy accuracy by number of solution steps, for each
`pos_encoding`, trained on solved seed problems of 1-3 steps (does the policy write more lines than its
seed set has?).

    python bench/position_coupling.py [--seeds 0] [--encodings rope,abacus,abacus-both,abacus-alibi,abacus-all]
                                      [--sets 2000x800,300x400] [--steps 6] [--problems 100] [--threads 2]
                                      [--split test|dev] [--out runs/position-coupling]

Each policy is `selfevolve run rstar --set rounds=0 --set pos_encoding=E --set seed_problems=P --set
round0_steps=S` (a finished run in --out with the same settings is read, not trained again); then
--problems held-out problems of the --split (test, or dev for choosing an encoding) of exactly k steps
for k = 1..--steps (none a seed problem), answered greedily. Prints one JSON line per seed, seed set and
encoding: accuracy by k.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import emit, seed_list
from star_family import finished_or_run

from selfevolve.config import build_config
from selfevolve.recipes.rstar import Config, evaluate_file
from selfevolve.store import RunStore
from selfevolve.tasks import get_task
from selfevolve.tasks.base import held_out_split


def accuracy_by_steps(out: Path, values: dict, max_steps: int, problems: int, split: str) -> list[float]:
    """The run's policy, greedy, on `problems` held-out problems of the split of each length 1..max_steps."""
    cfg = build_config(Config, values)
    task = get_task(cfg.task)
    seen = {p.prompt for p in cfg.seed_set(task)}
    accuracy = []
    for k in range(1, max_steps + 1):
        held_out, _ = held_out_split(task, problems, k, cfg.seed, split, seen, "position-coupling", k)
        result = evaluate_file(RunStore.open(out), cfg, held_out, "greedy", 1)
        accuracy.append(result["metrics"]["greedy at N=1"])
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--encodings", default="rope,abacus,abacus-both,abacus-alibi,abacus-all")
    parser.add_argument("--sets", default="2000x800,300x400", help="seed problems x round-0 steps, comma-separated")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--split", choices=("test", "dev"), default="test")
    parser.add_argument("--out", type=Path, default=Path("runs/position-coupling"))
    args = parser.parse_args()
    for seed in seed_list(args.seeds):
        for seed_set in args.sets.split(","):
            seed_problems, round0_steps = map(int, seed_set.split("x"))
            for encoding in args.encodings.split(","):
                values = {"seed": seed, "rounds": 0, "pos_encoding": encoding, "seed_problems": seed_problems,
                          "round0_steps": round0_steps, "eval_n": "1", "threads": args.threads}
                out = args.out / f"{encoding}-{seed_set}-s{seed}"
                summary = finished_or_run("rstar", out, values)
                emit(bench="position_coupling", seed=seed, seed_problems=seed_problems, round0_steps=round0_steps,
                     pos_encoding=encoding, split=args.split, problems_per_length=args.problems,
                     accuracy_by_steps=accuracy_by_steps(out, values, args.steps, args.problems, args.split),
                     train_seconds=round(summary["wall_seconds"], 1))


if __name__ == "__main__":
    main()
