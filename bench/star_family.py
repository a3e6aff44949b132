"""STaR, B-STaR, iterative DPO and UPO on Countdown from one round-0 model, same sample budget and seed.

    python bench/star_family.py [--seed 0] [--iterations 4] [--out runs/star-family]

Round 0 (supervised fine-tuning on the labelled seed set) is trained once; every recipe then
starts from that checkpoint (`init_from`) and draws the same number of samples per iteration
(B-STaR's temperature probe is part of its budget). Prints one JSON line per recipe:
{"recipe", "round0_pass1", "final_pass1", "best_pass1", "samples_drawn", "tokens_trained",
"exploration_last", "diversity_last", "wall_seconds"}, where exploration_last is the mean Pass@K-S
(B-STaR's exploration metric, on the samples each iteration drew at the temperature it chose) over
the last two iterations, exploration_all_last the same over all of an iteration's samples (B-STaR's
probe of the other temperatures included), and kept_precision_last the share of kept answers that
were correct (below 1 only with judge=orm).
The run directories stay in --out: `selfevolve compare --plot compare.png OUT/*` shows them side by side.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from common import add_to_record, emit, seed_list

from selfevolve.config import build_config, config_to_dict, config_to_toml, parse_overrides
from selfevolve.progress import Progress
from selfevolve.recipes import get_recipe
from selfevolve.store import RunStore

SETTING = {"difficulty": 3, "num_labelled": 1500, "n_embd": 64, "round0_steps": 400, "problems_per_iteration": 1000,
           "samples_per_problem": 4, "iteration_steps": 200, "eval_problems": 500}
EXTRA = {"bstar": {"temperature_grid": [0.8, 1.0, 1.2, 1.4], "probe_problems": 100}}


def pass_at_k_all(run_dir: Path, r: int, k: int) -> float:
    """Pass@K-S over every sample of iteration r: k consecutive rows per problem in its samples table."""
    correct = RunStore.open(run_dir).read_samples(r)["correct"]
    return float(np.asarray(correct.to_pylist()).reshape(-1, k).any(axis=1).mean())


def run(recipe: str, out: Path, values: dict) -> dict:
    module = get_recipe(recipe)
    cfg = build_config(module.Config, values)
    store = RunStore.create(out, recipe, config_to_toml(cfg), overwrite=True)
    with Progress(enabled=False) as progress:
        return module.run(cfg, store, progress)


def finished_or_run(recipe: str, out: Path, values: dict, record: Path | None = None) -> dict:
    """The summary of a run in `out` with the same settings (finished, or resumed from its last
    complete round: a bench stopped mid-run loses nothing), or of a new run there.

    record: a JSON-lines file kept in the repo (bench/results/). A summary recorded there with the same
    recipe and settings (all of them, defaults included) is read, not run again, and every other is
    added with its settings and the commit checked out then: a study longer than a session, whose
    runs/ is gone when the next one starts, goes on where it stopped."""
    module = get_recipe(recipe)
    cfg = build_config(module.Config, values)
    if record is not None and record.exists():
        for entry in map(json.loads, record.read_text().splitlines()):
            if entry["recipe"] == recipe and build_config(module.Config, entry["settings"]) == cfg:
                return entry["summary"]
    if (out / "config.toml").exists() and build_config(module.Config, RunStore.open(out).config_values()) == cfg:
        if (out / "summary.json").exists():
            summary = json.loads((out / "summary.json").read_text())
        else:
            with Progress(enabled=False) as progress:
                summary = module.run(cfg, RunStore.open(out), progress)
    else:
        summary = run(recipe, out, values)
    if record is not None:
        add_to_record(record, {"recipe": recipe, "settings": config_to_dict(cfg), "summary": summary})
    return summary


def from_round0(recipe: str, out: Path, values: dict, conditions: dict[str, dict]) -> Iterator[tuple[str, dict]]:
    """Round 0 trained once (out/round0), then each condition started from it (`init_from`): the same
    start, seed and problems for every condition; runs already there with the same settings are read
    or resumed. Yields each condition's name and summary."""
    finished_or_run(recipe, out / "round0", {**values, "iterations": 0})
    for name, extra in conditions.items():
        yield name, finished_or_run(recipe, out / name, {**values, **extra, "init_from": str(out / "round0")})


def objective_runs(recipe: str, doc: str, objectives: tuple[str, ...]) -> Iterator[tuple[int, str, dict]]:
    """A bench's command line (--seeds, --objectives, --threads, --set, --out runs/RECIPE) and its runs:
    per seed, each objective from one round-0 model. Yields each run's seed, objective and summary."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--objectives", default=",".join(objectives))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="override a setting: key=value")
    parser.add_argument("--out", type=Path, default=Path("runs") / recipe)
    args = parser.parse_args()
    for seed in seed_list(args.seeds):
        values = {**parse_overrides(args.set), "seed": seed, "threads": args.threads}
        for objective, summary in from_round0(recipe, args.out / f"s{seed}", values,
                                              {o: {"objective": o} for o in args.objectives.split(",")}):
            yield seed, objective, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/star-family"))
    parser.add_argument("--recipes", default="star,bstar,dpo,upo,star:judge=orm,bstar:judge=orm",
                        help="comma-separated; recipe:key=value:... runs a variant")
    parser.add_argument("--set", action="append", default=[], help="override a setting: key=value")
    args = parser.parse_args()
    common = {**SETTING, **parse_overrides(args.set), "seed": args.seed, "threads": args.threads}

    t0 = time.time()
    round0 = run("star", args.out / "round0", {**common, "iterations": 0})
    emit(bench="star_family", stage="round0", pass1=round0["final_pass1"], wall_seconds=round(time.time() - t0, 1))
    for variant in args.recipes.split(","):
        recipe, *overrides = variant.split(":")
        values = {**common, **EXTRA.get(recipe, {}), **parse_overrides(overrides), "iterations": args.iterations,
                  "init_from": str(args.out / "round0")}
        run_dir = args.out / variant.replace(":", "-").replace("=", "-")
        s = run(recipe, run_dir, values)
        last = s["rounds"][-2:]
        emit(bench="star_family", recipe=variant, round0_pass1=s["round0_pass1"], final_pass1=s["final_pass1"],
             best_pass1=s["best_pass1"], samples_drawn=s["samples_drawn"], tokens_trained=s["tokens_trained"],
             exploration_last=round(float(np.mean([r["pass_at_k"] for r in last])), 4),
             exploration_all_last=round(float(np.mean([pass_at_k_all(run_dir, r["round"], values["samples_per_problem"])
                                                       for r in last])), 4),
             diversity_last=round(float(np.mean([r["diversity"] for r in last])), 4),
             kept_precision_last=round(float(np.mean([r["precision"] for r in last])), 4),
             temperatures=[r["temperature"] for r in s["rounds"][1:]],
             thresholds=[r["threshold"] for r in s["rounds"][1:]], wall_seconds=s["wall_seconds"])
    emit(bench="star_family", stage="total", wall_seconds=round(time.time() - t0, 1))


if __name__ == "__main__":
    main()
