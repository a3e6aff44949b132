"""GENOME over many seeds: each method's test accuracy against the best expert and the uniform merge, with
bootstrap 95% intervals over seeds.

    python bench/genome_seeds.py [--seeds 0-9] [--set key=value ...] [--out runs/genome-seeds] [--record FILE]

One `selfevolve run genome` per seed (--set values for all; a finished run in out/sS with the same
settings is read, not run again, so two processes given different seeds and the same --out share
the work, and a last call over every seed prints the summary). Prints one JSON line per seed (test
accuracy of every method, dev accuracy of the best expert and genome_best: the dev-test gap), then
one line per method: mean test accuracy over seeds with its interval, and the paired difference from
the best expert and from the uniform merge (same seed) with its interval and how many seeds it wins
(and against TIES), and its mean dev accuracy (which chooses: the dev-test gap). `--versus key=value`
runs each seed a second time with that setting changed (out/sS-versus), adds its genome_best to the
method lines (`genome_best_versus`) and ends with genome_best's paired difference between the two
(e.g. `--versus succession=false`: GENOME+ against plain GENOME).

A study longer than a session keeps a record (`--record bench/results/NAME.jsonl`, committed): each
finished seed's summary is added with its full settings and the commit checked out when it was added
(the one that ran it, unless it was read from a run in --out), and a seed recorded with the same
settings is read from it, not run again, when runs/ no longer holds it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import emit, seed_list
from star_family import finished_or_run

from selfevolve.config import parse_overrides
from selfevolve.metrics import mean_interval

METHODS = ("best_expert", "uniform_merge", "ties_merge", "random_search", "genome_best", "genome_ensemble")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--set", action="append", default=[], help="a GENOME setting: key=value")
    ap.add_argument("--out", type=Path, default=Path("runs/genome-seeds"))
    ap.add_argument("--record", type=Path, help="a JSON-lines file of finished runs, read and added to")
    ap.add_argument("--versus", action="append", default=[],
                    help="key=value: each seed also runs with this changed (e.g. succession=false, GENOME without "
                         "its + step); a last line pairs the two genome_best's")
    args = ap.parse_args()
    seeds = seed_list(args.seeds)
    # with --versus, genome_best under those settings is a method of its own in the summary lines
    methods = (*METHODS, "genome_best_versus") if args.versus else METHODS
    test, dev = {m: [] for m in methods}, {m: [] for m in methods}
    for seed in seeds:
        settings = {**parse_overrides(args.set), "seed": seed}
        s = finished_or_run("genome", args.out / f"s{seed}", settings, args.record)
        if args.versus:
            other = finished_or_run("genome", args.out / f"s{seed}-versus",
                                    {**settings, **parse_overrides(args.versus)}, args.record)
            test["genome_best_versus"].append(other["test_accuracy"]["genome_best"])
            dev["genome_best_versus"].append(other["dev_accuracy"]["genome_best"])
        for m in METHODS:
            test[m].append(s["test_accuracy"][m])
            dev[m].append(s["dev_accuracy"][m])
        emit(bench="genome_seeds", seed=seed, model=s["model"], **{m: s["test_accuracy"][m] for m in METHODS},
             best_expert_dev=s["dev_accuracy"]["best_expert"], genome_best_dev=s["dev_accuracy"]["genome_best"],
             evaluations=s["evaluations"], seconds=round(s["wall_seconds"]),
             **({"genome_best_versus": test["genome_best_versus"][-1]} if args.versus else {}))
    rng = np.random.default_rng(0)
    values = {m: np.array(v) for m, v in test.items()}

    def ci(x: np.ndarray) -> list[float]:
        return [round(q, 4) for q in mean_interval(x, rng)]

    for m, v in values.items():
        vs_expert, vs_uniform = v - values["best_expert"], v - values["uniform_merge"]
        emit(bench="genome_seeds_mean", method=m, seeds=len(seeds), mean=round(float(v.mean()), 4), ci95=ci(v),
             minus_best_expert=round(float(vs_expert.mean()), 4), minus_best_expert_ci95=ci(vs_expert),
             seeds_above_best_expert=int((vs_expert > 0).sum()),
             minus_uniform_merge=round(float(vs_uniform.mean()), 4), minus_uniform_merge_ci95=ci(vs_uniform),
             seeds_above_uniform_merge=int((vs_uniform > 0).sum()),
             seeds_above_ties_merge=int((v > values["ties_merge"]).sum()), dev_mean=round(float(np.mean(dev[m])), 4))
    if args.versus:
        diff = values["genome_best"] - values["genome_best_versus"]
        emit(bench="genome_seeds_versus", versus=args.versus, seeds=len(seeds), genome_best=round(float(
            values["genome_best"].mean()), 4), genome_best_versus=round(float(values["genome_best_versus"].mean()), 4),
             minus_versus=round(float(diff.mean()), 4), minus_versus_ci95=ci(diff), seeds_above=int((diff > 0).sum()),
             seeds_below=int((diff < 0).sum()))


if __name__ == "__main__":
    main()
