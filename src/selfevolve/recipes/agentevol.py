"""AgentEvol: one agent that improves across several environments by learning from its own successes.

Xi et al. (2024), "AgentGym: Evolving Large Language Model-based Agents across Diverse
Environments", arXiv:2406.04151

    behavioural cloning: fine-tune one policy (ReAct replies "Thought: ...\\nAction: ...") on
    the scripted experts' trajectories of `demo_tasks` task ids of every environment
    each iteration: the policy attempts `explore_tasks` new task ids of every environment (at
    `temperature`); trajectories with full reward are kept (deduplicated) and merged with the
    demonstrations; the policy is retrained on the merge, from the base model (restart=true,
    the AgentEvol default) or from where it is
    after BC and after each iteration: greedy success on `eval_tasks` held-out task ids per
    environment; at the end, per-environment specialists (BC on one environment's demonstrations,
    the generalist's BC steps shared out between them) are scored beside the generalist

    selfevolve run agentevol --set iterations=2 --set envs=maze,calc
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfevolve.agents.env import DEV, ENVS, HELD_OUT, make_env, state_keys, unseen_ids
from selfevolve.agents.rollout import Episode, expert_episodes, prompt_of, run_episodes, trajectory_table
from selfevolve.config import check_min, check_one_of
from selfevolve.models.hf_export import export_run
from selfevolve.models.lm import TransformerLM
from selfevolve.models.policy import ModelChoice, Policy
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs
from selfevolve.store import RunStore
from selfevolve.tasks.base import SPLITS
from selfevolve.train.sft import Examples, TrainingConfig, make_optimizer, train_on_pools

MAX_SEQ_LEN = 320  # the longest observation (a penalty on a crafting task) plus a reply


@dataclass
class Config(ModelChoice, TrainingConfig):
    seed: int = 0
    """Seeds the policy's initialisation, training batches and exploration."""
    envs: tuple[str, ...] = tuple(ENVS)
    """Environments the one agent learns: maze, guess, craft, calc."""
    demo_tasks: int = 100
    """Task ids per environment with an expert demonstration (ids 0 .. demo_tasks-1)."""
    explore_tasks: int = 300
    """New task ids per environment the policy attempts each iteration."""
    iterations: int = 3
    """Explore-and-learn iterations after behavioural cloning."""
    eval_tasks: int = 200
    """Held-out task ids per environment scored after every iteration."""
    eval_split: str = "test"
    """Which held-out tasks are scored: test (what results report) or dev (ids from 2,000,000, none the
    same task as a test or training one: for choosing settings without touching test)."""
    bc_steps: int = 1000
    """Optimizer steps of behavioural cloning."""
    iteration_steps: int = 1000
    """Optimizer steps of each iteration's retraining."""
    temperature: float = 0.7
    """Sampling temperature while exploring (evaluation is greedy)."""
    restart: bool = False
    """true: retrain from the base model each iteration (AgentEvol's choice); false (measured better for a
    policy trained from scratch): continue from the last policy."""
    specialists: bool = True
    """Also train and score one BC specialist per environment (bc_steps / number of envs steps each)."""
    max_tokens: int = 48
    """Longest reply the policy may write per step (at least the experts' longest, 41 characters)."""

    n_embd: int = 64
    """Model width (4 layers x 64: about 0.2M parameters)."""
    learning_rate: float = 3e-3
    """Peak AdamW learning rate (warmup then cosine, per training phase)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_min(self, 1, "demo_tasks", "eval_tasks", "bc_steps")
        check_min(self, 0, "iterations", "explore_tasks", "iteration_steps")
        if not self.envs or set(self.envs) - set(ENVS):
            raise ValueError(f"envs must be some of {', '.join(ENVS)}, got {', '.join(self.envs)}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        check_one_of(self, "eval_split", SPLITS)
        if self.demo_tasks + self.iterations * self.explore_tasks >= HELD_OUT:
            raise ValueError("training task ids would reach the held-out ids")
        longest = max(len(a) for ep in demonstrations(self) for a in ep.actions)
        if self.max_tokens < longest:  # a reply cut short is another action: "guess 3" for "guess 39"
            raise ValueError(f"max_tokens ({self.max_tokens}) must be at least the longest expert reply ({longest})")


def demonstrations(cfg: Config) -> list[Episode]:
    """The scripted experts' episodes on task ids 0 .. demo_tasks-1 of every environment."""
    return expert_episodes([(name, i) for name in cfg.envs for i in range(cfg.demo_tasks)])


def base_model(cfg: Config) -> Policy:
    """The policy every retraining starts from (same seed, same weights): a tiny one, or the HF model."""
    return cfg.load_policy(MAX_SEQ_LEN)


def examples(tok, episodes: list[Episode]) -> Examples:
    """Every step of every episode: the observation as the prompt, the reply as the answer."""
    steps = [(prompt_of(o), a) for ep in episodes for o, a in zip(ep.observations, ep.actions, strict=True)]
    return Examples.encode(tok, [p for p, _ in steps], [a for _, a in steps])


def train(policy: Policy, cfg: Config, data: list[Episode], steps: int, gen, progress, title) -> float:
    """`steps` AdamW steps on every step of `data`, each batch split evenly between the environments
    (so the easy ones, which yield the most kept trajectories, do not crowd out the hard ones)."""
    envs = sorted({ep.env for ep in data})
    pools = [examples(policy.tok, [ep for ep in data if ep.env == name]) for name in envs]
    optimizer = make_optimizer(policy.model, cfg.sft())
    loss, _ = train_on_pools(policy.model, optimizer, cfg.sft(), pools, [1 / len(envs)] * len(envs), steps, gen,
                             progress, title)
    return loss


def training_tasks(cfg: Config) -> list[tuple[str, int]]:
    """Every (environment, task id) the run may learn from: demonstrations and every iteration's."""
    return [(name, i) for name in cfg.envs for i in range(cfg.demo_tasks + cfg.iterations * cfg.explore_tasks)]


def held_out_tasks(cfg: Config, envs: tuple[str, ...], split: str = "") -> tuple[list[tuple[str, int]], int]:
    """`eval_tasks` task ids per environment of the split (default: cfg.eval_split), skipping any whose task
    equals a training task, or for dev a test task (held-out means unseen); returns them and how many were
    skipped."""
    split = split or cfg.eval_split
    used = training_tasks(cfg) + (held_out_tasks(cfg, envs, "test")[0] if split == "dev" else [])
    tasks, skipped = [], 0
    for name in envs:
        env = make_env(name)
        seen = state_keys(env, [task_id for env_name, task_id in used if env_name == name])
        ids, n = unseen_ids(env, seen, DEV if split == "dev" else HELD_OUT, cfg.eval_tasks)
        tasks += [(name, i) for i in ids]
        skipped += n
    return tasks, skipped


def evaluate(policy: Policy, cfg: Config, envs: tuple[str, ...], progress, title: str) -> dict:
    """Greedy success rate and mean episode length per environment on its held-out tasks."""
    lm = TransformerLM(policy.model, policy.tok)
    tasks, _ = held_out_tasks(cfg, envs)
    episodes = run_episodes(lm, tasks, 0.0, cfg.max_tokens, progress, title)
    return {name: {"success": float(np.mean([ep.success for ep in episodes if ep.env == name])),
                   "length": float(np.mean([len(ep.actions) for ep in episodes if ep.env == name]))}
            for name in envs}


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    cfg.use_threads()
    demos = demonstrations(cfg)
    policy = base_model(cfg)
    kept: dict[tuple, Episode] = {}
    first, records = store.resume_rounds(policy.model, make_optimizer(policy.model, cfg.sft()))
    for r in range(1, first):
        for ep in episodes_of(store.read_samples(r).to_pydict(), kept_only=True):
            kept[ep.key] = ep

    for r in range(first, cfg.iterations + 1):
        t0 = time.time()
        rng, gen, _ = rngs(cfg.seed, r)
        record: dict = {"round": r}
        if r == 0:
            store.write_samples(0, trajectory_table(demos, kept=True))
            loss = train(policy, cfg, demos, cfg.bc_steps, gen, progress, f"BC on {len(demos)} expert trajectories")
            record.update(explored=0, successes=0, new_kept=0)
        else:
            # ---- EXPLORE: new task ids of every environment, sampled
            start = cfg.demo_tasks + (r - 1) * cfg.explore_tasks
            tasks = [(name, start + i) for name in cfg.envs for i in range(cfg.explore_tasks)]
            lm = TransformerLM(policy.model, policy.tok, seed=int(rng.integers(2**31)))
            episodes = run_episodes(lm, tasks, cfg.temperature, cfg.max_tokens, progress,
                                    f"iteration {r}: explore {len(tasks)} tasks")
            # ---- SELECT: successful trajectories, each distinct one once
            new = [ep for ep in episodes if ep.success and ep.key not in kept]
            new = list({ep.key: ep for ep in new}.values())
            kept.update((ep.key, ep) for ep in new)
            fresh = {id(ep) for ep in new}
            table = trajectory_table(episodes, iteration=r)
            table["kept"] = [id(ep) in fresh for ep in episodes for _ in ep.actions]
            store.write_samples(r, table)
            # ---- LEARN: demonstrations + everything kept so far
            if cfg.restart:
                policy = base_model(cfg)
            loss = train(policy, cfg, demos + list(kept.values()), cfg.iteration_steps, gen, progress,
                         f"iteration {r}: train on {len(demos)} demonstrations + {len(kept)} own trajectories")
            record.update(explored=len(episodes), successes=sum(ep.success for ep in episodes), new_kept=len(new),
                          explore_success={n: float(np.mean([e.success for e in episodes if e.env == n]))
                                           for n in cfg.envs})
        result = evaluate(policy, cfg, cfg.envs, progress, f"round {r}: evaluate")
        record.update(kept=len(demos) + len(kept), loss=loss, wall_seconds=time.time() - t0,
                      success={n: v["success"] for n, v in result.items()},
                      length={n: v["length"] for n, v in result.items()})
        records.append(record)
        store.record_round(r, record, {f"success/{n}": v["success"] for n, v in result.items()})
        store.save_checkpoint(r, policy.model, policy.model.cfg.to_dict(), make_optimizer(policy.model, cfg.sft()),
                              {"round": r, "seed": cfg.seed})
        progress.log(f"[bold]round {r}[/] held-out success " +
                     "  ".join(f"{n} {v['success']:.2f}" for n, v in result.items()) +
                     f"  kept {record['kept']}  {record['wall_seconds']:.0f}s")

    summary = {"recipe": "agentevol", "seed": cfg.seed, "envs": list(cfg.envs),
               "held_out": {"tasks": cfg.eval_tasks * len(cfg.envs),
                            "same_as_a_training_task_skipped": held_out_tasks(cfg, cfg.envs)[1]},
               "success_by_iteration": {n: [r["success"][n] for r in records] for n in cfg.envs},
               "length_by_iteration": {n: [r["length"][n] for r in records] for n in cfg.envs},
               "kept_by_iteration": [r["kept"] for r in records], "specialist_success": None,
               "rounds": records}
    if cfg.specialists:
        t0 = time.time()
        summary["specialist_success"] = {}
        for name in cfg.envs:
            specialist = base_model(cfg)
            train(specialist, cfg, [ep for ep in demos if ep.env == name], max(1, cfg.bc_steps // len(cfg.envs)),
                  rngs(cfg.seed, 0).torch, progress, f"specialist {name}: BC")
            summary["specialist_success"][name] = evaluate(specialist, cfg, (name,), progress,
                                                           f"specialist {name}: evaluate")[name]["success"]
        summary["specialist_seconds"] = time.time() - t0
    summary["wall_seconds"] = sum(r["wall_seconds"] for r in records) + summary.get("specialist_seconds", 0.0)
    store.write_summary(summary)
    store.event("finished")
    return summary


def episodes_of(table: dict[str, list], kept_only: bool = False) -> list[Episode]:
    """Episodes back from a trajectory table (rows in step order, grouped by episode)."""
    out: dict[int, Episode] = {}
    for i, n in enumerate(table["episode"]):
        if kept_only and not table["kept"][i]:
            continue
        out.setdefault(n, Episode(table["env"][i], table["task_id"][i])).add(
            table["observation"][i], table["action"][i], table["logprob"][i], table["reward"][i])
    return list(out.values())


def headline(summary: dict) -> str:
    s = summary["success_by_iteration"]
    shown = ", ".join(f"{n} {v[0]:.2f} -> {v[-1]:.2f}" for n, v in s.items())
    return (f"AgentEvol, held-out success BC -> after {len(next(iter(s.values()))) - 1} iterations: {shown} "
            f"({summary['wall_seconds']:.0f} s)")


def table(summary: dict):
    from rich.table import Table

    s = summary["success_by_iteration"]
    iterations = len(next(iter(s.values())))
    out = Table(title="Held-out success per environment")
    out.add_column("environment", justify="left")
    for i in range(iterations):
        out.add_column("BC" if i == 0 else f"iter {i}", justify="right")
    if summary["specialist_success"]:
        out.add_column("specialist (BC)", justify="right")
    for name, values in s.items():
        extra = [f"{summary['specialist_success'][name]:.2f}"] if summary["specialist_success"] else []
        out.add_row(name, *(f"{v:.2f}" for v in values), *extra)
    return out


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_lines

    s = summary["success_by_iteration"]
    xs = list(range(len(next(iter(s.values())))))
    return [plot_lines(xs, s, "Held-out success per environment (0 = behavioural cloning)", "iteration",
                       "success rate", plot_dir / "success.png"),
            plot_lines(xs, summary["length_by_iteration"], "Mean episode length (held-out)", "iteration", "steps",
                       plot_dir / "length.png")]


def export(store: RunStore, cfg: Config, out: Path, overwrite: bool) -> Path:
    """The latest policy (LoRA merged) and its tokenizer as an HF model directory."""
    return export_run(store, base_model(cfg), out, overwrite)


RECIPE = Recipe(Config, run, headline, plots, table=table, export=export, policy=base_model)
