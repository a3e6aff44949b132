"""WebRL: a web agent trained by online RL on a curriculum it writes from its own failures.

Qi et al. (2024), "WebRL: Training LLM Web Agents via Self-Evolving Online Curriculum Reinforcement
Learning", arXiv:2411.02337; the interface ablation from Liu et al. (2024), "AutoGLM", arXiv:2411.00820

    round 0    behavioural cloning of the actor (tiny, or an HF model) on the scripted expert's
               `demo_tasks` training tasks (difficulties 0-2, training templates)
    round 1    phase 1, shared by every variant: the actor plays `tasks_per_phase` training tasks, and the
               outcome reward model (agents/orm.py) learns from their verified outcomes
    rounds 2.. one per variant, from the BC actor, `phases` phases of `tasks_per_phase` episodes each:
               webrl            the ORM judges (no verifier after phase 1); tasks from the curriculum
                                (agents/curriculum.py); the update regresses beta log(pi/pi_old) on the advantage
                                (judged outcome - critic value of template and difficulty) over this phase's actions
                                and replayed earlier successes whose confidence is in [replay_low, replay_high]
               filtered-bc      AgentEvol's: base tasks, cloning demonstrations + the verifier's successes
               fixed-tasks      webrl on base tasks (no curriculum)
               no-kl            webrl, its update cloning every judged success so far (no demonstrations)
               no-replay-filter webrl replaying every earlier judged success
               bc-continued     base tasks, cloning the demonstrations alone (filtered-bc without its successes)
               verifier-reward  webrl judged by the verifier instead of the ORM

After each phase the actor is scored greedily on `eval_tasks` held-out tasks (difficulties 0-2, all
templates, `team` never trained on). `interface`: AutoGLM's semantic actions + grounder, or raw indices.

    selfevolve run webrl --set variants=webrl,filtered-bc --set phases=3
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from selfevolve.agents.curriculum import Critic, TaskWriter, evolve
from selfevolve.agents.env import DEV, HELD_OUT
from selfevolve.agents.orm import agreement, judge, train_orm
from selfevolve.agents.web_agent import (
    INTERFACES,
    Player,
    WebEpisode,
    WebTask,
    base_tasks,
    draw_example,
    outcome,
    play,
    step_examples,
    step_table,
)
from selfevolve.config import check_min, check_one_of, check_some_of
from selfevolve.evolve.runner import ParallelConfig
from selfevolve.models.policy import TINY, ModelChoice, load_policy
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs
from selfevolve.store import RunStore, load_extra
from selfevolve.tasks.base import SPLITS
from selfevolve.train.rl import confidence, kl_regression_update
from selfevolve.train.sft import Examples, TrainingConfig, make_optimizer, train_on_pools

VARIANTS = ("webrl", "filtered-bc", "fixed-tasks", "no-kl", "no-replay-filter", "bc-continued", "verifier-reward")
CLONING = ("filtered-bc", "no-kl", "bc-continued")  # the variants whose update is behavioural cloning
VERIFIED = ("filtered-bc", "bc-continued", "verifier-reward")  # the variants the verifier judges, not the ORM
MAX_SEQ_LEN = 480  # the longest prompt (366 characters + three actions of at most 24) and a reply
ORM_SEQ_LEN = 512  # the ORM's prompt adds the final action and the step count
CURRICULUM_IDS = (500_000, HELD_OUT)  # training ids the curriculum's new sites come from


@dataclass
class Config(ModelChoice, ParallelConfig, TrainingConfig):
    seed: int = 0
    """Seeds the actor and ORM, their batches, the rollouts and which held-out tasks are scored."""
    interface: str = "semantic"
    """semantic (name the element, a grounder finds it) or index (answer with its number): AutoGLM's ablation."""
    variants: tuple[str, ...] = ("webrl", "filtered-bc")
    """Which to run: webrl, filtered-bc, fixed-tasks, no-kl, no-replay-filter, bc-continued, verifier-reward."""
    demo_tasks: int = 600
    """Training tasks with the expert's demonstration (ids 0 .. demo_tasks-1)."""
    bc_steps: int = 1500
    """Optimizer steps of behavioural cloning."""
    phases: int = 3
    """Phases of rollouts and updates per variant (phase 1 shared)."""
    tasks_per_phase: int = 96
    """Episodes per phase (the same for every variant: equal environment budgets)."""
    eval_tasks: int = 90
    """Held-out tasks scored after every phase (a third at each difficulty 0, 1, 2)."""
    eval_split: str = "test"
    """test (what results report) or dev (for choosing settings)."""
    max_steps: int = 12
    """Actions per episode before it is cut off (the expert needs at most 6 on training templates)."""
    temperature: float = 0.7
    """Sampling temperature of the rollouts (held-out scoring is greedy)."""
    max_difficulty: int = 3
    """The hardest site the curriculum may write."""
    band_low: float = 0.05
    band_high: float = 0.75
    """The curriculum keeps a new task when the critic's value of its (template, difficulty) is in this band."""
    orm_steps: int = 200
    """Optimizer steps of the ORM on phase 1's verified episodes."""
    update_steps: int = 100
    """Optimizer steps of each phase's actor update (the same for every variant)."""
    update_lr: float = 1e-3
    """Peak learning rate of the actor updates."""
    beta: float = 0.5
    """KL coefficient of WebRL's update: beta log(pi / pi_old) is regressed on the advantage."""
    replay_low: float = 0.5
    replay_high: float = 0.95
    """Replayed actions are kept when the actor's confidence (1 / perplexity) is in this band."""
    max_tokens: int = 24
    """Longest reply (the expert's longest, "click previous page", fits)."""
    chunk_size: int = 0
    """Tasks per rollout chunk, the unit of parallel work (backend=ray); 0 = all tasks in one batch here,
    sampled with the phase's seed (as the README's figures were measured)."""

    n_layer: int = 3
    n_embd: int = 64
    """Actor and ORM shape (3 x 64, about 0.16M parameters each)."""
    batch_size: int = 32
    learning_rate: float = 3e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_min(self, 1, "demo_tasks", "bc_steps", "phases", "tasks_per_phase", "eval_tasks", "max_steps",
                  "orm_steps", "update_steps", "max_tokens")
        check_min(self, 0, "max_difficulty")
        check_one_of(self, "interface", INTERFACES)
        check_one_of(self, "eval_split", SPLITS)
        check_some_of(self, "variants", VARIANTS)
        if not (0 <= self.band_low <= self.band_high <= 1 and 0 <= self.replay_low <= self.replay_high <= 1):
            raise ValueError("band_low <= band_high and replay_low <= replay_high must lie in [0, 1]")
        if self.beta <= 0 or self.update_lr <= 0 or self.temperature <= 0:
            raise ValueError("beta, update_lr and temperature must be > 0")
        if self.demo_tasks + self.phases * self.tasks_per_phase > CURRICULUM_IDS[0]:
            raise ValueError(f"demo_tasks + phases x tasks_per_phase must stay below {CURRICULUM_IDS[0]}")


def cloning(policy, cfg: Config, episodes: list[WebEpisode], steps: int, lr: float, seed, progress: Progress,
            title: str) -> float:
    """Behavioural cloning of the episodes' actions at this learning rate; the last loss."""
    sft = replace(cfg.sft(), learning_rate=lr)
    return train_on_pools(policy.model, make_optimizer(policy.model, sft), sft, [step_examples(policy.tok, episodes)],
                          [1.0], steps, rngs(cfg.seed, *seed).torch, progress, title)[0]


def rollouts(policy, cfg: Config, tasks: list[WebTask], temperature: float, seed) -> list[WebEpisode]:
    """Every task played to its end, in chunks here or on Ray workers (backend, chunk_size)."""
    player = Player(policy.model.eval(), policy.tok, cfg.interface, cfg.max_steps, cfg.max_tokens, temperature)
    return list(cfg.evaluator(player)(tasks, int(rngs(cfg.seed, *seed).np.integers(2**31))))


def score(policy, cfg: Config) -> dict:
    """Greedy success on the held-out tasks the seed picks (all, training templates, by difficulty)."""
    first = (DEV if cfg.eval_split == "dev" else HELD_OUT) + cfg.seed * 10_000
    return outcome(rollouts(policy, cfg, base_tasks(first, cfg.eval_tasks), 0.0, ("eval",)))


def webrl_update(policy, cfg: Config, variant: str, phase: int, episodes: list[WebEpisode], labels: list[bool],
                 critic: Critic, replay: list[tuple[WebEpisode, float]], progress: Progress) -> dict:
    """WebRL's actor update on this phase's actions and the (filtered) replay buffer of earlier judged
    successes; then this phase's judged successes join the buffer. An action's advantage is its episode's
    judged outcome minus the critic's value of the task's template and difficulty."""
    adv = [float(y) - critic.value(ep.template, ep.task.difficulty) for ep, y in zip(episodes, labels, strict=True)]
    parts = [step_examples(policy.tok, episodes)]
    advantages = [a for ep, a in zip(episodes, adv, strict=True) for _ in ep.actions]
    replayed = step_examples(policy.tok, [ep for ep, _ in replay]) if replay else None
    keep = torch.ones(len(replayed) if replay else 0, dtype=torch.bool)
    if replay and variant != "no-replay-filter":
        c = confidence(policy, replayed)
        keep = (c >= cfg.replay_low) & (c <= cfg.replay_high)
    if keep.any():
        parts.append(replayed.select(keep))
        advantages += torch.tensor([a for ep, a in replay for _ in ep.actions])[keep].tolist()
    data = Examples.concat(parts)
    sft = replace(cfg.sft(), learning_rate=cfg.update_lr)
    loss = kl_regression_update(policy, data, torch.tensor(advantages, dtype=torch.float32), cfg.beta,
                                cfg.update_steps, sft, rngs(cfg.seed, variant, phase).torch, progress,
                                f"{variant} phase {phase}: KL-regression on {len(data)} actions")
    replay += [(ep, a) for ep, a, y in zip(episodes, adv, labels, strict=True) if y]
    return {"loss": loss, "replay_kept": int(keep.sum()), "replay_size": len(keep)}


def run_variant(cfg: Config, variant: str, policy, orm, first: list[WebEpisode], demos: list[WebEpisode],
                progress: Progress) -> tuple[dict, dict[str, list]]:
    """One variant's phases from the BC actor; returns its record and its actions' table."""
    critic, replay, kept, writer = Critic(), [], [], TaskWriter(*CURRICULUM_IDS)
    curriculum = variant not in ("filtered-bc", "fixed-tasks", "bc-continued")
    phases, played, env_steps, episodes, tasks = [], [], 0, first, []
    for phase in range(1, cfg.phases + 1):
        t0 = time.perf_counter()
        if phase > 1:
            episodes = rollouts(policy, cfg, tasks, cfg.temperature, (variant, phase))
        truth, judged = [ep.success for ep in episodes], phase > 1 and variant not in VERIFIED
        labels = judge(orm, episodes) if judged else truth
        for ep, y in zip(episodes, labels, strict=True):
            critic.add(ep.template, ep.task.difficulty, y)
        env_steps += sum(ep.steps for ep in episodes)
        if variant in CLONING:
            kept += [ep for ep, y in zip(episodes, labels, strict=True) if y and variant != "bc-continued"]
            data = (demos if variant != "no-kl" else []) + kept  # no-kl: webrl's data, cloned
            update = {"loss": cloning(policy, cfg, data, cfg.update_steps, cfg.update_lr, (variant, phase), progress,
                                      f"{variant} phase {phase}: BC on {len(data)} episodes") if data else None}
        else:
            update = webrl_update(policy, cfg, variant, phase, episodes, labels, critic, replay, progress)
        failed = [(ep.template, ep.task) for ep, y in zip(episodes, labels, strict=True) if not y and curriculum]
        new, written = evolve(failed, critic, writer, cfg.tasks_per_phase, cfg.band_low, cfg.band_high,
                              cfg.max_difficulty)
        tasks = new + base_tasks(cfg.demo_tasks + phase * cfg.tasks_per_phase, cfg.tasks_per_phase - len(new))
        p = {"phase": phase, "env_steps": env_steps, "held_out": score(policy, cfg),
             "rollout_success": float(np.mean(truth)), "orm": agreement(labels, truth) if judged else None,
             "difficulty": float(np.mean([ep.task.difficulty for ep in episodes])), **update, "curriculum": written,
             "wall_seconds": time.perf_counter() - t0}
        phases.append(p)
        progress.log(f"[bold]{variant}[/] phase {phase}: held-out {p['held_out']['success']:.3f}  rollouts "
                     f"{p['rollout_success']:.2f} at difficulty {p['difficulty']:.1f}  ORM vs verifier {p['orm']}")
        played += [(ep, y, phase) for ep, y in zip(episodes, labels, strict=True)]
    return {"variant": variant, "phases": phases, "held_out": [p["held_out"]["success"] for p in phases],
            "wall_seconds": sum(p["wall_seconds"] for p in phases)}, step_table(*map(list, zip(*played, strict=True)))


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    cfg.use_threads()
    policy = cfg.load_policy(MAX_SEQ_LEN)
    orm = load_policy(TINY, cfg.seed, ORM_SEQ_LEN, cfg.n_layer, cfg.n_head, cfg.n_embd)
    demos = play(None, base_tasks(0, cfg.demo_tasks), cfg.interface, cfg.max_steps)
    completed, records = store.completed_rounds(), {r["round"]: r for r in store.rounds()}
    if 0 in completed:
        store.load_last(policy.model)
        bc = records[0]
    else:
        t0 = time.perf_counter()
        loss = cloning(policy, cfg, demos, cfg.bc_steps, cfg.learning_rate, ("bc",), progress,
                       f"BC on {sum(ep.steps for ep in demos)} expert actions")
        bc = {"round": 0, "loss": loss, "held_out": score(policy, cfg), "wall_seconds": time.perf_counter() - t0}
        store.record_round(0, bc, {"loss": loss, "held_out": bc["held_out"]["success"]})
        store.save_checkpoint(0, policy.model, policy.model.cfg.to_dict(), make_optimizer(policy.model, cfg.sft()),
                              {"round": 0})
    t0, base = time.perf_counter(), base_tasks(cfg.demo_tasks, cfg.tasks_per_phase)
    first = rollouts(policy, cfg, base, cfg.temperature, ("phase", 1))
    if 1 in completed:
        load_extra(store.checkpoint_dir(1), "orm", orm.model)
        shared = records[1]
    else:
        truth = [ep.success for ep in first]
        loss = train_orm(orm, first, truth, cfg.sft(), cfg.orm_steps, rngs(cfg.seed, "orm").torch, progress)
        shared = {"round": 1, "orm_loss": loss, "rollout_success": float(np.mean(truth)),
                  "wall_seconds": time.perf_counter() - t0}
        store.write_samples(1, step_table(first, truth, [1] * len(first)))
        store.record_round(1, shared, {"rollout_success": shared["rollout_success"]})
        store.save_checkpoint(1, policy.model, policy.model.cfg.to_dict(), make_optimizer(policy.model, cfg.sft()),
                              {"round": 1}, extra={"orm": orm.model})
    start = {k: v.clone() for k, v in policy.model.state_dict().items()}
    done = {r["variant"]: r for r in records.values() if "variant" in r}
    for r, variant in [(r, v) for r, v in enumerate(cfg.variants, start=2) if v not in done]:
        policy.model.load_state_dict(start)
        record, table = run_variant(cfg, variant, policy, orm, first, demos, progress)
        store.write_samples(r, table)
        done[variant] = {"round": r, **record}
        store.record_round(r, done[variant], {"held_out": record["held_out"][-1]})
    variants = [done[v] for v in cfg.variants]
    summary = {"recipe": "webrl", "seed": cfg.seed, "interface": cfg.interface, "eval_split": cfg.eval_split,
               "eval_tasks": cfg.eval_tasks, "bc": bc, "shared_phase": shared, "variants": variants,
               "held_out": {v["variant"]: [bc["held_out"]["success"], *v["held_out"]] for v in variants},
               "wall_seconds": bc["wall_seconds"] + shared["wall_seconds"] + sum(v["wall_seconds"] for v in variants)}
    store.write_summary(summary)
    store.event("finished")
    return summary


def headline(summary: dict) -> str:
    parts = [f"{v} {s[0]:.2f} -> {s[-1]:.2f}" for v, s in summary["held_out"].items()]
    return f"WebRL on WebSim ({summary['interface']} interface), held-out success BC -> last phase: {', '.join(parts)}"


def table(summary: dict):
    from rich.table import Table

    t = Table(title=f"held-out success after each phase ({summary['eval_tasks']} WebSim tasks)")
    phases = len(next(iter(summary["held_out"].values())))
    for col in ("variant", "BC", *[f"phase {p}" for p in range(1, phases)], "env steps", "ORM accuracy"):
        t.add_column(col, justify="right")
    for v in summary["variants"]:
        orm = [p["orm"]["accuracy"] for p in v["phases"] if p["orm"]]
        t.add_row(v["variant"], *[f"{x:.3f}" for x in summary["held_out"][v["variant"]]],
                  str(v["phases"][-1]["env_steps"]), f"{np.mean(orm):.2f}" if orm else "-")
    return t


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_lines

    xs = list(range(len(next(iter(summary["held_out"].values())))))
    return [plot_lines(xs, summary["held_out"], "Held-out success per phase (0 = behavioural cloning; equal "
                       "episodes per phase)", "phase", "success rate", plot_dir / "held-out.png"),
            *draw_example(plot_dir.parent, len(summary["variants"]) + 1, summary["interface"])]


RECIPE = Recipe(Config, run, headline, plots, table=table, policy=lambda cfg: cfg.load_policy(MAX_SEQ_LEN))
