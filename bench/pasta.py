"""PASTA on the point-mass plane or the cart-pole: component against modality tokens, pretrained against from
scratch, per seed.

    python bench/pasta.py [--seeds 0,1,2] [--set env=cart-pole] [--set key=value ...] [--out runs/pasta]

One default `selfevolve run pasta` per seed (in runs/pasta-cart-pole/ for the cart-pole; a finished run
there with the same settings is read again). Prints one JSON line per seed and task with each
method's held-out return and its return with the failed sensor, and one per task with the means
over seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import emit, seed_list
from star_family import finished_or_run

from selfevolve.config import parse_overrides
from selfevolve.recipes.pasta import METHODS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", action="append", default=[], help="override a setting: key=value")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    settings = parse_overrides(args.set)
    env = settings.get("env", "point-mass")
    out = args.out or Path("runs/pasta" if env == "point-mass" else f"runs/pasta-{env}")
    by_task: dict[str, list[dict]] = {}
    for seed in seed_list(args.seeds):
        s = finished_or_run("pasta", out / f"s{seed}", {**settings, "seed": seed})
        for t in s["tasks"]:
            emit(bench="pasta", env=env, seed=seed, task=t["task"], expert=round(t["expert"], 4),
                 returns={m: round(v, 4) for m, v in t["returns"].items()},
                 sensor_failed={m: round(v, 4) for m, v in t["sensor_failed"].items()},
                 wall_seconds=round(s["wall_seconds"], 1))
            by_task.setdefault(t["task"], []).append(t)
    for task, runs in by_task.items():
        emit(bench="pasta", env=env, task=task, seeds=len(runs),
             mean={m: round(float(np.mean([r["returns"][m] for r in runs])), 4) for m in METHODS},
             mean_sensor_failed={m: round(float(np.mean([r["sensor_failed"][m] for r in runs])), 4) for m in METHODS})


if __name__ == "__main__":
    main()
