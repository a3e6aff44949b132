"""rStar-Math's claim on wordmath-hard: best-of-N by the process preference model against majority vote,
the PRM and the ORM, with `--set preset=long`; seeds 0-2.

    python bench/rstar_long.py [--seeds 0,1,2] [--set key=value ...] [--out runs/rstar-long] [--record FILE]

A run already finished in --out with the same settings, or recorded in --record (a JSON-lines file kept
in the repo, which every finished run is added to: a seed takes about an hour, so the study spans
sessions), is read, not run again. Prints one JSON line per seed, round and strategy: accuracy and
generated tokens per problem at each N (1, 4, 16, 64; `pass` is some one of the N samples right, the
ceiling of every chooser), one line per seed and round with its seconds, the PPM pairs its search gave
and the PPM's and PRM's accuracy on held-out pairs, then one line per seed with the last round's
PPM - majority and PPM - PRM at N = 16, the pairs the search gave and the reward models' steps, and a
last line with the means over the seeds at N = 16.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import emit, seed_list
from star_family import finished_or_run

from selfevolve.config import parse_overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="override a setting: key=value")
    parser.add_argument("--out", type=Path, default=Path("runs/rstar-long"))
    parser.add_argument("--record", type=Path, help="a JSON-lines file of finished runs, read and added to")
    args = parser.parse_args()
    last16 = []
    for seed in seed_list(args.seeds):
        values = {"preset": "long", **parse_overrides(args.set), "seed": seed, "threads": args.threads}
        s = finished_or_run("rstar", args.out / f"s{seed}", values, args.record)
        for r in s["rounds"]:
            emit(bench="rstar_long_round", seed=seed, round=r["round"], wall_seconds=round(r["wall_seconds"]),
                 pairs=r.get("pairs"), ppm_pair_accuracy=r.get("ppm_pair_accuracy"),
                 prm_pair_accuracy=r.get("prm_pair_accuracy"))
            for strategy, by_n in r["accuracy"].items():
                emit(bench="rstar_long", seed=seed, round=r["round"], strategy=strategy, accuracy=by_n,
                     tokens=r["tokens"].get(strategy, {}))
        last = s["rounds"][-1]["accuracy"]
        last16.append({k: last[k]["16"] for k in ("majority", "pass", "orm", "prm", "ppm")})
        emit(bench="rstar_long", seed=seed, rounds=len(s["rounds"]) - 1, problems=s["held_out"]["problems"],
             ppm_minus_majority16=round(last["ppm"]["16"] - last["majority"]["16"], 4),
             ppm_minus_prm16=round(last["ppm"]["16"] - last["prm"]["16"], 4),
             room16=round(last["pass"]["16"] - last["majority"]["16"], 4),
             pairs=[r.get("pairs") for r in s["rounds"][1:]],
             reward_steps=[r.get("reward_steps") for r in s["rounds"][1:]],
             wall_seconds=s["wall_seconds"])
    mean = {k: round(float(np.mean([x[k] for x in last16])), 4) for k in last16[0]}
    emit(bench="rstar_long_mean", seeds=len(last16), n=16, **mean,
         ppm_minus_majority=round(mean["ppm"] - mean["majority"], 4), ppm_minus_prm=round(mean["ppm"] - mean["prm"], 4))


if __name__ == "__main__":
    main()
