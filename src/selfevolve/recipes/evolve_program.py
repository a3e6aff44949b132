"""Program evolution with a language model as the mutation operator (AlphaEvolve, FunSearch, OpenEvolve).

    each generation, `children` times: pick an island, draw a parent from its MAP-Elites archive
    (evolve/program_db.py) and inspirations from its other cells; ask the model for a child (the
    parent's code, their metrics, the errors of recent children; a rewrite or search/replace edits,
    evolve/operators.py); run the child in the sandbox through the evaluator's stages (cheap
    `quick` first, then `evaluate`: evolve/cascade.py); a failure's text goes into later prompts.
    Every `migration_interval` generations each island's best moves to the next island.

    selfevolve run evolve-program                                    # SmolLM2 on the regression problem
    selfevolve run evolve-program --set problem=packing --set operator=random   # the no-model baseline
    selfevolve run evolve-program --set program=mine.py --set evaluator=eval.py
    selfevolve run evolve-program --set base_url=http://127.0.0.1:8000/v1 --set model=NAME  # any server

Every model call (prompt, reply, tokens, seconds) is in the run's samples/round-NNN.parquet, one
file per generation, so a run can be audited; the best program is DIR/best_program.py.
"""

from __future__ import annotations

import ast
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from selfevolve.config import check_min, check_one_of
from selfevolve.evolve.cascade import Evaluation, Stage, cascade
from selfevolve.evolve.diffs import DiffError
from selfevolve.evolve.operators import FORMATS, child_program, evolvable, prompt, random_edit
from selfevolve.evolve.program_db import Program, ProgramDB
from selfevolve.evolve.program_problems import PROBLEMS, ProgramProblem, get_problem, user_problem
from selfevolve.models.lm import LMChoice, logged_chats
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs
from selfevolve.store import RunStore, atomic_write

OPERATORS = ("lm", "random")


@dataclass
class Config(LMChoice):
    seed: int = 0
    """Seeds the data of built-in problems, parent and inspiration draws, random edits and sampling."""
    problem: str = "regression"
    """Built-in problem: regression (a GP benchmark as code), packing (online bin packing) or minimize
    (a search routine for a bumpy function); ignored when program and evaluator are set."""
    regression_benchmark: str = "nguyen-2"
    """problem=regression: which GP benchmark's points (nguyen-1..12, koza-1..3; one input)."""
    program: str = ""
    """Your Python file with # EVOLVE-BLOCK-START / # EVOLVE-BLOCK-END around what may change."""
    evaluator: str = ""
    """Your evaluator file: evaluate(program) -> {"score": ..., ...} (higher is better), and optionally
    quick(program) -> {"score": ...}, run first; program is the candidate as a module."""
    quick_threshold: float = float("-inf")
    """A candidate whose quick score is below this is not evaluated further (and is not kept)."""
    operator: str = "lm"
    """lm (a language model writes each child) or random (random token edits: the no-model baseline)."""
    edit_format: str = "rewrite"
    """rewrite (the model writes the whole evolvable code) or diff (search/replace blocks)."""
    generations: int = 8
    """Generations after the starting program's evaluation."""
    children: int = 16
    """Children per generation (one model call each, sent together)."""
    islands: int = 2
    """Islands of the program database."""
    migration_interval: int = 4
    """Every this many generations each island's best is copied to the next island."""
    bins: int = 10
    """MAP-Elites bins of the feature (the evolvable code's length, 0..max_length characters)."""
    max_length: int = 1000
    """Upper end of the length feature's range (longer code shares the last bin)."""
    inspirations: int = 2
    """Other elites of the island shown beside the parent."""
    failures_shown: int = 3
    """Errors of the most recent failed children shown in each prompt."""
    stage_timeout: float = 5.0
    """Seconds each evaluation stage may run (and its CPU-time limit)."""
    workers: int = 2
    """Candidates evaluated at once (each in its own sandboxed interpreter)."""

    def __post_init__(self) -> None:
        check_one_of(self, "operator", OPERATORS)
        check_one_of(self, "edit_format", FORMATS)
        check_min(self, 1, "children", "islands", "migration_interval", "bins", "workers", "max_length")
        check_min(self, 0, "generations", "inspirations", "failures_shown")
        if self.stage_timeout <= 0:
            raise ValueError(f"stage_timeout must be > 0, got {self.stage_timeout}")
        if bool(self.program) != bool(self.evaluator):
            raise ValueError("program and evaluator go together: set both, or neither for a built-in problem")
        if not self.program:
            check_one_of(self, "problem", PROBLEMS)
            get_problem(self.problem, self.seed, self.regression_benchmark)  # an unknown benchmark fails here
        else:  # the user's files, and their starting program through their evaluator, before a run exists
            problem = user_problem(self.program, self.evaluator)
            start = cascade(problem.program, problem.evaluator, self.stages(problem.evaluator))
            if start.error:
                raise ValueError(f"the starting program fails its own evaluator: {start.error}")
        if self.operator == "lm":
            self.check_lm()

    def task(self) -> ProgramProblem:
        if self.program:
            return user_problem(self.program, self.evaluator)
        return get_problem(self.problem, self.seed, self.regression_benchmark)

    def stages(self, evaluator: str) -> list[Stage]:
        has_quick = any(isinstance(n, ast.FunctionDef) and n.name == "quick" for n in ast.parse(evaluator).body)
        return ([Stage("quick", self.quick_threshold, self.stage_timeout)] if has_quick else []) + [
            Stage("evaluate", timeout=self.stage_timeout)]


def scored(code: str, result: Evaluation, of: int, threshold: float) -> tuple[dict, str]:
    """A candidate's metrics (with its code length) and its error, "" if it is comparable with others."""
    error = result.error
    if not error and not result.complete(of):
        error = f"quick score {result.metrics.get('score', float('nan')):.4g} is below quick_threshold {threshold}"
    return {**result.metrics, "length": float(len(evolvable(code)))}, error


def evolve(cfg: Config, store: RunStore, progress: Progress, lm) -> dict:
    """The loop, with the model given (a ScriptedLM in tests; the replay of a logged run)."""
    problem = cfg.task()
    stages = cfg.stages(problem.evaluator)
    db_config = {"islands": cfg.islands, "features": ("length",), "ranges": {"length": (0.0, float(cfg.max_length))},
                 "bins": cfg.bins, "migration_interval": cfg.migration_interval}

    def evaluate_all(codes: list[str]) -> list[tuple[dict, str]]:
        with ThreadPoolExecutor(cfg.workers) as pool:
            results = list(pool.map(lambda c: cascade(c, problem.evaluator, stages), codes))
        return [scored(c, r, len(stages), cfg.quick_threshold) for c, r in zip(codes, results, strict=True)]

    saved = store.read_state("program database")
    if saved:
        db, failures = ProgramDB.restore(saved["db"], **db_config), saved["failures"]
        start, spent = saved["generation"] + 1, saved["wall_seconds"]
    else:
        (metrics, _), = evaluate_all([problem.program])  # it runs: the config checked it
        db, failures, start, spent = ProgramDB(**db_config), [], 1, 0.0
        for island in range(cfg.islands):
            db.add(Program(problem.program, dict(metrics), island=island))
        store.record_round(0, record(0, db, [], 0.0, 0.0), {"score/best": db.fitness(db.best())})
    t0 = time.perf_counter() - spent

    with progress.task(f"{problem.description}: evolve", cfg.generations, start - 1) as advance:
        for g in range(start, cfg.generations + 1):
            g0 = time.perf_counter()
            rng = rngs(cfg.seed, g).np
            picks = [db.sample(k % cfg.islands, rng, cfg.inspirations) for k in range(cfg.children)]
            asks, replies, tokens, seconds = [""] * len(picks), [""] * len(picks), [0] * len(picks), 0.0
            if lm is None:
                codes: list[str | DiffError] = [random_edit(parent.code, rng) for parent, _ in picks]
            else:
                conversations = [prompt(problem.description, parent, others, failures[-cfg.failures_shown:],
                                        cfg.edit_format) for parent, others in picks]
                _, log = logged_chats(lm, conversations, rngs(cfg.seed, "lm", g).torch, cfg.temperature,
                                      cfg.max_tokens)
                asks, replies, tokens = log["prompt"], log["response"], log["tokens"]
                seconds = log["latency_seconds"][0]
                codes = []
                for (parent, _), reply in zip(picks, replies, strict=True):
                    try:
                        codes.append(child_program(parent.code, reply, cfg.edit_format))
                    except DiffError as err:
                        codes.append(err)
            valid = [i for i, c in enumerate(codes) if isinstance(c, str)]
            results = dict(zip(valid, evaluate_all([codes[i] for i in valid]), strict=True))
            children = []
            for i, ((parent, _), code) in enumerate(zip(picks, codes, strict=True)):
                metrics, error = results[i] if i in results else ({}, f"edit: {code}")
                child = Program(code if isinstance(code, str) else parent.code, metrics, parent=parent.id,
                                island=parent.island, generation=g, error=error)
                db.add(child)
                children.append(child)
                if error:
                    failures.append(error.splitlines()[0][:200])
            db.migrate(g)
            store.write_samples(g, {
                "child": [c.id for c in children], "parent": [c.parent for c in children],
                "island": [c.island for c in children], "code": [evolvable(c.code) for c in children],
                "prompt": asks, "response": replies, "tokens": tokens, "latency_seconds": [seconds] * len(children),
                "valid": [not c.error for c in children], "error": [c.error for c in children],
                "score": [db.fitness(c) for c in children]})
            rec = record(g, db, children, seconds, time.perf_counter() - g0)
            store.record_round(g, rec, {"score/best": rec["best_score"], "children/valid_share": rec["valid_share"]})
            store.write_state({"db": db.state(), "generation": g, "failures": failures[-50:],
                               "wall_seconds": time.perf_counter() - t0})
            progress.log(f"[bold]generation {g}[/] best {rec['best_score']:.4g}  valid {rec['valid_share']:.2f}  "
                         f"{rec['wall_seconds']:.1f}s")
            advance()

    best = db.best()
    atomic_write(store.path / "best_program.py", best.code)
    log = store.rounds()
    evaluations = 1 + sum(len(r["children"]) for r in log)
    wall = time.perf_counter() - t0
    summary = {"recipe": "evolve-program", "problem": problem.description, "operator": cfg.operator,
               "model": cfg.model if cfg.operator == "lm" else None, "seed": cfg.seed,
               "start_score": log[0]["best_score"], "best_score": db.fitness(best), "best_metrics": best.metrics,
               "best_code": evolvable(best.code), "lineage": lineage(db, best),
               "evaluations": evaluations, "valid_share": valid_share(log),
               "evaluations_per_second": evaluations / wall if wall > 0 else None,
               "lm_seconds": sum(r["lm_seconds"] for r in log), "generations_log": log, "wall_seconds": wall}
    store.write_summary(summary)
    store.event("finished")
    return summary


def record(g: int, db: ProgramDB, children: list[Program], lm_seconds: float, seconds: float) -> dict:
    best = db.best()
    return {"round": g, "generation": g, "best_score": db.fitness(best), "best_id": best.id,
            "children": [c.id for c in children], "valid_share": (sum(not c.error for c in children) / len(children)
                                                                  if children else 1.0),
            "improved": sum(1 for c in children if not c.error and c.parent is not None
                            and db.fitness(c) > db.fitness(db.programs[c.parent])),
            "cells": [len(e) for e in db.elites], "lm_seconds": lm_seconds, "wall_seconds": seconds}


def valid_share(log: list[dict]) -> float | None:
    made = sum(len(r["children"]) for r in log)
    return sum(r["valid_share"] * len(r["children"]) for r in log) / made if made else None


def lineage(db: ProgramDB, program: Program) -> list[dict]:
    """The program's ancestors back to the starting program: id, generation and score of each."""
    out = []
    node: Program | None = program
    while node is not None:
        out.append({"id": node.id, "generation": node.generation, "score": db.fitness(node)})
        node = db.programs[node.parent] if node.parent is not None else None
    return out[::-1]


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    return evolve(cfg, store, progress, None if cfg.operator == "random" else cfg.open_lm(cfg.children, cfg.seed))


def headline(summary: dict) -> str:
    return (f"{summary['problem']}: best score {summary['start_score']:.4g} -> {summary['best_score']:.4g} "
            f"({summary['operator']}; {summary['evaluations']} evaluations, {summary['valid_share'] or 0:.0%} valid "
            f"children, {summary['wall_seconds']:.0f} s)")


def table(summary: dict):
    from rich.table import Table

    t = Table(title="best program's lineage")
    for column in ("program", "generation", "score"):
        t.add_column(column, justify="right")
    for step in summary["lineage"]:
        t.add_row(str(step["id"]), str(step["generation"]), f"{step['score']:.4g}")
    return t


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_lines

    log = summary["generations_log"]
    gens = [r["generation"] for r in log]
    return [plot_lines(gens, {"best score": [r["best_score"] for r in log]},
                       f"{summary['problem']}: best score per generation", "generation", "score",
                       plot_dir / "best_score.png"),
            plot_lines(gens[1:], {"valid children": [r["valid_share"] for r in log[1:]]},
                       "Children that ran and scored", "generation", "share", plot_dir / "valid_share.png")]


RECIPE = Recipe(Config, run, headline, plots, table=table,
                run_name=lambda cfg: Path(cfg.program).stem if cfg.program else cfg.problem)
