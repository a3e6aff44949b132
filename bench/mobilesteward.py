"""MobileSteward: steward + staff (with and without memories) against one agent trained the same way, over seeds.

    python bench/mobilesteward.py [--seeds 0,1,2] [--set key=value ...] [--out runs/mobilesteward]

One default `selfevolve run mobilesteward` per seed (both models cloned from the same expert tasks for the
same steps; the seed also picks the held-out stream); a run already finished in --out with the same settings
is read instead of run again. Prints one JSON line per seed and variant (success, on the training templates
and on the two held-out ones, on the stream's second half, mean actions, decisions and invalid actions per
task, plans tried, first plans that are the expert's, guided plans and reassigned subtasks, and for the steward
the success of its first plans alone: exactly what it solves without reflection, as up to the first re-plan
everything is greedy, tested; and on two-app tasks how often the find subtask gave an answer, and the right
one, and the share of the find subtasks' actions that tap a name the screen does not show, or swipe), then
one per variant with the means over seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from common import emit, seed_list
from star_family import finished_or_run

from selfevolve.agents.mobile_agent import name_of
from selfevolve.agents.phone import Phone
from selfevolve.agents.steward import answer_of
from selfevolve.config import parse_overrides
from selfevolve.store import RunStore


def from_samples(run: Path, round_: int) -> dict:
    """From a steward variant's model calls: the share of tasks solved on the first plan (one plan row and a
    success), and of two-app tasks whose find subtask gave an answer, and the right one."""
    rows = pq.read_table(run / "samples" / f"round-{round_:03d}.parquet").to_pandas()
    env, first, answered, right = Phone(int(RunStore.open(run).config_values().get("difficulty", 1))), [], [], []
    for task_id, calls in rows.groupby("task_id"):
        first.append(bool((calls.role == "steward").sum() == 1 and calls.success.iloc[0]))
        env.reset(int(task_id))
        if env.template != "buy":
            answers = [a.removeprefix("answer ") for a in calls.action if a.startswith("answer ")]
            answered.append(bool(answers))
            right.append(answer_of(env) in answers)
    finds = rows[(rows.role == "staff") & rows.prompt.str.startswith("task: find")]
    off = [a.startswith("tap ") and a[4:] not in {name_of(w.split("] ", 1)[1]) for w in q.split("\n") if "] " in w}
           and "-" not in a for q, a in zip(finds.prompt, finds.action, strict=True)]
    return {"no_reflection": round(float(np.mean(first)), 4), "answered": round(float(np.mean(answered)), 4),
            "answer_right": round(float(np.mean(right)), 4), "find_taps_off_screen": round(float(np.mean(off)), 4),
            "find_swipes": round(float(np.mean([a.startswith("swipe") for a in finds.action])), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", action="append", default=[], help="override a setting: key=value")
    parser.add_argument("--out", type=Path, default=Path("runs/mobilesteward"))
    args = parser.parse_args()
    by_variant: dict[str, list[dict]] = {}
    for seed in seed_list(args.seeds):
        s = finished_or_run("mobilesteward", args.out / f"s{seed}", {**parse_overrides(args.set), "seed": seed})
        for r in s["variants"]:
            half = r["batches"][len(r["batches"]) // 2:]
            line = {"success": round(r["success"], 4), "seen_templates": round(r["seen_templates"]["success"], 4),
                    "held_out_templates": round(r["held_out_templates"]["success"], 4),
                    "second_half": round(float(np.mean([b["success"] for b in half])), 4),
                    **{k: round(r[k], 3) for k in ("actions", "decisions", "invalid", "plans", "first_plan_right",
                                                   "guided", "reassigned") if k in r}}
            if "plans" in r:
                line |= {"first_plan_right_seen": round(r["seen_templates"]["first_plan_right"], 4),
                         **from_samples(args.out / f"s{seed}", r["round"])}
            emit(bench="mobilesteward", seed=seed, variant=r["variant"], tasks=s["tasks"], **line,
                 by_template=r["by_template"], wall_seconds=round(r["wall_seconds"], 1))
            by_variant.setdefault(r["variant"], []).append(line)
        emit(bench="mobilesteward", seed=seed, bc_seconds=[round(b["wall_seconds"], 1) for b in s["bc"]],
             wall_seconds=round(s["wall_seconds"], 1))
    for variant, lines in by_variant.items():
        emit(bench="mobilesteward", variant=variant, seeds=len(lines),
             mean={k: round(float(np.mean([x[k] for x in lines])), 4) for k in lines[0]})


if __name__ == "__main__":
    main()
