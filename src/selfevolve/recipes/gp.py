"""Genetic programming for symbolic regression, with mate choice by ideal-mate representations.

Simões, Lourenço and Machado (2023), "All You Need Is Sex for Diversity", arXiv:2303.17441

    each generation (DEAP's eaSimple): pick a first parent by tournament and a second by
    `mate_choice` (none: tournament; random: uniformly; ideal: the candidate closest to the
    first parent's own evolving ideal-mate tree), subtree crossover and mutation, depth limit 17;
    all trees of a generation are evaluated in one vectorised pass over all data points
    stop when the best expression's max abs error on the training points is below
    `success_error`, or after `generations`

    selfevolve run gp --set problem=nguyen-5 --set mate_choice=random
    selfevolve run gp --set data=points.csv      # columns: inputs..., y [, split=train|test]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfevolve.evolve.gp import MATE_CHOICES, GPConfig, GPState, TreeGP, mse
from selfevolve.evolve.problems import BENCHMARKS, Dataset, benchmark, load_csv
from selfevolve.evolve.trees import FUNCTIONS, PrimitiveSet, evaluate, to_infix
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.store import RunStore


@dataclass
class Config:
    seed: int = 0
    """Seeds the data sample (benchmarks), the initial population and all variation."""
    problem: str = "nguyen-5"
    """Benchmark: nguyen-1..12 or koza-1..3 (ignored when data is set)."""
    data: str = ""
    """CSV file of your own data: input columns, a y column, optional split column (train/test)."""
    mate_choice: str = "ideal"
    """How the second parent is chosen: ideal (evolving mate preferences), random, or none (tournament)."""
    pop_size: int = 300
    """Individuals per generation (even)."""
    generations: int = 50
    """Generations at most."""
    tournament_size: int = 3
    """Tournament size, and how many candidates a chooser looks at under mate choice."""
    cxpb: float = 0.5
    """Probability that a pair is crossed over."""
    mutpb: float = 0.1
    """Probability that a child gets a subtree mutation."""
    init_min_depth: int = 1
    """Ramped half-and-half initialisation: smallest depth."""
    init_max_depth: int = 4
    """Ramped half-and-half initialisation: largest depth."""
    max_depth: int = 17
    """Children deeper than this are replaced by their parent."""
    functions: tuple[str, ...] = tuple(FUNCTIONS)
    """Primitive functions (add sub mul div sin cos exp log; div and log are protected, exp clipped)."""
    constants: tuple[float, ...] = (1.0,)
    """Constant terminals besides the input variables."""
    success_error: float = 0.01
    """Solved when the max absolute error on every training point is below this."""

    def __post_init__(self) -> None:
        if not self.data and self.problem not in BENCHMARKS:
            raise ValueError(f"unknown problem {self.problem!r}; valid problems: {', '.join(BENCHMARKS)}")
        if self.mate_choice not in MATE_CHOICES:
            raise ValueError(f"mate_choice must be one of {', '.join(MATE_CHOICES)}, got {self.mate_choice!r}")
        if self.generations < 1:
            raise ValueError(f"generations must be >= 1, got {self.generations}")
        if self.success_error < 0:
            raise ValueError(f"success_error must be >= 0, got {self.success_error}")
        self.gp()  # validates the GP settings
        if self.data:
            load_csv(Path(self.data))  # bad data fails here, before a run directory is created

    def gp(self) -> GPConfig:
        return GPConfig(self.pop_size, self.tournament_size, self.cxpb, self.mutpb,
                        (self.init_min_depth, self.init_max_depth), self.max_depth, self.mate_choice)

    def dataset(self) -> Dataset:
        return load_csv(Path(self.data)) if self.data else benchmark(self.problem, self.seed)


def diversity(state: GPState) -> float:
    """Share of distinct trees in the population."""
    return len(set(state.population)) / len(state.population)


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    data = cfg.dataset()
    pset = PrimitiveSet(cfg.functions, data.variables, cfg.constants)
    gp = TreeGP(cfg.gp(), pset, data.y)
    saved = store.read_state("GP state")
    if saved:
        state, spent = GPState.from_json(saved["gp"]), saved["wall_seconds"]
    else:
        state, spent = gp.init(cfg.seed), 0.0
    start = time.perf_counter() - spent
    solved = False
    with progress.task(f"{data.description}: evolve", cfg.generations, state.generation) as advance:
        while state.generation < cfg.generations and not solved:
            gen = state.generation
            trees, state = gp.ask(state)
            state = gp.tell(state, trees, evaluate(trees, data.X, pset))
            max_abs = float(np.max(np.abs(state.best_outputs - data.y)))
            solved = max_abs < cfg.success_error
            record = {"round": gen, "generation": gen, "best_rmse": float(np.sqrt(state.best_error)),
                      "best_max_abs_error": max_abs, "best_size": len(state.best_tree),
                      "diversity": diversity(state), "evaluations": state.evaluations,
                      "wall_seconds": time.perf_counter() - start}
            store.record_round(gen, record, {"error/best_rmse": record["best_rmse"]})
            store.write_state({"gp": state.to_json(), "wall_seconds": record["wall_seconds"]})
            advance(rmse=record["best_rmse"])
    best = state.best_tree
    train_out = evaluate([best], data.X, pset)[0]
    summary = {"recipe": "gp", "problem": data.description, "seed": cfg.seed, "mate_choice": cfg.mate_choice,
               "best_expression": to_infix(best, pset), "best_error": float(np.sqrt(mse(train_out, data.y))),
               "best_max_abs_error": float(np.max(np.abs(train_out - data.y))),
               "solved": bool(np.max(np.abs(train_out - data.y)) < cfg.success_error),
               "test_error": None, "best_size": len(best), "generations": state.generation,
               "evaluations": state.evaluations, "wall_seconds": time.perf_counter() - start,
               "generations_log": store.rounds()}
    if data.X_test is not None:
        summary["test_error"] = float(np.sqrt(mse(evaluate([best], data.X_test, pset)[0], data.y_test)))
    store.write_summary(summary)
    store.event("finished")
    return summary


def headline(summary: dict) -> str:
    test = "" if summary["test_error"] is None else f", held-out RMSE {summary['test_error']:.4g}"
    verdict = "solved" if summary["solved"] else "not solved"
    return (f"{summary['problem']} ({verdict}, mate choice {summary['mate_choice']}): {summary['best_expression']}"
            f"  training RMSE {summary['best_error']:.4g}{test}; {summary['generations']} generations, "
            f"{summary['evaluations']} evaluations, {summary['wall_seconds']:.1f} s")


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_lines

    log = summary["generations_log"]
    gens = [r["generation"] for r in log]
    return [
        plot_lines(gens, {"best RMSE (training)": [max(r["best_rmse"], 1e-12) for r in log],
                          "best max abs error": [max(r["best_max_abs_error"], 1e-12) for r in log]},
                   f"{summary['problem']}: best error per generation", "generation", "error (log scale)",
                   plot_dir / "error.png", hline=(0.01, "success threshold"), logy=True),
        plot_lines(gens, {"distinct trees / population": [r["diversity"] for r in log]},
                   "Population diversity", "generation", "share", plot_dir / "diversity.png"),
    ]


RECIPE = Recipe(Config, run, headline, plots, run_name=lambda cfg: Path(cfg.data).stem if cfg.data else cfg.problem)
