"""R1-T1 on toy languages: SFT only, GRPO with templates and KL, without templates, without KL; seeds 0-2.

    python bench/r1t1.py [--seeds 0,1,2] [--set key=value ...] [--out runs/r1t1]

Per seed, two round-0 models (SFT on templated translations, and on direct ones) are trained once
and shared through `init_from` (a run already in --out with the same settings is read, or resumed
from its last finished round); every GRPO condition then draws the same completions (iterations x
iteration_steps x prompts_per_step x group_size). Prints one JSON line per seed and condition with
held-out chrF (greedy, the final answer after "=>") on languages seen in training and on unseen
ones, and exact-match accuracy, after round 0 and after the last iteration.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import emit, seed_list
from star_family import finished_or_run

from selfevolve.config import parse_overrides

CONDITIONS = {"sft-only": ("templates", {"iterations": 0}), "grpo": ("templates", {}),
              "grpo-no-templates": ("direct", {"templates": False}), "grpo-no-kl": ("templates", {"kl_coef": 0.0})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="override a setting: key=value")
    parser.add_argument("--out", type=Path, default=Path("runs/r1t1"))
    args = parser.parse_args()
    for seed in seed_list(args.seeds):
        base = {**parse_overrides(args.set), "seed": seed, "threads": args.threads}
        for start in ("templates", "direct"):
            finished_or_run("r1t1", args.out / f"s{seed}" / f"round0-{start}",
                {**base, "iterations": 0, "templates": start == "templates"})
        for name in args.conditions.split(","):
            start, values = CONDITIONS[name]
            s = finished_or_run("r1t1", args.out / f"s{seed}" / name,
                    {**base, **values, "init_from": str(args.out / f"s{seed}" / f"round0-{start}")})
            first, last = s["rounds"][0], s["rounds"][-1]
            emit(bench="r1t1", seed=seed, condition=name, samples_drawn=s["samples_drawn"],
                 round0_chrf_seen=round(first["score_by_group"]["seen"], 4),
                 round0_chrf_unseen=round(first["score_by_group"]["unseen"], 4),
                 final_chrf_seen=round(last["score_by_group"]["seen"], 4),
                 final_chrf_unseen=round(last["score_by_group"]["unseen"], 4),
                 round0_exact=first["pass1"], final_exact=last["pass1"], wall_seconds=s["wall_seconds"])


if __name__ == "__main__":
    main()
