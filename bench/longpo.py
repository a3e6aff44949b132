"""LongPO against its two baselines at the same pairs: DPO with the usual long-input reference, and SFT on
the chosen (short-context) answers; seeds 0-2.

    python bench/longpo.py [--seeds 0,1,2] [--set key=value ...] [--out runs/longpo]

Per seed, round 0 (next-token training on documents, question answering on short contexts only) is
trained once and shared through `init_from`; every objective then answers the same new questions
(same seed, same round-0 model, so the first iteration's pairs are identical). Prints one JSON line
per seed and objective: held-out long-context accuracy (pass1) and short-context accuracy
(short_pass1) after round 0 and after the last iteration, the pairs learnt from, and the change in
short-context accuracy (what LongPO claims to keep).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import emit
from star_family import from_round0

from selfevolve.config import parse_overrides

OBJECTIVES = ("longpo", "dpo", "sft")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="override a setting: key=value")
    parser.add_argument("--out", type=Path, default=Path("runs/longpo"))
    args = parser.parse_args()
    for seed in (int(s) for s in args.seeds.split(",")):
        base = {**parse_overrides(args.set), "seed": seed, "threads": args.threads}
        objectives = {o: {"objective": o} for o in args.objectives.split(",")}
        for objective, s in from_round0("longpo", args.out / f"s{seed}", base, objectives):
            first, last = s["rounds"][0], s["rounds"][-1]
            emit(bench="longpo", seed=seed, objective=objective,
                 pairs=[r.get("pairs") for r in s["rounds"][1:]], samples_drawn=s["samples_drawn"],
                 round0_long=first["pass1"], round0_short=first["short_pass1"],
                 final_long=last["pass1"], final_short=last["short_pass1"],
                 short_change=round(last["short_pass1"] - first["short_pass1"], 4), wall_seconds=s["wall_seconds"])


if __name__ == "__main__":
    main()
