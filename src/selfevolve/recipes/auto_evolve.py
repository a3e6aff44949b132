"""Auto-Evolve: the model writes its own reasoning modules for a task family, plans each problem with
them and refines the plan before it solves (Aswani et al. 2024, "Auto-Evolve: Enhancing Large
Language Model's Performance via Self-Reasoning Framework"; after SELF-DISCOVER, Zhou et al. 2024).

    round 0: the model sees `examples` solved training problems and writes `modules` reasoning modules
    round 1: chain of thought, the baseline: each held-out problem solved step by step, no plan
    round 2: fixed modules (SELF-DISCOVER's way): a plan from a fixed module set, then the solution
    round 3 + k: Auto-Evolve: a plan from the model's own modules (k = 0), refined by the model k
             times (k = 1 .. refinements), each time solved following the plan

    selfevolve run auto-evolve --set task=wordmath-hard --set refinements=3

Every method answers the same `problems` held-out problems with the same model and settings; a
reply's answer is the number after its last "Answer:" (else its last number), checked against the
task's gold value. Every call (conversation, reply, tokens, seconds) is in samples/round-NNN.parquet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from selfevolve.config import check_min, check_one_of
from selfevolve.models.lm import LMChoice, logged_stage
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs
from selfevolve.search.reasoning_modules import (
    SEED_MODULES,
    modules_prompt,
    parse_modules,
    plan_prompt,
    refine_prompt,
    solve_prompt,
    stated_answer,
)
from selfevolve.store import RunStore
from selfevolve.tasks import get_task
from selfevolve.tasks.base import SPLITS, Problem, held_out_split

TASKS = ("wordmath", "wordmath-hard")  # problems told in words with a numeric gold value


@dataclass
class Config(LMChoice):
    seed: int = 0
    """Seeds the problems, the solved examples and the model's sampling."""
    task: str = "wordmath"
    """wordmath or wordmath-hard (word problems whose answer is a number)."""
    difficulty: int = 2
    """Steps per problem."""
    problems: int = 40
    """Held-out problems every method answers."""
    eval_split: str = "test"
    """test (what results report) or dev (problems apart from test, for choosing settings)."""
    examples: int = 3
    """Solved training problems the model sees when it writes its modules."""
    modules: int = 5
    """Reasoning modules the model is asked to write."""
    refinements: int = 2
    """Times the model refines each plan (each refinement is solved and scored)."""
    temperature: float = 0.0
    """Sampling temperature (0: greedy, so the methods differ only in their prompts)."""
    max_tokens: int = 200
    """Most tokens per reply."""

    def __post_init__(self) -> None:
        check_one_of(self, "task", TASKS)
        check_one_of(self, "eval_split", SPLITS)
        check_min(self, 1, "difficulty", "problems", "examples", "modules")
        check_min(self, 0, "refinements", "seed")
        self.check_lm()


def split(cfg: Config) -> tuple[list[Problem], list[Problem]]:
    """The solved examples (training problems) and the held-out problems, none the same as an example."""
    task = get_task(cfg.task)
    examples = task.sample(cfg.examples, cfg.difficulty, rngs(cfg.seed, "examples").np)
    held_out, _ = held_out_split(task, cfg.problems, cfg.difficulty, cfg.seed, cfg.eval_split,
                                 {p.prompt for p in examples})
    return examples, held_out


def method_of(r: int) -> str:
    return {0: "modules", 1: "cot", 2: "fixed_modules"}.get(r, f"auto_evolve_{r - 3}")


def evolve(cfg: Config, store: RunStore, progress: Progress, lm) -> dict:
    """The rounds, with the model given (a ScriptedLM in tests)."""
    task = get_task(cfg.task)
    examples, problems = split(cfg)
    questions = [p.fields["question"] for p in problems]
    state = store.read_state("modules and plans") or {"round": -1, "modules": [], "plans": []}
    last = 3 + cfg.refinements

    def ask(r: int, stage: str, conversations: list[list[dict]], rows: dict) -> list[str]:
        return logged_stage(lm, rows, stage, conversations, rngs(cfg.seed, "lm", r, stage).torch, cfg.temperature,
                            cfg.max_tokens)

    with progress.task("Auto-Evolve: modules, then every method on the held-out problems", last + 1,
                       state["round"] + 1) as advance:
        for r in range(state["round"] + 1, last + 1):
            t0, rows, record = time.perf_counter(), {}, {"round": r, "method": method_of(r)}
            if r == 0:
                shown = [(p.fields["question"], str(p.fields["value"])) for p in examples]
                reply = ask(r, "modules", [modules_prompt(shown, cfg.modules)], rows)[0]
                state["modules"] = parse_modules(reply, cfg.modules)
                record.update(modules=state["modules"], modules_parsed=len(state["modules"]))
            else:
                plans: list[str | None] = [None] * len(problems)
                if r == 2:
                    plans = ask(r, "plan", [plan_prompt(q, list(SEED_MODULES)) for q in questions], rows)
                elif r == 3:
                    plans = ask(r, "plan", [plan_prompt(q, state["modules"]) for q in questions], rows)
                elif r > 3:
                    plans = ask(r, "refine", [refine_prompt(q, state["modules"], p)
                                              for q, p in zip(questions, state["plans"], strict=True)], rows)
                replies = ask(r, "solve", [solve_prompt(q, p) for q, p in zip(questions, plans, strict=True)], rows)
                values = [stated_answer(t) for t in replies]
                right = [task.answer_matches(p, v) for p, v in zip(problems, values, strict=True)]
                for key, column in (("problem", list(range(len(problems))) * (len(rows["stage"]) // len(problems))),
                                    ("correct", [None] * (len(rows["stage"]) - len(right)) + right)):
                    rows[key] = column
                if r >= 3:
                    state["plans"] = plans
                record.update(accuracy=sum(right) / len(right),
                              answered=sum(v is not None for v in values) / len(values))
            record["wall_seconds"] = time.perf_counter() - t0
            store.write_samples(r, rows)
            store.record_round(r, record, {f"accuracy/{record['method']}": record.get("accuracy", 0.0)})
            store.write_state({**state, "round": r})
            if "accuracy" in record:
                progress.log(f"[bold]{record['method']}[/] accuracy {record['accuracy']:.3f}  answered "
                             f"{record['answered']:.2f}")
            advance()
    log = store.rounds()
    scored = {r["method"]: r["accuracy"] for r in log if "accuracy" in r}
    summary = {"recipe": "auto-evolve", "seed": cfg.seed, "task": cfg.task, "problems": len(problems),
               "modules": log[0]["modules"], "accuracy": scored,
               "auto_evolve_by_refinement": [scored[f"auto_evolve_{k}"] for k in range(cfg.refinements + 1)],
               "answered": {r["method"]: r["answered"] for r in log if "answered" in r}, "rounds": log,
               "wall_seconds": sum(r["wall_seconds"] for r in log)}
    store.write_summary(summary)
    store.event("finished")
    return summary


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    return evolve(cfg, store, progress, cfg.open_lm(cfg.problems, cfg.seed))


def headline(summary: dict) -> str:
    a = summary["accuracy"]
    auto = summary["auto_evolve_by_refinement"]
    return (f"{summary['task']}, {summary['problems']} held-out problems: chain of thought {a['cot']:.3f}, fixed "
            f"modules {a['fixed_modules']:.3f}, Auto-Evolve {auto[0]:.3f} -> {auto[-1]:.3f} after "
            f"{len(auto) - 1} refinements")


def table(summary: dict):
    from rich.table import Table

    out = Table(title=f"Held-out accuracy ({summary['problems']} {summary['task']} problems)")
    for column in ("method", "accuracy", "answered"):
        out.add_column(column, justify="left" if column == "method" else "right")
    for method, accuracy in summary["accuracy"].items():
        out.add_row(method, f"{accuracy:.3f}", f"{summary['answered'][method]:.2f}")
    return out


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_lines

    auto = summary["auto_evolve_by_refinement"]
    a = summary["accuracy"]
    return [plot_lines(list(range(len(auto))), {"Auto-Evolve": auto, "chain of thought": [a["cot"]] * len(auto),
                                                "fixed modules": [a["fixed_modules"]] * len(auto)},
                       "Held-out accuracy by plan refinement", "refinements", "accuracy", plot_dir / "accuracy.png")]


RECIPE = Recipe(Config, run, headline, plots, table=table, run_name=lambda cfg: cfg.task)
