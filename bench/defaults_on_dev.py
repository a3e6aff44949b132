"""Re-check length-gen's and rstar's defaults on a dev split, where the test split never looks.

    python bench/defaults_on_dev.py [--seed 0] [--out runs/defaults-on-dev] [--jobs 2] [--only length-gen|rstar]

length-gen: the default position encoding (abacus-all) against abacus-rope and abacus-alibi, and the
default filters (length, commute, split) against the length check alone; full runs, capped at
`--max-rounds`. rstar: round0_steps 400 (the default) against 900, and widen 2 (the default) against
1 and 4; round 0 and `--rstar-rounds` rounds of search (default 1), scored by greedy decoding and
majority / PPM at 16 after the last.
Every run evaluates on `eval_split=dev`. Runs go `--jobs` at a time, one thread each. Prints one
JSON line per run, then one per choice (length-gen: the best dev accuracy at 10 digits, then the fewest
rounds; rstar: the best dev greedy accuracy) and whether it is the default.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import emit
from star_family import run

LENGTH_GEN = {"abacus-all (default)": {}, "abacus-rope": {"pos_encoding": "abacus-rope"},
              "abacus-alibi": {"pos_encoding": "abacus-alibi"}, "filters=length": {"filters": "length"}}
RSTAR = {"defaults (400 steps, widen 2)": {}, "round0_steps=900": {"round0_steps": 900},
         "widen=1": {"widen": 1}, "widen=4": {"widen": 4}}


def length_gen(name: str, values: dict, out: Path) -> dict:
    s = run("length-gen", out / f"length-gen-{name.split()[0]}", values)
    acc = s["accuracy_by_digits"]
    return {"recipe": "length-gen", "variant": name, "dev_reached_digits": s["reached_digits"],
            "dev_accuracy_10": acc.get("10"), "dev_accuracy_12": acc.get("12"), "rounds": len(s["rounds"]) - 1,
            "max_label_error": max((e for e in s["pseudo_label_error_by_round"] if e is not None), default=None),
            "wall_seconds": s["wall_seconds"]}


def rstar(name: str, values: dict, out: Path) -> dict:
    s = run("rstar", out / f"rstar-{name.split()[0]}-{values['rounds']}", values)
    r0, r1 = s["rounds"][0], s["rounds"][-1]
    return {"recipe": "rstar", "variant": name, "rounds": values["rounds"],
            "dev_greedy_round0": r0["accuracy"]["greedy"]["1"],
            "dev_greedy": r1["accuracy"]["greedy"]["1"], "dev_majority16": r1["accuracy"]["majority"]["16"],
            "dev_ppm16": r1["accuracy"]["ppm"]["16"], "solved_by_search": r1["solved_by_search"],
            "pairs": [r["pairs"] for r in s["rounds"][1:]], "wall_seconds": s["wall_seconds"]}


def choose(results: list[dict], key: str, then: str | None = None) -> None:
    """The best by `key`, then by fewer `then` (rounds to get there); a full tie keeps the default."""
    best = max(results, key=lambda r: (r[key] or 0.0, -(r[then] if then else 0), "default" in r["variant"]))
    emit(bench="defaults_on_dev", recipe=best["recipe"], chosen=best["variant"], by=key, value=best[key],
         default_kept="default" in best["variant"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--max-rounds", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path("runs/defaults-on-dev"))
    parser.add_argument("--only", choices=["length-gen", "rstar"])
    parser.add_argument("--rstar-rounds", type=int, default=1, help="search rounds of each rstar run")
    parser.add_argument("--variants", default="", help="comma-separated variant names to run (default: all)")
    args = parser.parse_args()
    common = {"seed": args.seed, "threads": 1, "eval_split": "dev"}
    jobs = []
    if args.only in (None, "length-gen"):
        jobs += [(length_gen, n, {**common, "max_rounds": args.max_rounds, **v}) for n, v in LENGTH_GEN.items()]
    if args.only in (None, "rstar"):
        jobs += [(rstar, n, {**common, "rounds": args.rstar_rounds, "eval_problems": 100, "eval_n": "1,16", **v})
                 for n, v in RSTAR.items()]
    if args.variants:
        jobs = [job for job in jobs if job[1].split()[0] in args.variants.split(",")]
    t0 = time.time()
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(fn, name, values, args.out) for fn, name, values in jobs]
        results = []
        for future in futures:
            results.append(future.result())
            emit(bench="defaults_on_dev", seed=args.seed, **results[-1])
    by_recipe = {r["recipe"]: [x for x in results if x["recipe"] == r["recipe"]] for r in results}
    if "length-gen" in by_recipe:
        choose(by_recipe["length-gen"], "dev_accuracy_10", then="rounds")
    if "rstar" in by_recipe:
        choose(by_recipe["rstar"], "dev_greedy")
    emit(bench="defaults_on_dev", stage="total", wall_seconds=round(time.time() - t0, 1))


if __name__ == "__main__":
    main()
