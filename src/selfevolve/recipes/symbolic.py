"""Agent symbolic learning (Zhou et al. 2024): a pipeline of prompt nodes trained by language losses and
gradients, the language model as its own optimiser (search/symbolic.py has the prompts).

    round 0        the unoptimised pipeline on the dev problems
    rounds 1..S    one step each: the pipeline runs on `batch` new training problems; each wrong answer
                   gets a language loss, then language gradients from the last node back; every node's
                   instruction is rewritten from its gradients; the new pipeline is scored on dev, and
                   the best on dev so far is kept (a step with no wrong answer changes nothing)
    round S+1      the unoptimised and the best pipeline on the held-out test problems

    selfevolve run symbolic --set task=lookup --set steps=6 --set base_url=http://127.0.0.1:8000/v1

Task families with a verifier: wordmath and wordmath-hard (problems in words) and lookup (the value of
a key among generated facts); a reply's answer is the number after its last "Answer:". Every call is
logged in samples/round-NNN.parquet, so a run can be audited and replayed (`ReplayLM`).
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
from selfevolve.search.reasoning_modules import stated_answer
from selfevolve.search.symbolic import (
    Node,
    default_pipeline,
    gradient_prompt,
    loss_prompt,
    node_input,
    node_prompt,
    parse_instruction,
    update_prompt,
)
from selfevolve.store import RunStore
from selfevolve.tasks import get_task
from selfevolve.tasks.base import Problem, held_out_split
from selfevolve.tasks.wordmath import same_number

TASKS = ("wordmath", "wordmath-hard", "lookup")


@dataclass
class Config(LMChoice):
    seed: int = 0
    """Seeds the problems and the model's sampling."""
    task: str = "wordmath"
    """wordmath, wordmath-hard or lookup."""
    difficulty: int = 2
    """Steps per word problem; chunks of four facts per lookup document."""
    steps: int = 4
    """Optimiser steps."""
    batch: int = 4
    """Training problems per step."""
    dev_problems: int = 20
    """Problems the pipeline is chosen on after every step."""
    problems: int = 40
    """Held-out test problems (read once, at the end)."""
    temperature: float = 0.0
    """Sampling temperature of every call (0: greedy)."""
    max_tokens: int = 200
    """Most tokens per reply."""

    def __post_init__(self) -> None:
        check_one_of(self, "task", TASKS)
        check_min(self, 1, "difficulty", "steps", "batch", "dev_problems", "problems")
        check_min(self, 0, "seed")
        self.check_lm()


def question(p: Problem) -> str:
    if "question" in p.fields:
        return p.fields["question"]
    document, key = p.prompt.removesuffix("?>").split("|")
    return f"Facts: {document.replace('/', ';')}. What is the value of {key}?"


def gold(p: Problem) -> float:
    return float(p.fields["value"]) if "value" in p.fields else float(p.answer)


def splits(cfg: Config) -> tuple[list[Problem], list[Problem], list[Problem]]:
    """Training, dev and test problems, no prompt in two of them."""
    task = get_task(cfg.task)
    train = task.sample(cfg.steps * cfg.batch, cfg.difficulty, rngs(cfg.seed, "train").np)
    seen = {p.prompt for p in train}
    test, _ = held_out_split(task, cfg.problems, cfg.difficulty, cfg.seed, "test", seen)
    dev, _ = held_out_split(task, cfg.dev_problems, cfg.difficulty, cfg.seed, "dev", seen)
    return train, dev, test


class Agent:
    """The pipeline's forward, loss, backward and update, each one batched call per node."""

    def __init__(self, lm, cfg: Config) -> None:
        self.lm, self.cfg = lm, cfg

    def ask(self, rows: dict, r: int, stage: str, conversations: list[list[dict]]) -> list[str]:
        if not conversations:
            return []
        return logged_stage(self.lm, rows, stage, conversations, rngs(self.cfg.seed, "lm", r, stage).torch,
                            self.cfg.temperature, self.cfg.max_tokens)

    def forward(self, pipeline: list[Node], problems: list[Problem], rows: dict, r: int, stage: str):
        """Every node's output for every problem, and whether each final answer is right."""
        outputs: list[list[str]] = [[] for _ in problems]
        for k in range(len(pipeline)):
            replies = self.ask(rows, r, f"{stage}/{pipeline[k].name}",
                               [node_prompt(pipeline, k, question(p), out) for p, out in zip(problems, outputs,
                                                                                              strict=True)])
            for out, reply in zip(outputs, replies, strict=True):
                out.append(reply)
        answers = [stated_answer(out[-1]) for out in outputs]
        right = [same_number(a, gold(p)) for a, p in zip(answers, problems, strict=True)]
        return outputs, answers, right

    def step(self, pipeline: list[Node], problems: list[Problem], rows: dict, r: int) -> tuple[list[Node], dict]:
        """One training step: forward, language loss, backward, update."""
        outputs, answers, right = self.forward(pipeline, problems, rows, r, "forward")
        wrong = [i for i, ok in enumerate(right) if not ok]
        feedback = self.ask(rows, r, "loss", [loss_prompt(pipeline, question(problems[i]), outputs[i], answers[i],
                                                          gold(problems[i])) for i in wrong])
        gradients: list[list[str]] = [[] for _ in pipeline]
        for k in reversed(range(len(pipeline))):  # each node's gradient reads the one after it
            feedback = self.ask(rows, r, f"gradient/{pipeline[k].name}", [
                gradient_prompt(pipeline[k], node_input(pipeline, k, question(problems[i]), outputs[i]),
                                outputs[i][k], f) for i, f in zip(wrong, feedback, strict=True)])
            gradients[k] = feedback
        new = pipeline
        if wrong:
            replies = self.ask(rows, r, "update", [update_prompt(n, g) for n, g in zip(pipeline, gradients,
                                                                                        strict=True)])
            new = [Node(n.name, parse_instruction(t, n.instruction)) for n, t in zip(pipeline, replies, strict=True)]
        return new, {"train_accuracy": sum(right) / len(right), "wrong": len(wrong),
                     "gradients": [g[:1] for g in gradients]}


def nodes(rows: list[list[str]]) -> list[Node]:
    return [Node(name, instruction) for name, instruction in rows]


def evolve(cfg: Config, store: RunStore, progress: Progress, lm) -> dict:
    """The rounds, with the model given (a ScriptedLM in tests)."""
    train, dev, test = splits(cfg)
    agent = Agent(lm, cfg)
    initial = default_pipeline()
    state = store.read_state("pipelines") or {"round": -1, "pipeline": [], "best": [], "best_dev": -1.0}
    pipeline, best = nodes(state["pipeline"]) or initial, nodes(state["best"]) or initial
    last = cfg.steps + 1

    def accuracy(p: list[Node], problems: list[Problem], rows: dict, r: int, stage: str) -> float:
        right = agent.forward(p, problems, rows, r, stage)[2]
        return sum(right) / len(right)

    with progress.task("symbolic learning: steps scored on dev, then test", last + 1, state["round"] + 1) as advance:
        for r in range(state["round"] + 1, last + 1):
            t0, rows, record = time.perf_counter(), {}, {"round": r}
            if r == 0:
                record["dev_accuracy"] = accuracy(pipeline, dev, rows, r, "dev")
                state["best_dev"] = record["dev_accuracy"]
            elif r < last:
                pipeline, info = agent.step(pipeline, train[(r - 1) * cfg.batch:r * cfg.batch], rows, r)
                record.update(info, dev_accuracy=accuracy(pipeline, dev, rows, r, "dev"))
                if record["dev_accuracy"] > state["best_dev"]:
                    best, state["best_dev"] = pipeline, record["dev_accuracy"]
            else:
                record["test_accuracy"] = {"initial": accuracy(initial, test, rows, r, "test/initial"),
                                           "optimised": accuracy(best, test, rows, r, "test/optimised")}
            record.update(pipeline=[[n.name, n.instruction] for n in pipeline], lm_calls=len(rows.get("stage", [])),
                          wall_seconds=time.perf_counter() - t0)
            if rows:
                store.write_samples(r, rows)
            store.record_round(r, record, {"dev_accuracy": record.get("dev_accuracy", 0.0)})
            state.update(round=r, pipeline=record["pipeline"], best=[[n.name, n.instruction] for n in best])
            store.write_state(state)
            progress.log(f"[bold]round {r}[/] " + (f"dev {record['dev_accuracy']:.3f}" if "dev_accuracy" in record
                                                   else f"test {record['test_accuracy']}"))
            advance()
    log = store.rounds()
    summary = {"recipe": "symbolic", "seed": cfg.seed, "task": cfg.task, "problems": len(test),
               "dev_problems": len(dev), "dev_by_step": [r["dev_accuracy"] for r in log[:-1]],
               "best_dev": state["best_dev"], "test_accuracy": log[-1]["test_accuracy"],
               "initial_pipeline": [[n.name, n.instruction] for n in initial], "best_pipeline": state["best"],
               "lm_calls": sum(r["lm_calls"] for r in log), "rounds": log,
               "wall_seconds": sum(r["wall_seconds"] for r in log)}
    store.write_summary(summary)
    store.event("finished")
    return summary


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    return evolve(cfg, store, progress, cfg.open_lm(max(cfg.problems, cfg.dev_problems), cfg.seed))


def headline(summary: dict) -> str:
    t = summary["test_accuracy"]
    return (f"{summary['task']}, {summary['problems']} held-out problems: unoptimised pipeline {t['initial']:.3f}, "
            f"optimised (best on dev of {len(summary['dev_by_step']) - 1} steps) {t['optimised']:.3f}; "
            f"{summary['lm_calls']} model calls")


def table(summary: dict):
    from rich.table import Table

    out = Table(title=f"Pipelines ({summary['task']}): instructions and held-out accuracy")
    for column in ("pipeline", "node", "instruction"):
        out.add_column(column)
    t = summary["test_accuracy"]
    for label, rows in ((f"initial {t['initial']:.3f}", summary["initial_pipeline"]),
                        (f"optimised {t['optimised']:.3f}", summary["best_pipeline"])):
        for name, instruction in rows:
            out.add_row(label, name, instruction)
            label = ""
    return out


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_lines

    dev = summary["dev_by_step"]
    return [plot_lines(list(range(len(dev))), {"dev accuracy": dev}, "Dev accuracy after each optimiser step",
                       "step", "accuracy", plot_dir / "dev_accuracy.png",
                       hline=(summary["test_accuracy"]["optimised"], "test, best on dev"))]


RECIPE = Recipe(Config, run, headline, plots, table=table, run_name=lambda cfg: cfg.task)
