"""Long-term memory (OMNE): an assistant that keeps what each user told it, compared four ways.

Jiang et al. (2024), "Long Term Memory: The Foundation of AI Self-Evolution", arXiv:2410.15665:
an agent improves with its own interactions only if what it saw is kept and fed back to it.

    users      agents/users.py: every session a user tells a few facts (new ones, or new values of old
               ones) and asks about something told in an earlier session
    round 0    a tiny reader learns to answer "u7:MEMORY|slot?>" from the window's and the store's
               memories below, on `train_users` users that never come back
    rounds 1.. each of `variants` answers the `users` held-out users' questions, session after session:
               none     no memory: the question alone
               window   the raw facts of the last `window` sessions (a context window)
               store    the `k` facts a per-user store (FinMem's, with add / search / update / forget)
                        finds for the question; told facts go in after each session
               weights  no memory in the prompt: after each session the model is fine-tuned for
                        `distill_steps` steps on every fact told so far (memory distilled into weights)

Accuracy by session and by the asked fact's age (sessions since it was told) goes to the summary
and the report; every answer, with its prompt, to samples/round-NNN.parquet.

    selfevolve run long-memory --set window=2 --set distill_steps=60
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfevolve.agents.users import SLOTS, Session, UserMemory, population
from selfevolve.config import check_min, check_some_of
from selfevolve.models.policy import load_policy
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs
from selfevolve.search.sampling import answer
from selfevolve.store import RunStore
from selfevolve.tasks.base import Problem
from selfevolve.train.sft import Examples, TrainingConfig, make_optimizer, train_on_pools

VARIANTS = ("none", "window", "store", "weights")


@dataclass
class Config(TrainingConfig):
    seed: int = 0
    """Every stream (users, initialisation, batches) derives from it."""
    users: int = 40
    """Held-out users whose sessions every variant serves."""
    train_users: int = 400
    """Other users the reader learns from (never served)."""
    sessions: int = 12
    """Sessions per user."""
    facts: int = 2
    """Facts a user tells per session."""
    update: float = 0.3
    """Chance that a told fact is a new value for a slot told before (the old value is then wrong)."""
    window: int = 3
    """Sessions of raw history the window variant shows."""
    k: int = 4
    """Facts the store variant retrieves per question."""
    variants: tuple[str, ...] = VARIANTS
    """Which memories to compare: none, window, store, weights."""
    reader_steps: int = 1500
    """Round 0: steps of the reader on the training users' questions."""
    distill_steps: int = 30
    """weights: fine-tuning steps after each session on every fact told so far."""
    n_layer: int = 2
    n_embd: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        check_min(self, 1, "users", "train_users", "facts", "window", "k", "reader_steps")
        check_min(self, 2, "sessions")
        check_min(self, 0, "distill_steps")
        if not 0 <= self.update <= 1:
            raise ValueError(f"update must be in [0, 1], got {self.update}")
        if self.sessions * self.facts > len(SLOTS):
            raise ValueError(f"sessions x facts must be at most {len(SLOTS)} (the slots), "
                             f"got {self.sessions * self.facts}")
        check_some_of(self, "variants", VARIANTS)

    def max_seq_len(self) -> int:
        user = len(f"u{self.users + self.train_users}:")
        return user + max(self.window * self.facts, self.k) * 8 + 16


def prompt(user: int, memory: str, slot: str) -> str:
    return f"u{user}:{memory}|{slot}?>"


def recent(sessions: list[Session], s: int, window: int) -> str:
    """The raw facts of the `window` sessions before session s, oldest first."""
    return "/".join(x.said() for x in sessions[max(0, s - window):s])


def reader_examples(cfg: Config, tok) -> list[Examples]:
    """The training users' questions with the store's memory, and with the window's: about every fact
    whose current value the window holds (the reader must find it among the window's facts, the latest
    value of a slot told twice). The weights form, a question alone, is what distillation trains."""
    forms: dict[str, tuple[list[str], list[str]]] = {"store": ([], []), "window": ([], [])}
    for sessions in population(cfg.users, cfg.train_users, cfg.sessions, cfg.facts, cfg.update,
                               rngs(cfg.seed, "train users").np):
        store, current = UserMemory(), {}
        for s, session in enumerate(sessions):
            window = recent(sessions, s, cfg.window)
            for slot, (value, told) in current.items():
                if told >= s - cfg.window:
                    forms["window"][0].append(prompt(session.user, window, slot))
                    forms["window"][1].append(value)
            if session.asked:
                found = store.search(session.user, session.asked, cfg.k)
                forms["store"][0].append(prompt(session.user, ";".join(found), session.asked))
                forms["store"][1].append(session.answer)
            store.tell(session)
            current.update({slot: (value, s) for slot, value in session.told})
    return [Examples.encode(tok, *forms[form]) for form in ("store", "window")]


def facts_so_far(users: list[list[Session]], s: int) -> dict[tuple[int, str], str]:
    """(user, slot) -> the value current after session s."""
    current = {}
    for sessions in users:
        for session in sessions[:s + 1]:
            current.update({(session.user, slot): value for slot, value in session.told})
    return current


def serve(cfg: Config, variant: str, reader, tok, users: list[list[Session]], progress: Progress) -> dict[str, list]:
    """Every held-out question, session by session, answered greedily with the variant's memory."""
    model = copy.deepcopy(reader) if variant == "weights" else reader
    distil = dataclasses.replace(cfg.sft(), warmup_steps=0)  # a phase is shorter than the usual warmup
    optimizer = make_optimizer(model, distil) if variant == "weights" else None
    gen = rngs(cfg.seed, "distill").torch
    store = UserMemory()
    rows: dict[str, list] = {k: [] for k in ("user", "session", "asked", "age", "prompt", "answer", "given")}

    def memory(x: Session) -> str:
        if variant == "window":
            return recent(users[x.user], x.index, cfg.window)  # held-out users are 0 .. users-1
        return ";".join(store.search(x.user, x.asked, cfg.k)) if variant == "store" else ""

    with progress.task(f"{variant}: {cfg.sessions} sessions of {len(users)} users", cfg.sessions) as advance:
        for s in range(cfg.sessions):
            asking = [u[s] for u in users if u[s].asked]
            problems = [Problem(prompt(x.user, memory(x), x.asked), x.answer, x.age) for x in asking]
            given = answer(model.eval(), tok, problems, max_new=6)[0] if problems else []
            for x, p, g in zip(asking, problems, given, strict=True):
                for key, value in (("user", x.user), ("session", s), ("asked", x.asked), ("age", x.age),
                                   ("prompt", p.prompt), ("answer", x.answer), ("given", g)):
                    rows[key].append(value)
            if variant == "store":
                for u in users:
                    store.tell(u[s])
            if variant == "weights" and cfg.distill_steps and s < cfg.sessions - 1:
                told = facts_so_far(users, s)
                data = Examples.encode(tok, [prompt(user, "", slot) for user, slot in told], list(told.values()))
                train_on_pools(model.train(), optimizer, distil, [data], [1.0], cfg.distill_steps, gen,
                               Progress(enabled=False), "distil")
            advance()
    rows["correct"] = [a == g for a, g in zip(rows["answer"], rows["given"], strict=True)]
    return rows


def accuracy_by(rows: dict[str, list], key: str) -> dict[str, float]:
    values, correct = np.array(rows[key]), np.array(rows["correct"], dtype=float)
    return {str(v): float(correct[values == v].mean()) for v in sorted(set(rows[key]))}


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    cfg.use_threads()
    policy = load_policy("tiny", cfg.seed, cfg.max_seq_len(), cfg.n_layer, cfg.n_head, cfg.n_embd)
    users = population(0, cfg.users, cfg.sessions, cfg.facts, cfg.update, rngs(cfg.seed, "held-out users").np)
    done = {r["variant"]: r for r in store.rounds() if "variant" in r}
    if 0 in store.completed_rounds():
        store.load_last(policy.model)
        reader_record = next(r for r in store.rounds() if r["round"] == 0)
    else:
        t0 = time.perf_counter()
        sft = cfg.sft()
        optimizer = make_optimizer(policy.model, sft)
        pools = reader_examples(cfg, policy.tok)  # half of each batch from either form
        loss, _ = train_on_pools(policy.model, optimizer, sft, pools, [0.5, 0.5], cfg.reader_steps,
                                 rngs(cfg.seed, "reader").torch, progress,
                                 f"reader on {sum(map(len, pools))} questions")
        reader_record = {"round": 0, "examples": {"store": len(pools[0]), "window": len(pools[1])}, "loss": loss,
                         "wall_seconds": time.perf_counter() - t0}
        store.record_round(0, reader_record, {"loss": loss})
        store.save_checkpoint(0, policy.model, policy.model.cfg.to_dict(), optimizer, {"round": 0})
    for r, variant in enumerate(cfg.variants, start=1):
        if variant in done:
            continue
        t0 = time.perf_counter()
        rows = serve(cfg, variant, policy.model, policy.tok, users, progress)
        store.write_samples(r, rows)
        record = {"round": r, "variant": variant, "accuracy": float(np.mean(rows["correct"])),
                  "by_session": accuracy_by(rows, "session"), "by_age": accuracy_by(rows, "age"),
                  "questions": len(rows["correct"]), "wall_seconds": time.perf_counter() - t0}
        store.record_round(r, record, {"accuracy": record["accuracy"]})
        progress.log(f"[bold]{variant}[/]  accuracy {record['accuracy']:.3f}  last session "
                     f"{record['by_session'][str(cfg.sessions - 1)]:.3f}")
        done[variant] = record
    records = [done[v] for v in cfg.variants]
    summary = {"recipe": "long-memory", "seed": cfg.seed, "users": cfg.users, "sessions": cfg.sessions,
               "window": cfg.window, "reader": reader_record, "variants": records,
               "wall_seconds": reader_record["wall_seconds"] + sum(r["wall_seconds"] for r in records)}
    store.write_summary(summary)
    store.event("finished")
    return summary


def headline(summary: dict) -> str:
    parts = [f"{r['variant']} {r['accuracy']:.3f}" for r in summary["variants"]]
    return (f"Long-term memory over {summary['sessions']} sessions of {summary['users']} held-out users: "
            f"accuracy {', '.join(parts)}")


def table(summary: dict):
    from rich.table import Table

    sessions = sorted(summary["variants"][0]["by_session"], key=int)
    t = Table(title="held-out accuracy by session (questions about earlier sessions)")
    for col in ("memory", "all", *sessions):
        t.add_column(col, justify="right")
    for r in summary["variants"]:
        t.add_row(r["variant"], f"{r['accuracy']:.3f}", *[f"{r['by_session'][s]:.2f}" for s in sessions])
    return t


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_lines

    out = []
    for key, xlabel in (("by_session", "session"), ("by_age", "sessions since the fact was told")):
        xs = sorted({int(x) for r in summary["variants"] for x in r[key]})
        series = {r["variant"]: [r[key].get(str(x)) for x in xs] for r in summary["variants"]}
        out.append(plot_lines(xs, series, f"Accuracy {key.replace('_', ' ')}", xlabel, "held-out accuracy",
                              plot_dir / f"accuracy-{key.replace('_', '-')}.png"))
    return out


RECIPE = Recipe(Config, run, headline, plots, table=table)
