"""SELF: self-evolution rounds with the model's own filter, against the three ablations (no meta-skill
stage, the verifier as filter: an upper bound, no filter); seeds 0-2.

    python bench/self_refine.py [--seeds 0,1,2] [--set key=value ...] [--out runs/self]

Per seed, the filters share one round-0 model (meta-skills learnt, `init_from`); the ablation without
meta-skills trains its own round 0 (answers only). Prints one JSON line per seed and condition with
held-out pass@1 without and with refinement at inference (pass1_refined) and how often the model's
verdict on its own greedy answer is right (judge_accuracy), per round.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import emit, seed_list
from star_family import from_round0, run

from selfevolve.config import parse_overrides

FILTERS = ("self", "oracle", "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="override a setting: key=value")
    parser.add_argument("--out", type=Path, default=Path("runs/self"))
    args = parser.parse_args()
    for seed in seed_list(args.seeds):
        base = {**parse_overrides(args.set), "seed": seed, "threads": args.threads}
        out = args.out / f"s{seed}"
        runs = [*from_round0("self", out, base, {f: {"filter": f} for f in FILTERS}),
                ("no-meta-skills", run("self", out / "no-meta-skills", {**base, "meta_skills": False}))]
        for condition, s in runs:
            emit(bench="self", seed=seed, condition=condition, samples_drawn=s["samples_drawn"],
                 pass1=[r["pass1"] for r in s["rounds"]], pass1_refined=[r["pass1_refined"] for r in s["rounds"]],
                 judge_accuracy=[round(r["judge_accuracy"], 4) for r in s["rounds"]],
                 kept=[r["kept"] for r in s["rounds"]], wall_seconds=s["wall_seconds"])


if __name__ == "__main__":
    main()
