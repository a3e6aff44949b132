"""WebRL on WebSim: WebRL against AgentEvol-style filtered BC, the three ablations and two controls, and
AutoGLM's interface ablation (semantic actions + a grounder vs raw element indices), over seeds.

    python bench/webrl.py [--seeds 0,1,2] [--runs semantic,controls,index] [--set key=value ...] [--out runs/webrl]

Per seed, up to three `selfevolve run webrl`: `semantic`, webrl, filtered-bc and the three ablations;
`controls`, bc-continued and verifier-reward (semantic interface; its own run, so the first five's runs
stay as they are: the same seed trains the same BC actor); `index`, webrl through raw element indices.
A run already finished in --out with the same settings is read instead of run again. Every variant
plays the same number of episodes per phase. Prints one JSON line per seed, interface and variant
(held-out success after BC and after each phase, environment steps, success on the training templates
at the end, the rollouts' verified success, the ORM's accuracy, its recall of successes and of failures
and its precision on the phases it judged, how many tasks the curriculum wrote and at what mean
difficulty, and the share of failed rollouts that began with the expert's first action), then one per
interface and variant with the means over seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from common import emit, seed_list
from star_family import finished_or_run

from selfevolve.agents.web import Web
from selfevolve.agents.web_agent import in_words
from selfevolve.config import parse_overrides
from selfevolve.recipes.webrl import VARIANTS

CONTROLS = ("bc-continued", "verifier-reward")
RUNS = {"semantic": {"interface": "semantic", "variants": ",".join(v for v in VARIANTS if v not in CONTROLS)},
        "controls": {"interface": "semantic", "variants": ",".join(CONTROLS)},
        "index": {"interface": "index", "variants": "webrl"}}


def failed_but_first_action_right(samples: Path, interface: str) -> float:
    """Of a variant's rollouts that failed, the share whose first action was the expert's: what an
    episode-level advantage pushes down along with the mistakes."""
    t = pq.read_table(samples, columns=["task_id", "difficulty", "step", "action", "success"]).to_pylist()
    right = []
    for row in (r for r in t if r["step"] == 0 and not r["success"]):
        env = Web(row["difficulty"])
        env.reset(row["task_id"])
        right.append(row["action"] == in_words(env, env.plan[0], interface))
    return round(float(np.mean(right)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--set", action="append", default=[], help="override a setting: key=value")
    parser.add_argument("--out", type=Path, default=Path("runs/webrl"))
    args = parser.parse_args()
    means: dict[tuple[str, str], list[dict]] = {}
    for seed in seed_list(args.seeds):
        for name in args.runs.split(","):
            values = {**RUNS[name], **parse_overrides(args.set), "seed": seed}
            s, interface = finished_or_run("webrl", args.out / f"{name}-s{seed}", values), values["interface"]
            for r, v in enumerate(s["variants"], start=2):
                judged = [{**p["orm"], "precision":  # of the episodes judged successes, the share that are
                           p["orm"]["success_recall"] * p["rollout_success"] / p["orm"]["judged_success"]
                           if p["orm"]["judged_success"] else float("nan")} for p in v["phases"] if p["orm"]]

                def orm(key: str, judged=judged) -> float | None:
                    values = [j[key] for j in judged if j[key] == j[key]]  # nan: no success to recall
                    return round(float(np.mean(values)), 3) if values else None

                line = {"last": round(s["held_out"][v["variant"]][-1], 4),
                        "seen_templates": round(v["phases"][-1]["held_out"]["seen_templates"], 4),
                        "rollout_success": round(float(np.mean([p["rollout_success"] for p in v["phases"]])), 3),
                        "orm_accuracy": orm("accuracy"), "orm_success_recall": orm("success_recall"),
                        "orm_failure_recall": orm("failure_recall"), "orm_precision": orm("precision"),
                        "failed_first_action_right": failed_but_first_action_right(
                            args.out / f"{name}-s{seed}" / "samples" / f"round-{r:03d}.parquet", interface),
                        "curriculum_tasks": sum(p["curriculum"]["accepted"] for p in v["phases"]),
                        "rollout_difficulty": round(float(np.mean([p["difficulty"] for p in v["phases"]])), 2)}
                emit(bench="webrl", seed=seed, interface=interface, variant=v["variant"],
                     held_out=[round(x, 4) for x in s["held_out"][v["variant"]]],
                     env_steps=[p["env_steps"] for p in v["phases"]], **line,
                     wall_seconds=round(v["wall_seconds"], 1))
                means.setdefault((interface, v["variant"]), []).append(line)
            emit(bench="webrl", seed=seed, run=name, interface=interface, bc=round(s["bc"]["held_out"]["success"], 4),
                 bc_seconds=round(s["bc"]["wall_seconds"], 1), wall_seconds=round(s["wall_seconds"], 1))
    for (interface, variant), lines in means.items():
        emit(bench="webrl", interface=interface, variant=variant, seeds=len(lines),
             mean={k: round(float(np.mean([x[k] for x in lines if x[k] is not None])), 4)
                   for k in lines[0] if any(x[k] is not None for x in lines)})


if __name__ == "__main__":
    main()
