"""PSEC (Liu et al. 2025): skills as LoRA modules on a frozen policy, composed per state in parameter space.

    round 0        a base policy learns `base_skill` by behaviour cloning from `base_demos` expert episodes
    rounds 1..S    the continual chain: each of `skills` becomes a new LoRA, learnt from `demos` episodes
                   with the base and the older skills frozen; beside it one network is fine-tuned on each
                   skill in turn. After each, every skill so far is scored both ways: forgetting.
    rounds S+1..   each of `tasks`, from the same `demos` episodes and steps: full fine-tuning of the
                   base, and a new LoRA trained under fixed weights over the library (one-hot on itself:
                   a new LoRA alone; uniform: a fixed merge) or with learnt ones (one vector for all
                   states: global; a context network of the state: PSEC), the old skills frozen

Environment and skills: tasks/point_mass.py (a point mass following a velocity field; return = mean
reward per step in [0, 1], on held-out start states). The composition weights are not normalised: a
new behaviour can need more than a convex mix of old ones (right and up at once is move + up).

    selfevolve run psec --set skills=move,fast,up --set tasks=diagonal,switch,heavy --set demos=4
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from selfevolve.config import check_min
from selfevolve.models.skills import Composer, SkillPolicy
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs, seeded
from selfevolve.store import RunStore
from selfevolve.tasks.point_mass import demonstrations, expert_return, mean_return, skill
from selfevolve.train.cloning import fit

METHODS = ("new-lora", "full-ft", "uniform", "global", "psec")


@dataclass
class Config:
    seed: int = 0
    """Every stream (demonstrations, held-out starts, initialisations, batches) derives from it."""
    base_skill: str = "hold"
    """What the pretrained base policy does (tasks/point_mass.py: hold, move, fast, up, diagonal, switch, heavy)."""
    skills: tuple[str, ...] = ("move", "fast", "up")
    """The continual chain: each becomes a LoRA in the library, in this order."""
    tasks: tuple[str, ...] = ("diagonal", "switch", "heavy")
    """New tasks every method learns from the same demonstrations, with the chain's library."""
    base_demos: int = 50
    """Expert episodes the base policy learns from."""
    demos: int = 4
    """Expert episodes for each new skill and each new task."""
    episode_steps: int = 50
    """Steps per episode (0.1 s each)."""
    noise: float = 0.3
    """Standard deviation of the noise on the expert's executed force while demonstrating."""
    hidden: int = 64
    """Width of the policy's two hidden layers."""
    rank: int = 4
    """LoRA rank of every skill."""
    base_steps: int = 3000
    """Behaviour-cloning steps of the base policy."""
    skill_steps: int = 1000
    """Steps for each new LoRA, each full fine-tuning and each composition."""
    lr: float = 3e-3
    """Adam's step size for every behaviour-cloning phase."""
    batch_size: int = 256
    """States per behaviour-cloning step."""
    eval_episodes: int = 200
    """Held-out episodes per score."""
    threads: int = 1
    """Torch CPU threads (the policies are small: one is fastest)."""

    def __post_init__(self) -> None:
        check_min(self, 0, "seed")
        check_min(self, 1, "base_demos", "demos", "episode_steps", "hidden", "rank", "base_steps", "skill_steps",
                  "batch_size", "eval_episodes", "threads")
        for name in (self.base_skill, *self.skills, *self.tasks):
            skill(name)
        chain = (self.base_skill, *self.skills)
        if len(set(chain)) < len(chain) or len(set(self.tasks)) < len(self.tasks):
            raise ValueError(f"base_skill and skills must be distinct, and tasks too: got {chain} and {self.tasks}")
        if not self.skills:
            raise ValueError("skills must name at least one skill: the library PSEC composes")
        if self.lr <= 0 or self.noise < 0:
            raise ValueError(f"lr must be > 0 and noise >= 0, got {self.lr}, {self.noise}")


def clone(predict: Callable[[torch.Tensor], torch.Tensor], params: list[torch.nn.Parameter], cfg: Config,
          data: tuple[torch.Tensor, torch.Tensor], steps: int, stream: str) -> float:
    """Behaviour cloning: mean squared error to the expert's actions on minibatches; the last loss."""
    states, actions = data

    def batch_loss(gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(states), (cfg.batch_size,), generator=gen)
        return F.mse_loss(predict(states[idx]), actions[idx])

    return fit(params, batch_loss, steps, cfg.lr, rngs(cfg.seed, "batches", stream).torch)


def one_hot(i: int, k: int) -> torch.Tensor:
    return F.one_hot(torch.tensor(i), k).float()


def base_digest(policy: SkillPolicy) -> str:
    """A hash of the base weights' bytes: skills must leave it as it was."""
    h = hashlib.sha256()
    for v in policy.base.state_dict().values():
        h.update(v.numpy().tobytes())
    return h.hexdigest()


def scorer(cfg: Config) -> Callable[[str, Callable], float]:
    return lambda name, act: mean_return(name, act, cfg.eval_episodes, cfg.episode_steps, cfg.seed)


def with_skill(policy: SkillPolicy, i: int) -> Callable[[torch.Tensor], torch.Tensor]:
    k = len(policy.skills)
    return lambda s: policy(s, one_hot(i, k).expand(len(s), k))


def learn_skill(policy: SkillPolicy, name: str, cfg: Config, data) -> int:
    """A new LoRA trained alone on `data`; the base and the other skills stay frozen."""
    i = policy.add_skill(cfg.seed, name)
    clone(with_skill(policy, i), list(policy.skills[i].parameters()), cfg, data, cfg.skill_steps, f"skill/{name}")
    return i


def with_new_skill(policy: SkillPolicy, cfg: Config, data, task: str, method: str):
    """A new skill for `task` trained on `data` under `method`'s weights over the whole library (the new
    skill's included), the base and the older skills frozen: fixed one-hot on the new skill (a new LoRA
    alone), fixed uniform, or learnt with it from uniform: one vector for all states (global) or a context
    network (PSEC). Every method takes the same steps."""
    trial = copy.deepcopy(policy).requires_grad_(False)
    new = trial.add_skill(cfg.seed, task)
    k = len(trial.skills)
    start = one_hot(new, k) if method == "new-lora" else torch.full((k,), 1 / k)
    composer = seeded(lambda: Composer(4, start, per_state=method == "psec"), cfg.seed, "composer", task)
    learnt = list(composer.parameters()) if method in ("global", "psec") else []
    act = lambda s: trial(s, composer(s))  # noqa: E731
    clone(act, [*trial.skills[new].parameters(), *learnt], cfg, data, cfg.skill_steps, f"{method}/{task}")
    return act


def new_task(policy: SkillPolicy, cfg: Config, task: str, score) -> dict[str, float]:
    """Every method's held-out return on `task`, all from the same demonstrations and steps."""
    data = demonstrations(task, cfg.demos, cfg.episode_steps, cfg.seed, cfg.noise)
    tuned = policy.base_only().requires_grad_(True)
    clone(tuned, list(tuned.parameters()), cfg, data, cfg.skill_steps, f"full-ft/{task}")
    acts = {m: tuned if m == "full-ft" else with_new_skill(policy, cfg, data, task, m) for m in METHODS}
    return {m: score(task, acts[m]) for m in METHODS}


def record_chain_round(store: RunStore, rec: dict) -> None:
    name = rec["skill"]
    store.record_round(rec["round"], rec, {f"library/{name}": rec["library"][name],
                                           f"fine_tuned/{name}": rec["fine_tuned"][name]})


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    torch.set_num_threads(cfg.threads)
    score = scorer(cfg)
    sizes = [4, cfg.hidden, cfg.hidden, 2]
    policy = seeded(lambda: SkillPolicy(sizes, cfg.rank), cfg.seed, "base")
    sequential = policy.base_only()  # fine-tuned on every skill of the chain in turn
    state = store.read_state("skill library") or {"skills": [], "records": []}
    if state["records"]:
        for name in state["skills"]:
            policy.add_skill(cfg.seed, name)
        tensors = state["tensors"]
        policy.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("policy.")})
        sequential.load_state_dict({k[11:]: v for k, v in tensors.items() if k.startswith("sequential.")})
        policy.base.requires_grad_(False)
    records = list(state["records"])
    for rec in records:  # a kill between the state and the round's row loses no row
        record_chain_round(store, rec)
    chain = [cfg.base_skill, *cfg.skills]
    total = len(chain) + len(cfg.tasks)
    done_tasks = {r["task"]: r for r in store.rounds() if "task" in r}
    with progress.task("base, skill chain, new tasks", total, done=len(records) + len(done_tasks)) as advance:
        for r in range(len(records), len(chain)):
            t0, name = time.perf_counter(), chain[r]
            data = demonstrations(name, cfg.base_demos if r == 0 else cfg.demos, cfg.episode_steps, cfg.seed,
                                  cfg.noise)
            if r == 0:
                clone(policy, list(policy.parameters()), cfg, data, cfg.base_steps, "base")
                sequential.load_state_dict(policy.state_dict())
                policy.base.requires_grad_(False)
            else:
                learn_skill(policy, name, cfg, data)
                clone(sequential, list(sequential.parameters()), cfg, data, cfg.skill_steps, f"sequential/{name}")
            library = {chain[0]: score(chain[0], policy), **{n: score(n, with_skill(policy, i))
                                                            for i, n in enumerate(chain[1:r + 1])}}
            record = {"round": r, "skill": name, "library": library,
                      "fine_tuned": {n: score(n, sequential) for n in chain[:r + 1]},
                      "expert": expert_return(name, cfg.eval_episodes, cfg.episode_steps, cfg.seed),
                      "base_digest": base_digest(policy), "wall_seconds": time.perf_counter() - t0}
            records.append(record)
            tensors = {**{f"policy.{k}": v for k, v in policy.state_dict().items()},
                       **{f"sequential.{k}": v for k, v in sequential.state_dict().items()}}
            store.write_state({"skills": chain[1:r + 1], "records": records}, tensors)
            record_chain_round(store, record)
            progress.log(f"[bold]{name}[/]  library " + "  ".join(f"{n} {v:.3f}" for n, v in library.items())
                         + "  |  fine-tuned " + "  ".join(f"{n} {v:.3f}" for n, v in record["fine_tuned"].items()))
            advance()
        for j, task in enumerate(cfg.tasks):
            if task in done_tasks:
                continue
            t0, r = time.perf_counter(), len(chain) + j
            returns = new_task(policy, cfg, task, score)
            record = {"round": r, "task": task, "returns": returns, "library": list(cfg.skills),
                      "base": score(task, policy),
                      "expert": expert_return(task, cfg.eval_episodes, cfg.episode_steps, cfg.seed),
                      "wall_seconds": time.perf_counter() - t0}
            store.record_round(r, record, {f"{task}/{m}": v for m, v in returns.items()})
            progress.log(f"[bold]{task}[/]  " + "  ".join(f"{m} {v:.3f}" for m, v in returns.items())
                         + f"  (expert {record['expert']:.3f})")
            done_tasks[task] = record
            advance()
    summary = summarise(cfg, records, [done_tasks[t] for t in cfg.tasks])
    store.write_summary(summary)
    store.event("finished")
    return summary


def summarise(cfg: Config, chain: list[dict], tasks: list[dict]) -> dict:
    """Forgetting: each skill's return right after it was learnt minus its return at the end of the chain."""
    last = chain[-1]
    first = {rec["skill"]: rec for rec in chain}
    forgetting = {way: {n: first[n][way][n] - last[way][n] for n in first} for way in ("library", "fine_tuned")}
    return {"recipe": "psec", "seed": cfg.seed, "demos": cfg.demos, "chain": chain, "tasks": tasks,
            "forgetting": forgetting, "base_unchanged": len({rec["base_digest"] for rec in chain}) == 1,
            "wall_seconds": sum(rec["wall_seconds"] for rec in chain + tasks)}


def headline(summary: dict) -> str:
    parts = []
    for t in summary["tasks"]:
        best = max(METHODS, key=lambda m: t["returns"][m])
        parts.append(f"{t['task']}: psec {t['returns']['psec']:.3f}, best {best} {t['returns'][best]:.3f}")
    worst = max(summary["forgetting"]["fine_tuned"].values())
    return (f"PSEC from {summary['demos']} demos: " + "; ".join(parts) + f". Forgetting over the chain: library "
            f"{max(summary['forgetting']['library'].values()):.3f}, sequential fine-tuning {worst:.3f}")


def table(summary: dict):
    from rich.table import Table

    t = Table(title=f"held-out return (mean reward per step) from {summary['demos']} demonstrations")
    for col in ("task", *METHODS, "base", "expert"):
        t.add_column(col, justify="right")
    for rec in summary["tasks"]:
        t.add_row(rec["task"], *[f"{rec['returns'][m]:.3f}" for m in METHODS], f"{rec['base']:.3f}",
                  f"{rec['expert']:.3f}")
    return t


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_bars, plot_lines

    chain = summary["chain"]
    steps = [rec["skill"] for rec in chain]
    series = {f"{n} ({way.replace('_', '-')})": [rec[way].get(n) for rec in chain]
              for n in steps for way in ("library", "fine_tuned")}
    out = [plot_lines(steps, series, "Each skill's return as the chain goes on", "after learning",
                      "held-out return", plot_dir / "forgetting.png")]
    for rec in summary["tasks"]:
        out.append(plot_bars({**rec["returns"], "expert": rec["expert"]}, f"{rec['task']}: return by method",
                             "held-out return", plot_dir / f"task-{rec['task']}.png"))
    return out


RECIPE = Recipe(Config, run, headline, plots, table=table)
