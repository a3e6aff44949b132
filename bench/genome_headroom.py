"""How much room the merge space leaves above the best expert: GENOME's headroom, measured before tuning it.

    python bench/genome_headroom.py [--seeds 0,1,2] [--grid 0,0.5,1] [--experts copy,upper] [--set key=value ...]
                                    [--per-skill 100] [--out runs/genome-headroom]

Per seed, a GENOME run (the recipe with --set values; reused when finished) provides the base model,
the experts and the splits. Every merge sum_i w_i x_i of the expert adapters with each weight w_i
from --grid (all zero left out; a single expert, a plain sum and an average are among them) is
scored on the dev split and on the test split (--experts: only these experts weighted, the others at
0: a finer grid where each evaluation is slow, as on SmolLM2). The test split is read here for every
point: an oracle measurement of what a search could find, never a way to choose. Prints one JSON line per
seed: the best expert (chosen on dev) on dev and test; the grid point best on dev and its test
accuracy (what a perfect dev search over this grid would report); the best test accuracy anywhere
in the grid (the headroom); how many points beat the best expert on test; and the run's own
genome_best. Then one line per source skill (`--per-skill` fresh problems of it): the base model,
each expert, the uniform merge, the plain sum and the grid's best point on it.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch
from common import emit, seed_list
from star_family import finished_or_run

from selfevolve.config import build_config, parse_overrides
from selfevolve.evolve.experts import problems
from selfevolve.evolve.ops import linear_merge
from selfevolve.progress import Progress
from selfevolve.recipes.genome import Config, merge_space
from selfevolve.store import RunStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--grid", default="0,0.5,1", help="the values each expert's weight takes")
    ap.add_argument("--experts", default="", help="comma-separated skills whose experts the grid weights (all)")
    ap.add_argument("--set", action="append", default=[], help="a GENOME setting: key=value")
    ap.add_argument("--per-skill", type=int, default=100, help="problems a skill in the skill lines (0: none)")
    ap.add_argument("--out", type=Path, default=Path("runs/genome-headroom"))
    args = ap.parse_args()
    values = [float(v) for v in args.grid.split(",")]
    skills = build_config(Config, parse_overrides(args.set)).skills  # one expert per skill
    chosen = args.experts.split(",") if args.experts else list(skills)
    if unknown := set(chosen) - set(skills):  # before any run: a typo should not cost a GENOME run first
        raise SystemExit(f"--experts: no expert for {sorted(unknown)}; the experts are {', '.join(skills)}")
    for seed in seed_list(args.seeds):
        run_dir = args.out / f"s{seed}"
        s = finished_or_run("genome", run_dir, {**parse_overrides(args.set), "seed": seed})
        store = RunStore.open(run_dir)
        cfg = build_config(Config, store.config_values())
        cfg.use_threads()
        t0 = time.perf_counter()
        with Progress(enabled=False) as progress:
            space = merge_space(cfg, store, progress)
        axes = [values if name in chosen else [0.0] for name in space.names]
        weights = [w for w in itertools.product(*axes) if any(w)]
        points = {f"w={','.join(f'{x:g}' for x in w)}": torch.tensor(w) @ space.X for w in weights}
        test = space.test.read()
        dev_acc = space.fitness.scores(points, {})
        test_acc = space.fitness.scores(points, {}, test)
        best_expert = s["test_accuracy"]["best_expert"]
        on_dev = max(points, key=dev_acc.get)
        on_test = max(points, key=test_acc.get)
        emit(bench="genome_headroom", seed=seed, model=cfg.model, experts=space.names, target=list(cfg.target),
             grid=values, points=len(points), dev_size=len(space.fitness.problems), test_size=len(test),
             best_expert_dev=s["dev_accuracy"]["best_expert"], best_expert_test=best_expert,
             grid_best_on_dev=on_dev, its_dev=dev_acc[on_dev], its_test=test_acc[on_dev],
             grid_best_on_test=on_test, headroom_test=test_acc[on_test],
             points_above_best_expert_on_test=sum(v > best_expert for v in test_acc.values()),
             genome_best_dev=s["dev_accuracy"]["genome_best"], genome_best_test=s["test_accuracy"]["genome_best"],
             uniform_merge_test=s["test_accuracy"]["uniform_merge"], seconds=round(time.perf_counter() - t0, 1))
        if args.per_skill:
            skill_table(cfg, space, points[on_test], args.per_skill)


def skill_table(cfg: Config, space, grid_best: torch.Tensor, n: int) -> None:
    """What each model does on every source skill, on fresh problems (neither dev nor test): whether the
    base knows the skills, whether each expert gains on its own, and what merging keeps of them."""
    experts = {f"expert:{k}": x for k, x in zip(space.names, space.X, strict=True)}
    models = {"base": torch.zeros(space.X.shape[1]), **experts,
              "uniform_merge": linear_merge(space.X), "sum": space.X.sum(0), "grid_best_on_test": grid_best}
    for skill in cfg.skills:
        fresh = problems(cfg, space.fitness.tok, (skill,), n, f"skill-table-{skill}")
        emit(bench="genome_headroom_skills", seed=cfg.seed, model=cfg.model, skill=skill, problems=n,
             **{k: round(v, 3) for k, v in space.fitness.scores(models, {}, fresh).items()})


if __name__ == "__main__":
    main()
