"""PASTA (Boige et al. 2023): an action-state transformer pretrained on trajectories, adapted by tiny heads.

    round 0    a transformer pretrained on component tokens (each state and action dimension a token)
               by next-token prediction, on expert episodes of `pretrain_skills` at several `noise_levels`
    round 1    the same trunk on modality tokens (a state vector one token, an action another): the
               baseline tokenisation, pretrained on the same episodes by regressing next state and action
    rounds 2.. each of `tasks` by behaviour cloning from `demos` expert episodes: LoRA on each
               pretrained model, only the output head of the component model, and each model trained
               from scratch, for the same steps. Every policy is scored on held-out episodes, and again
               with sensor `failed_sensor` reading 0 (a sensor-failure probe); `heavy` (point-mass) and
               `long` (cart-pole) are dynamics changes

Environments (return = mean reward per step in [0, 1]): tasks/point_mass.py, and tasks/cart_pole.py
(gymnasium's CartPole-v1 with a continuous force; its corpus adds Deep GA policies to the LQR experts);
model: models/state_action.py.

    selfevolve run pasta --set tasks=diagonal,switch,heavy --set demos=4
    selfevolve run pasta --set env=cart-pole
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from selfevolve.config import check_min
from selfevolve.models.lora import LoraSpec, add_lora
from selfevolve.models.state_action import ActionStateTransformer, Bins
from selfevolve.models.transformer import TransformerConfig
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs, seeded
from selfevolve.store import RunStore
from selfevolve.tasks import cart_pole, point_mass
from selfevolve.train.cloning import fit

METHODS = ("component-lora", "component-head", "component-scratch", "modality-lora", "modality-scratch")
ENVS = {"point-mass": point_mass, "cart-pole": cart_pole}


@dataclass
class Config:
    seed: int = 0
    """Every stream (episodes, held-out starts, initialisations, batches) derives from it."""
    env: str = "point-mass"
    """point-mass or cart-pole: the environment, its skills and its value ranges."""
    pretrain_skills: tuple[str, ...] = ()
    """Skills whose expert episodes make the pretraining corpus; () = the environment's: hold, move, fast,
    up (point-mass); balance, left (cart-pole)."""
    noise_levels: tuple[float, ...] = (0.1, 0.4, 0.8)
    """Noise on the expert's executed force in the corpus: one set of episodes per level."""
    pretrain_episodes: int = 30
    """Episodes per pretraining skill and noise level."""
    tasks: tuple[str, ...] = ()
    """Downstream tasks, each learnt from `demos` expert episodes; () = the environment's: diagonal,
    switch, heavy (point-mass); right, long (cart-pole)."""
    demos: int = 4
    """Expert episodes per downstream task (noise 0.3)."""
    episode_steps: int = 0
    """Steps per episode; 0 = the environment's: 50 of 0.1 s (point-mass), 200 of 0.02 s (cart-pole)."""
    context: int = 4
    """Steps the model reads: 24 component tokens (point-mass; 20 on cart-pole), or 8 modality tokens."""
    bins: int = 64
    """Bins per dimension for component tokens."""
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    pretrain_steps: int = 1500
    """Pretraining steps of each model."""
    adapt_steps: int = 400
    """Behaviour-cloning steps of every downstream method."""
    lr: float = 1e-3
    """Adam's step size for pretraining and for training from scratch."""
    adapt_lr: float = 3e-3
    """Adam's step size for LoRA and head adaptation."""
    lora_rank: int = 8
    batch_size: int = 64
    """Windows of `context` steps per step."""
    failed_sensor: str = "vx"
    """The state dimension that reads 0 in the sensor-failure probe: x, y, vx or vy (point-mass); x, vx,
    angle or spin (cart-pole)."""
    eval_episodes: int = 100
    """Held-out episodes per score."""
    threads: int = 2
    """Torch CPU threads."""

    def __post_init__(self) -> None:
        if self.env not in ENVS:
            raise ValueError(f"env must be one of {', '.join(ENVS)}, got {self.env!r}")
        env = ENVS[self.env]
        self.pretrain_skills, self.tasks = self.pretrain_skills or env.PRETRAIN, self.tasks or env.TASKS
        self.episode_steps = self.episode_steps or env.EPISODE_STEPS
        check_min(self, 0, "seed")
        check_min(self, 1, "pretrain_episodes", "demos", "episode_steps", "context", "n_layer", "n_head", "n_embd",
                  "pretrain_steps", "adapt_steps", "lora_rank", "batch_size", "eval_episodes", "threads")
        check_min(self, 2, "bins")
        for name in (*self.pretrain_skills, *self.tasks):
            env.skill(name)
        if not self.noise_levels:
            raise ValueError("noise_levels must name at least one")
        if self.context > self.episode_steps:
            raise ValueError(f"context ({self.context}) must be <= episode_steps ({self.episode_steps})")
        if self.failed_sensor not in env.SENSORS:
            raise ValueError(f"failed_sensor must be one of {', '.join(env.SENSORS)}, got {self.failed_sensor!r}")
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            raise ValueError(f"n_embd ({self.n_embd}) must split into n_head ({self.n_head}) heads of even size")
        if self.lr <= 0 or self.adapt_lr <= 0 or min(self.noise_levels) < 0:
            raise ValueError("lr and adapt_lr must be > 0 and noise_levels >= 0")


def build(cfg: Config, tokens: str, stream: str) -> ActionStateTransformer:
    env = ENVS[cfg.env]
    shape = TransformerConfig(vocab_size=1, n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                              pos_encoding="rope", max_seq_len=cfg.context * (len(env.SENSORS) + env.ACTION_DIM))
    return seeded(lambda: ActionStateTransformer(shape, tokens, Bins(env.LOW, env.HIGH, cfg.bins), len(env.SENSORS),
                                                 env.ACTION_DIM), cfg.seed, stream)


def train(model: ActionStateTransformer, params, data, cfg: Config, steps: int, lr: float, actions_only: bool,
          stream: str) -> float:
    """Steps on random windows of `context` steps of the episodes in `data` ((E, T, S), (E, T, A))."""
    states, actions = data
    E, T = states.shape[:2]

    def batch_loss(gen: torch.Generator) -> torch.Tensor:
        e = torch.randint(E, (cfg.batch_size,), generator=gen)
        t = torch.randint(T - cfg.context + 1, (cfg.batch_size,), generator=gen)[:, None] + torch.arange(cfg.context)
        return model.loss(states[e[:, None], t], actions[e[:, None], t], actions_only)

    return fit(params, batch_loss, steps, lr, rngs(cfg.seed, "batches", stream).torch)


def policy(model: ActionStateTransformer, context: int, failed: int | None = None) -> Callable:
    """A closure for one evaluation: it keeps the episode's last `context` states and actions."""
    seen_states: list[torch.Tensor] = []
    taken: list[torch.Tensor] = []

    def act(s: torch.Tensor) -> torch.Tensor:
        if failed is not None:
            s = s.clone()
            s[:, failed] = 0.0
        seen_states.append(s)
        states = torch.stack(seen_states[-context:], 1)
        before = taken[len(taken) - states.shape[1] + 1:] if states.shape[1] > 1 else []
        actions = torch.stack(before, 1) if before else torch.zeros(len(s), 0, model.action_dim)
        a = model.act(states, actions)
        taken.append(a)
        return a

    return act


def adapt(pretrained: dict[str, ActionStateTransformer], method: str, cfg: Config, data, task: str):
    tokens, how = method.split("-")
    if how == "scratch":
        model = build(cfg, tokens, f"scratch/{task}")
        params, lr = list(model.parameters()), cfg.lr
    elif how == "lora":
        model = add_lora(copy.deepcopy(pretrained[tokens]), LoraSpec(r=cfg.lora_rank, alpha=2 * cfg.lora_rank),
                         seed=cfg.seed)
        params, lr = [p for p in model.parameters() if p.requires_grad], cfg.adapt_lr
    else:  # the output head alone
        model = copy.deepcopy(pretrained[tokens]).requires_grad_(False)
        params, lr = list(model.head.requires_grad_(True).parameters()), cfg.adapt_lr
    train(model, params, data, cfg, cfg.adapt_steps, lr, True, f"{method}/{task}")
    return model.eval()


def held_out(cfg: Config, task: str, act: Callable) -> float:
    return ENVS[cfg.env].mean_return(task, act, cfg.eval_episodes, cfg.episode_steps, cfg.seed)


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    torch.set_num_threads(cfg.threads)
    env = ENVS[cfg.env]
    models = {tokens: build(cfg, tokens, f"pretrain/{tokens}") for tokens in ("component", "modality")}
    state = store.read_state("pretrained models") or {"records": []}
    records = list(state["records"])
    for tokens, model in models.items():
        if any(r["tokens"] == tokens for r in records):
            model.load_state_dict({k.split(".", 1)[1]: v for k, v in state["tensors"].items()
                                   if k.startswith(tokens + ".")})
    for rec in records:
        store.record_round(rec["round"], rec, {f"pretrain_loss/{rec['tokens']}": rec["loss"]})
    done_tasks = {r["task"]: r for r in store.rounds() if "task" in r}
    failed = env.SENSORS.index(cfg.failed_sensor)
    with progress.task("pretrain, then adapt to each task", 2 + len(cfg.tasks),
                       done=len(records) + len(done_tasks)) as advance:
        pretraining = (env.pretraining(cfg.pretrain_skills, cfg.pretrain_episodes, cfg.episode_steps, cfg.seed,
                                       cfg.noise_levels) if len(records) < len(models) else None)
        for r, tokens in enumerate(models):
            if r < len(records):
                continue
            t0 = time.perf_counter()
            loss = train(models[tokens], list(models[tokens].parameters()), pretraining, cfg, cfg.pretrain_steps,
                         cfg.lr, False, f"pretrain/{tokens}")
            rec = {"round": r, "tokens": tokens, "loss": loss, "episodes": len(pretraining[0]),
                   "wall_seconds": time.perf_counter() - t0}
            records.append(rec)
            trained = [x["tokens"] for x in records]
            store.write_state({"records": records}, {f"{t}.{k}": v for t in trained
                                                     for k, v in models[t].state_dict().items()})
            store.record_round(r, rec, {f"pretrain_loss/{tokens}": loss})
            progress.log(f"[bold]pretrained[/] {tokens} tokens: loss {loss:.4f}")
            advance()
        for j, task in enumerate(cfg.tasks):
            if task in done_tasks:
                continue
            t0, r = time.perf_counter(), 2 + j
            data = env.episodes(task, cfg.demos, cfg.episode_steps, cfg.seed, 0.3)
            returns, probe = {}, {}
            for method in METHODS:
                model = adapt(models, method, cfg, data, task)
                returns[method] = held_out(cfg, task, policy(model, cfg.context))
                probe[method] = held_out(cfg, task, policy(model, cfg.context, failed))
            rec = {"round": r, "task": task, "returns": returns, "sensor_failed": probe,
                   "expert": env.expert_return(task, cfg.eval_episodes, cfg.episode_steps, cfg.seed),
                   "wall_seconds": time.perf_counter() - t0}
            store.record_round(r, rec, {**{f"{task}/{m}": v for m, v in returns.items()},
                                        **{f"{task}/{m}/sensor_failed": v for m, v in probe.items()}})
            progress.log(f"[bold]{task}[/]  " + "  ".join(f"{m} {v:.3f}" for m, v in returns.items())
                         + f"  (expert {rec['expert']:.3f})")
            done_tasks[task] = rec
            advance()
    summary = {"recipe": "pasta", "env": cfg.env, "seed": cfg.seed, "demos": cfg.demos,
               "failed_sensor": cfg.failed_sensor, "pretraining": records, "tasks": [done_tasks[t] for t in cfg.tasks],
               "wall_seconds": sum(r["wall_seconds"] for r in records + list(done_tasks.values()))}
    store.write_summary(summary)
    store.event("finished")
    return summary


def headline(summary: dict) -> str:
    parts = []
    for t in summary["tasks"]:
        best = max(METHODS, key=lambda m: t["returns"][m])
        parts.append(f"{t['task']}: component-lora {t['returns']['component-lora']:.3f}, best {best} "
                     f"{t['returns'][best]:.3f}")
    return f"PASTA from {summary['demos']} demos: " + "; ".join(parts)


def table(summary: dict):
    from rich.table import Table

    t = Table(title=f"held-out return from {summary['demos']} demonstrations (with {summary['failed_sensor']} "
                    "reading 0)")
    for col in ("task", *METHODS, "expert"):
        t.add_column(col, justify="right")
    for rec in summary["tasks"]:
        t.add_row(rec["task"], *[f"{rec['returns'][m]:.3f} ({rec['sensor_failed'][m]:.3f})" for m in METHODS],
                  f"{rec['expert']:.3f}")
    return t


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_bars

    return [plot_bars({**{m: rec["returns"][m] for m in METHODS}, **{f"{m} (failed {summary['failed_sensor']})":
                                                                     rec["sensor_failed"][m] for m in METHODS},
                       "expert": rec["expert"]}, f"{rec['task']}: return by method", "held-out return",
                      plot_dir / f"task-{rec['task']}.png")
            for rec in summary["tasks"]]


RECIPE = Recipe(Config, run, headline, plots, table=table)
