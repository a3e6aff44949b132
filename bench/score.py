"""SCoRe against the paper's two baselines on the same round-0 model and the same sampled completions:
multi-turn RL on r(y2) alone (turn2) and STaR on successful correction traces (star); seeds 0-2.

    python bench/score.py [--seeds 0,1,2] [--set key=value ...] [--out runs/score]

Per seed, round 0 (the labelled answers and the two-attempt format) is trained once and shared
through `init_from`. Prints one JSON line per seed and objective with held-out greedy Accuracy@t1,
Accuracy@t2, Delta(t1, t2), Delta i->c, Delta c->i and the share of second attempts that repeat the
first, after round 0 and after the last iteration.
"""

from __future__ import annotations

from common import emit
from star_family import objective_runs

OBJECTIVES = ("score", "turn2", "star")
MEASURES = ("accuracy_t1", "accuracy_t2", "delta", "delta_i_to_c", "delta_c_to_i", "unchanged")


def main() -> None:
    for seed, objective, s in objective_runs("score", __doc__, OBJECTIVES):
        first, last = s["rounds"][0], s["rounds"][-1]
        emit(bench="score", seed=seed, objective=objective, samples_drawn=s["samples_drawn"],
             **{f"round0_{m}": round(first[m], 4) for m in MEASURES},
             **{f"final_{m}": round(last[m], 4) for m in MEASURES},
             delta_per_round=[round(r["delta"], 4) for r in s["rounds"]], wall_seconds=s["wall_seconds"])


if __name__ == "__main__":
    main()
