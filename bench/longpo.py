"""LongPO against its two baselines at the same pairs: DPO with the usual long-input reference, and SFT on
the chosen (short-context) answers; seeds 0-2.

    python bench/longpo.py [--seeds 0,1,2] [--objectives longpo,dpo,sft] [--set key=value ...] [--out runs/longpo]

`--objectives star` adds plain self-training (STaR on every chosen answer, labelled examples mixed in,
at the round-0 learning rate): not a baseline at the same pairs, but what the method competes with.

Per seed, round 0 (next-token training on documents, question answering on short contexts only) is
trained once and shared through `init_from`; every objective then answers the same new questions
(same seed, same round-0 model, so the first iteration's pairs are identical). Prints one JSON line
per seed and objective: held-out long-context accuracy (pass1) and short-context accuracy
(short_pass1) after round 0 and after the last iteration, the pairs learnt from, and the change in
short-context accuracy (what LongPO claims to keep).
"""

from __future__ import annotations

from common import emit
from star_family import objective_runs

OBJECTIVES = ("longpo", "dpo", "sft")


def main() -> None:
    for seed, objective, s in objective_runs("longpo", __doc__, OBJECTIVES):
        first, last = s["rounds"][0], s["rounds"][-1]
        emit(bench="longpo", seed=seed, objective=objective,
             pairs=[r.get("pairs") for r in s["rounds"][1:]], samples_drawn=s["samples_drawn"],
             round0_long=first["pass1"], round0_short=first["short_pass1"],
             final_long=last["pass1"], final_short=last["short_pass1"],
             short_change=round(last["short_pass1"] - first["short_pass1"], 4), wall_seconds=s["wall_seconds"])


if __name__ == "__main__":
    main()
