"""MobileSteward: a steward that splits cross-app instructions between app staff agents, against one agent
trained the same way, on a held-out PhoneSim stream.

Liu et al. (2025), "MobileSteward: Integrating Multiple App-Oriented Agents with Self-Evolution for
Automated Cross-App Instructions", arXiv:2502.16796

    round 0    one agent (Mobile-Agent-E's operator with its notetaker, no memory) learns PhoneSim by
               behavioural cloning on the scripted expert's decisions on `demo_tasks` training tasks
    round 1    a second model of the same shape, the same steps and the same tasks learns both MobileSteward
               roles: the steward's plans (app subtasks joined by the information they pass) and the staff's
               decisions on each subtask (agents/steward.py)
    rounds 2.. one per variant, each on the same stream of `tasks` held-out tasks (every template, two never
               seen in training), `update_every` at a time:
               one-agent       the round-0 agent
               steward         steward + staff, reflecting on failure by re-planning, no memory
               steward-memory  the same with task-guideline and staff-expertise memories grown from its
                               successes on the stream so far (saved to memory/steward-memory.json)

Per variant: success (all, training templates, held-out templates, by template and by batch), env actions,
model decisions and invalid actions per task, plans tried, guided plans and reassigned subtasks; every
decision to samples/round-NNN.parquet.

    selfevolve run mobilesteward --set tasks=60 --set variants=one-agent,steward-memory
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from selfevolve.agents import mobile_agent, steward
from selfevolve.agents.phone import Phone, StreamConfig, plot_success_by_batch, stream_record
from selfevolve.config import check_min, check_some_of
from selfevolve.evolve.runner import ParallelConfig, object_rows
from selfevolve.models.lm import TransformerLM
from selfevolve.models.policy import ModelChoice
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs
from selfevolve.store import RunStore, atomic_write, load_extra
from selfevolve.train.sft import Examples, TrainingConfig, make_optimizer, train_on_pools

VARIANTS = ("one-agent", "steward", "steward-memory")
MAX_SEQ_LEN = 448  # the one agent's longest prompt (a contact's screen, notes) and reply; the staff's are shorter


@dataclass
class Config(ModelChoice, StreamConfig, ParallelConfig, TrainingConfig):
    seed: int = 0
    """Seeds both models' initialisation and batches, their sampling, and which held-out tasks form the stream."""
    bc_steps: int = 1500
    """Optimizer steps of behavioural cloning, the same for both models (on the same demo tasks)."""
    variants: tuple[str, ...] = VARIANTS
    """Which agents to compare: one-agent, steward, steward-memory."""
    replans: int = 2
    """Times the steward samples a new plan after a subtask fails (before anything is committed)."""
    max_sub_steps: int = 10
    """Staff decisions per subtask before the steward calls it failed."""
    chunk_size: int = 10
    """Tasks per chunk, the unit of parallel work (backend=ray): chunk c of a batch samples with seed (batch's
    seed, c), so serial and Ray play alike."""
    temperature: float = 1.0
    """Sampling temperature of re-plans (plans and actions are otherwise greedy)."""
    max_tokens: int = 48
    """Longest reply per action (twice that per plan)."""

    n_layer: int = 3
    n_embd: int = 64
    """Model shape, both models (3 x 64, about 0.16M parameters, as Mobile-Agent-E's operator)."""
    batch_size: int = 32
    learning_rate: float = 3e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_min(self, 1, "bc_steps", "max_sub_steps", "max_tokens")
        check_min(self, 0, "replans")
        check_some_of(self, "variants", VARIANTS)
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


def demonstrations(cfg: Config, role: str) -> tuple[list[str], list[str]]:
    """(prompts, replies) of the expert on the demo tasks: the one agent's decisions, or the steward's plans
    followed by the staff's decisions."""
    tasks = list(range(cfg.demo_tasks))
    if role == "one-agent":
        played = mobile_agent.play(mobile_agent.expert, tasks, cfg.difficulty, mobile_agent.Memory())
        pairs = [(q, f"Action: {a}") for p in played for q, a in p.decisions]
    else:
        env, pairs = Phone(cfg.difficulty), steward.staff_demos(tasks, cfg.difficulty)
        for t in tasks:
            env.reset(t)
            pairs.append((steward.steward_prompt(env.instruction), steward.expert_plan(env)))
    return [q for q, _ in pairs], [a for _, a in pairs]


def clone(cfg: Config, policy, role: str, progress: Progress) -> dict:
    t0 = time.perf_counter()
    prompts, replies = demonstrations(cfg, role)
    optimizer = make_optimizer(policy.model, cfg.sft())
    loss, _ = train_on_pools(policy.model, optimizer, cfg.sft(), [Examples.encode(policy.tok, prompts, replies)],
                             [1.0], cfg.bc_steps, rngs(cfg.seed, "bc", role).torch, progress,
                             f"{role}: BC on {len(prompts)} expert examples")
    return {"round": int(role != "one-agent"), "role": role, "examples": len(prompts), "loss": loss,
            "wall_seconds": time.perf_counter() - t0}


@dataclass(frozen=True)
class Player:
    """Plays task ids with an agent as it stands (weights and memories), its sampling seeded by the chunk:
    picklable, so a Ray worker plays a chunk exactly as this process would."""

    model: torch.nn.Module
    tok: object
    variant: str
    memory: steward.StewardMemory | None
    cfg: Config

    def __call__(self, rows: np.ndarray, seed: int) -> np.ndarray:
        cfg, ids = self.cfg, [int(t) for t in rows]
        if self.variant == "one-agent":
            return mobile_agent.Player(self.model, self.tok, cfg.difficulty, mobile_agent.Memory(), 0, 1.0,
                                       cfg.max_tokens)(ids, seed)
        return object_rows(steward.play(TransformerLM(self.model, self.tok, seed=seed), ids, cfg.difficulty,
                                        self.memory, cfg.replans, cfg.max_sub_steps, cfg.temperature, cfg.max_tokens))


def play_stream(cfg: Config, variant: str, policy, tasks: list[int], memory_path: Path, progress: Progress) -> tuple[
        list, list[dict]]:
    """The stream in batches of chunks (here or on Ray workers); the memories, if the variant has them, grow
    from each batch's successes before the next."""
    memory = steward.StewardMemory() if variant == "steward-memory" else None
    episodes, batches = [], []
    with progress.task(f"{variant}: {len(tasks)} held-out tasks", len(tasks)) as advance:
        for b, start in enumerate(range(0, len(tasks), cfg.update_every)):
            ids = np.array(tasks[start:start + cfg.update_every])
            play = cfg.evaluator(Player(policy.model.eval(), policy.tok, variant, memory, cfg))
            batch = list(play(ids, int(rngs(cfg.seed, variant, b).np.integers(2**31))))
            if memory is not None:
                steward.remember(memory, batch)
                atomic_write(memory_path, memory.to_json())
            episodes += batch
            batches.append({"success": float(np.mean([e.success for e in batch])),
                            "guidelines": len(memory.guidelines) if memory else 0})
            advance(len(batch))
    return episodes, batches


def outcome(episodes: list) -> dict:
    def mean(xs) -> float:
        return float(np.mean(xs)) if len(xs) else float("nan")

    out = {"success": mean([e.success for e in episodes]), "actions": mean([len(e.steps) for e in episodes]),
           "decisions": mean([len(e.decisions) for e in episodes]),
           "invalid": mean([e.invalid if isinstance(e, steward.Episode) else len(e.failures) for e in episodes])}
    if episodes and isinstance(episodes[0], steward.Episode):
        out |= {"plans": mean([len(e.plans) for e in episodes]),
                "first_plan_right": mean([e.plans[0] == e.expert for e in episodes]),
                "guided": mean([e.guided for e in episodes]), "reassigned": mean([e.reassigned for e in episodes])}
    return out


def samples(episodes: list) -> dict[str, list]:
    """One row per model call: the steward's plans, then the staff's (or the one agent's) actions."""
    rows: dict[str, list] = {k: [] for k in ("task_id", "template", "role", "decision", "prompt", "action",
                                             "success")}
    for e in episodes:
        plans = [("steward", steward.steward_prompt(e.instruction), p) for p in getattr(e, "plans", [])]
        acts = [("staff" if plans else "agent", q, a) for q, a in e.decisions]
        for n, (role, prompt, action) in enumerate(plans + acts):
            for k, v in (("task_id", e.task_id), ("template", e.template), ("role", role), ("decision", n),
                         ("prompt", prompt), ("action", action), ("success", e.success)):
                rows[k].append(v)
    return rows


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    cfg.use_threads()
    agent, staff = cfg.load_policy(MAX_SEQ_LEN), cfg.load_policy(MAX_SEQ_LEN)
    tasks, skipped = cfg.stream()
    records = {r["round"]: r for r in store.rounds()}
    completed = store.completed_rounds()
    if 0 in completed:
        store.load_last(staff.model if 1 in completed else agent.model)
    if 1 in completed:
        load_extra(store.checkpoint_dir(1), "agent", agent.model)
    for r, (role, policy) in enumerate((("one-agent", agent), ("steward", staff))):
        if r in completed:
            continue
        records[r] = clone(cfg, policy, role, progress)
        store.record_round(r, records[r], {"loss": records[r]["loss"]})
        store.save_checkpoint(r, policy.model, policy.model.cfg.to_dict(), make_optimizer(policy.model, cfg.sft()),
                              {"round": r}, extra={"agent": agent.model} if r else None)
    done = {r["variant"]: r for r in records.values() if "variant" in r}
    for r, variant in enumerate(cfg.variants, start=2):
        if variant in done:
            continue
        t0, policy = time.perf_counter(), agent if variant == "one-agent" else staff
        memory_path = store.path / "memory" / f"{variant}.json"
        episodes, batches = play_stream(cfg, variant, policy, tasks, memory_path, progress)
        store.write_samples(r, samples(episodes))
        mobile_agent.keep_example(store.path, variant, episodes, cfg.difficulty)
        record = {"round": r, **stream_record(variant, episodes, outcome, batches, t0)}
        store.record_round(r, record, {"success": record["success"], "actions": record["actions"]})
        progress.log(f"[bold]{variant}[/]  success {record['success']:.3f}  (held-out templates "
                     f"{record['held_out_templates']['success']:.3f})  actions {record['actions']:.1f}")
        done[variant] = record
    variants = [done[v] for v in cfg.variants]
    summary = {"recipe": "mobilesteward", "seed": cfg.seed, "tasks": cfg.tasks, "eval_split": cfg.eval_split,
               "same_as_a_training_task_skipped": skipped, "bc": [records[0], records[1]], "variants": variants,
               "wall_seconds": sum(r["wall_seconds"] for r in [records[0], records[1], *variants])}
    store.write_summary(summary)
    store.event("finished")
    return summary


def headline(summary: dict) -> str:
    parts = [f"{r['variant']} {r['success']:.2f}" for r in summary["variants"]]
    return f"MobileSteward on {summary['tasks']} held-out PhoneSim tasks: success {', '.join(parts)}"


def table(summary: dict):
    from rich.table import Table

    templates = sorted(summary["variants"][0]["by_template"])
    t = Table(title="held-out stream: success, and mean actions, decisions and invalid actions per task")
    for col in ("agent", "success", "seen templates", "held-out templates", "actions", "decisions", "invalid",
                *templates):
        t.add_column(col, justify="right")
    for r in summary["variants"]:
        t.add_row(r["variant"], f"{r['success']:.3f}", f"{r['seen_templates']['success']:.3f}",
                  f"{r['held_out_templates']['success']:.3f}", f"{r['actions']:.1f}", f"{r['decisions']:.1f}",
                  f"{r['invalid']:.1f}", *[f"{r['by_template'][x]:.2f}" for x in templates])
    return t


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    return [*plot_success_by_batch(summary, plot_dir, "Success per batch of the held-out stream (memories grow "
                                   "between batches)"),
            *mobile_agent.draw_example(plot_dir.parent, summary["variants"][-1]["variant"])]


RECIPE = Recipe(Config, run, headline, plots, table=table, policy=lambda cfg: cfg.load_policy(MAX_SEQ_LEN))
