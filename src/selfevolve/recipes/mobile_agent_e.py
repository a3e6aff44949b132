"""Mobile-Agent-E: a phone agent that improves over a stream of tasks from its own tips and shortcuts.

Wang et al. (2025), "Mobile-Agent-E: Hierarchical Multi-Agent Framework for Self-Evolving Mobile
Assistant", arXiv:2501.11733

    round 0    the operator (a tiny policy, or an HF model) learns PhoneSim by behavioural cloning on the
               scripted expert's decisions on `demo_tasks` training tasks (training templates only)
    rounds 1.. one per memory variant, each on the same stream of `tasks` held-out tasks (every template,
               two never seen in training), `update_every` at a time; after each batch the reflectors
               update the variant's memory from every episode of the stream so far:
               none       no memory
               tips       tips in words, and the guards they stand for, from recurring invalid actions
               shortcuts  at most one new shortcut per finished task, mined from the successful episodes
               both       tips and shortcuts (Mobile-Agent-E)

The agent (operator, rule-based notetaker, guards, shortcut runs) is agents/mobile_agent.py. Per variant:
success, mean actions and mean operator decisions, by template and by batch of the stream; every decision
to samples/round-NNN.parquet, and each variant's memory to memory/VARIANT.json after every batch.

    selfevolve run mobile-agent-e --set tasks=60 --set variants=none,both
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfevolve.agents.mobile_agent import (
    Memory,
    Played,
    Player,
    draw_example,
    expert,
    keep_example,
    lm_operator,
    play,
)
from selfevolve.agents.phone import StreamConfig, plot_success_by_batch, stream_record
from selfevolve.config import check_min, check_some_of
from selfevolve.evolve.runner import ParallelConfig
from selfevolve.models.lm import TransformerLM
from selfevolve.models.policy import ModelChoice
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs
from selfevolve.store import RunStore, atomic_write
from selfevolve.train.sft import Examples, TrainingConfig, make_optimizer, train_on_pools

VARIANTS = ("none", "tips", "shortcuts", "both")
MAX_SEQ_LEN = 448  # the longest prompt (a contact's screen with notes) plus a reply, with room


@dataclass
class Config(ModelChoice, StreamConfig, ParallelConfig, TrainingConfig):
    seed: int = 0
    """Seeds the operator's initialisation and batches, its sampling, and which held-out tasks form the stream."""
    bc_steps: int = 2500
    """Optimizer steps of behavioural cloning (2500 at lr 3e-3: success 0.25 on the dev stream)."""
    variants: tuple[str, ...] = VARIANTS
    """Which memories to compare: none, tips, shortcuts, both."""
    min_support: int = 3
    """A shortcut's actions must recur in this many successful episodes."""
    min_confidence: float = 0.9
    """...and follow their first action at least this share of the times it was taken from that screen."""
    min_failures: int = 3
    """A (screen, verb) becomes a tip after this many invalid actions."""
    resamples: int = 3
    """Times a guarded action that cannot work is sampled again."""
    temperature: float = 1.0
    """Sampling temperature of those resamples (decisions are greedy)."""
    max_tokens: int = 40
    """Longest reply per decision (the expert's longest, "Action: type f-dest 12 river lane", fits)."""
    chunk_size: int = 0
    """Tasks per chunk of a batch, the unit of parallel work (backend=ray); 0 = each batch here, by one
    operator whose sampling runs on across batches (as the README's figures were measured)."""

    n_layer: int = 3
    n_embd: int = 64
    """Operator shape (3 x 64, about 0.16M parameters: 4 x 96 costs six times as much per step)."""
    batch_size: int = 32
    learning_rate: float = 3e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_min(self, 1, "bc_steps", "min_support", "min_failures", "max_tokens")
        check_min(self, 0, "resamples")
        if not 0 <= self.min_confidence <= 1 or self.temperature <= 0:
            raise ValueError(f"min_confidence must be in [0, 1] and temperature > 0, got {self.min_confidence}, "
                             f"{self.temperature}")
        check_some_of(self, "variants", VARIANTS)


def behavioural_cloning(cfg: Config, policy, progress: Progress) -> dict:
    """Fine-tune the operator on every decision of the expert's demonstrations (with the notes it kept)."""
    demos = play(expert, list(range(cfg.demo_tasks)), cfg.difficulty, Memory())
    decisions = [d for p in demos for d in p.decisions]
    data = Examples.encode(policy.tok, [q for q, _ in decisions], [f"Action: {a}" for _, a in decisions])
    optimizer = make_optimizer(policy.model, cfg.sft())
    loss, _ = train_on_pools(policy.model, optimizer, cfg.sft(), [data], [1.0], cfg.bc_steps,
                             rngs(cfg.seed, "bc").torch, progress, f"BC on {len(decisions)} expert decisions")
    return {"round": 0, "decisions": len(decisions), "loss": loss, "optimizer": optimizer}


def play_stream(cfg: Config, variant: str, policy, tasks: list[int], memory_path: Path,
                progress: Progress) -> tuple[list[Played], list[dict]]:
    """The stream in batches, the variant's memory updated after each and written to memory_path. A batch
    is played here by one operator whose sampling runs on across batches (chunk_size 0), or in chunks
    seeded by (batch, chunk) here or on Ray workers."""
    memory, played, batches = Memory(), [], []
    operator = lm_operator(TransformerLM(policy.model.eval(), policy.tok, seed=int(rngs(cfg.seed, variant)
                                                                                   .np.integers(2**31))),
                           cfg.max_tokens)
    with progress.task(f"{variant}: {len(tasks)} held-out tasks", len(tasks)) as advance:
        for b, start in enumerate(range(0, len(tasks), cfg.update_every)):
            ids = tasks[start:start + cfg.update_every]
            if cfg.chunk_size:
                player = Player(policy.model, policy.tok, cfg.difficulty, memory, cfg.resamples, cfg.temperature,
                                cfg.max_tokens)
                batch = list(cfg.evaluator(player)(ids, int(rngs(cfg.seed, variant, b).np.integers(2**31))))
            else:
                batch = play(operator, ids, cfg.difficulty, memory, cfg.resamples, cfg.temperature)
            played += batch
            memory.learn(played, len(batch), variant in ("tips", "both"), variant in ("shortcuts", "both"),
                         cfg.min_support, cfg.min_failures, cfg.min_confidence)
            atomic_write(memory_path, memory.to_json())
            batches.append({"success": float(np.mean([p.success for p in batch])),
                            "shortcuts": len(memory.shortcuts), "tips": len(memory.tips)})
            advance(len(batch))
    return played, batches


def outcome(played: list[Played]) -> dict:
    def mean(xs) -> float:
        return float(np.mean(xs)) if len(xs) else float("nan")

    return {"success": mean([p.success for p in played]), "actions": mean([len(p.steps) for p in played]),
            "decisions": mean([len(p.decisions) for p in played]),
            "invalid": mean([len(p.failures) for p in played]),
            "shortcut_runs": mean([p.shortcut_runs for p in played]), "resampled": mean([p.resampled for p in played])}


def samples(played: list[Played]) -> dict[str, list]:
    rows: dict[str, list] = {k: [] for k in ("task_id", "template", "decision", "prompt", "action", "success")}
    for p in played:
        for n, (prompt, action) in enumerate(p.decisions):
            for k, v in (("task_id", p.task_id), ("template", p.template), ("decision", n), ("prompt", prompt),
                         ("action", action), ("success", p.success)):
                rows[k].append(v)
    return rows


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    cfg.use_threads()
    policy = cfg.load_policy(MAX_SEQ_LEN)
    tasks, skipped = cfg.stream()
    done = {r["variant"]: r for r in store.rounds() if "variant" in r}
    if 0 in store.completed_rounds():
        store.load_last(policy.model)
        bc = next(r for r in store.rounds() if r["round"] == 0)
    else:
        t0 = time.perf_counter()
        bc = behavioural_cloning(cfg, policy, progress)
        optimizer = bc.pop("optimizer")
        bc["wall_seconds"] = time.perf_counter() - t0
        store.record_round(0, bc, {"loss": bc["loss"]})
        store.save_checkpoint(0, policy.model, policy.model.cfg.to_dict(), optimizer, {"round": 0})
    for r, variant in enumerate(cfg.variants, start=1):
        if variant in done:
            continue
        t0 = time.perf_counter()
        played, batches = play_stream(cfg, variant, policy, tasks, store.path / "memory" / f"{variant}.json",
                                      progress)
        store.write_samples(r, samples(played))
        keep_example(store.path, variant, played, cfg.difficulty)
        record = {"round": r, **stream_record(variant, played, outcome, batches, t0)}
        store.record_round(r, record, {"success": record["success"], "decisions": record["decisions"]})
        progress.log(f"[bold]{variant}[/]  success {record['success']:.3f}  actions {record['actions']:.1f}  "
                     f"decisions {record['decisions']:.1f}  shortcuts {batches[-1]['shortcuts']}  "
                     f"tips {batches[-1]['tips']}")
        done[variant] = record
    records = [done[v] for v in cfg.variants]
    summary = {"recipe": "mobile-agent-e", "seed": cfg.seed, "tasks": cfg.tasks, "eval_split": cfg.eval_split,
               "same_as_a_training_task_skipped": skipped, "bc": bc, "variants": records,
               "wall_seconds": bc["wall_seconds"] + sum(r["wall_seconds"] for r in records)}
    store.write_summary(summary)
    store.event("finished")
    return summary


def headline(summary: dict) -> str:
    parts = [f"{r['variant']} {r['success']:.2f} ({r['decisions']:.1f} decisions)" for r in summary["variants"]]
    return f"Mobile-Agent-E on {summary['tasks']} held-out PhoneSim tasks: success {', '.join(parts)}"


def table(summary: dict):
    from rich.table import Table

    templates = sorted(summary["variants"][0]["by_template"])
    t = Table(title="held-out stream: success, mean actions and operator decisions per task")
    for col in ("memory", "success", "seen templates", "actions", "decisions", "invalid", "shortcut runs",
                *templates):
        t.add_column(col, justify="right")
    for r in summary["variants"]:
        t.add_row(r["variant"], f"{r['success']:.3f}", f"{r['seen_templates']['success']:.3f}",
                  f"{r['actions']:.1f}", f"{r['decisions']:.1f}", f"{r['invalid']:.1f}", f"{r['shortcut_runs']:.1f}",
                  *[f"{r['by_template'][x]:.2f}" for x in templates])
    return t


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    return [*plot_success_by_batch(summary, plot_dir, "Success per batch of the held-out stream (memory grows "
                                   "between batches)"),
            *draw_example(plot_dir.parent, summary["variants"][-1]["variant"])]


RECIPE = Recipe(Config, run, headline, plots, table=table, policy=lambda cfg: cfg.load_policy(MAX_SEQ_LEN))
