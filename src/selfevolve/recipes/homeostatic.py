"""Homeostatic learners under concept shift (Man, Damasio and Neven 2022): does a step size that grows with
the learner's own need beat a tuned constant one, random regulation, and the same error signal without
an internal state? And does the regulation of the paper's code (lrh: classes that excite or inhibit the
step size, nudges tried on recent samples) beat the same lookahead without them? (train/homeostatic.py
has the learner and the regulators.)

    for each swap rate: choose every regulator's settings (base step size, coupling; Adam's step
    size) on `dev_seeds` streams, then score each on `seeds` other streams: prequential accuracy
    (each digit classified before it is learned from), mean and a bootstrap 95% interval over seeds

    selfevolve run homeostatic --set swap_every=2000,500,150 --set seeds=10
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfevolve.config import check_min
from selfevolve.metrics import mean_interval
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.store import RunStore
from selfevolve.train.homeostatic import REGULATORS, Need, learn, shuffled, stream

DEV_SEEDS_FROM = 1_000  # dev streams never share a seed with test streams
STREAM_WINDOW = 100  # digits per point of the accuracy-over-the-stream plot


@dataclass
class Config:
    seeds: int = 10
    """Test streams per swap rate; the figures' mean and interval are over them."""
    first_seed: int = 0
    """The test streams are seeds first_seed..first_seed+seeds-1 (fresh seeds: 10 with the default 10)."""
    dev_seeds: int = 3
    """Streams each regulator's settings are chosen on (seeds from 1000)."""
    samples: int = 6000
    """Digits per stream."""
    swap_every: tuple[int, ...] = (2000, 500, 150)
    """Concept-shift rates: two classes trade labels every this many samples."""
    lr_grid: tuple[float, ...] = (0.02, 0.03, 0.05, 0.08, 0.12)
    """Base step sizes tried on dev (constant, homeostatic, surprise; lrh and lookahead start there and
    move by a tenth of it)."""
    coupling_grid: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    """How strongly need (or surprise) raises the step size: lr = base x (1 + coupling x signal)."""
    adam_grid: tuple[float, ...] = (0.001, 0.003, 0.01)
    """Adam's step sizes tried on dev."""
    gain: float = 0.05
    """Energy a right answer gives (set point 1)."""
    cost: float = 0.2
    """Energy a wrong answer costs."""

    def __post_init__(self) -> None:
        check_min(self, 1, "seeds", "dev_seeds", "samples")
        check_min(self, 0, "first_seed")
        if self.first_seed + self.seeds > DEV_SEEDS_FROM:
            raise ValueError(f"test seeds {self.first_seed}..{self.first_seed + self.seeds - 1} would reach the "
                             f"dev streams (seeds from {DEV_SEEDS_FROM}); lower first_seed or seeds")
        if not self.swap_every or min(self.swap_every) < 1:
            raise ValueError(f"swap_every must be positive sample counts, got {self.swap_every}")
        for name in ("lr_grid", "coupling_grid", "adam_grid"):
            if not getattr(self, name) or min(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive numbers, got {getattr(self, name)}")
        if not 0 < self.gain <= 1 or not 0 < self.cost <= 1:
            raise ValueError(f"gain and cost must be in (0, 1], got {self.gain}, {self.cost}")


def answers(cfg: Config, regulator: str, seed: int, swap: int, lr: float, coupling: float = 0.0) -> np.ndarray:
    """Right or wrong on each digit of the stream, classified before it is learned from."""
    x, labels = stream(seed, cfg.samples, swap)
    need = Need(cfg.gain, cfg.cost)
    if regulator == "random":  # the homeostatic learner's own step sizes on this stream, shuffled
        own = learn(x, labels, "homeostatic", lr, seed, coupling, Need(cfg.gain, cfg.cost))["lr"]
        return learn(x, labels, "random", lr, seed, schedule=shuffled(own, seed))["right"]
    return learn(x, labels, regulator, lr, seed, coupling, need)["right"]


def over_the_stream(right: list[np.ndarray], window: int = STREAM_WINDOW) -> list[float]:
    """Mean accuracy over the seeds in consecutive windows of the stream (the last may be shorter)."""
    mean = np.mean(right, axis=0)
    return [float(mean[i:i + window].mean()) for i in range(0, len(mean), window)]


def grid(cfg: Config, regulator: str) -> list[tuple[float, float]]:
    if regulator == "adam":
        return [(lr, 0.0) for lr in cfg.adam_grid]
    if regulator in ("constant", "lrh", "lookahead"):
        return [(lr, 0.0) for lr in cfg.lr_grid]
    return list(itertools.product(cfg.lr_grid, cfg.coupling_grid))


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    done = {r["swap_every"]: r for r in store.rounds()}
    dev = [DEV_SEEDS_FROM + k for k in range(cfg.dev_seeds)]
    test_seeds = range(cfg.first_seed, cfg.first_seed + cfg.seeds)
    for r, swap in enumerate(cfg.swap_every):
        if swap in done:
            continue
        t0 = time.perf_counter()
        chosen, results = {}, {}
        settings = {reg: grid(cfg, reg) for reg in REGULATORS if reg != "random"}
        total = sum(len(g) for g in settings.values()) * len(dev) + len(REGULATORS) * cfg.seeds
        with progress.task(f"swap every {swap}: choose on dev, then score on test", total) as advance:
            for reg, points in settings.items():
                scores = []
                for lr, coupling in points:
                    scores.append(np.mean([answers(cfg, reg, s, swap, lr, coupling).mean() for s in dev]))
                    advance(len(dev))
                chosen[reg] = points[int(np.argmax(scores))]
            chosen["random"] = chosen["homeostatic"]
            for reg in REGULATORS:
                results[reg] = [answers(cfg, reg, s, swap, *chosen[reg]) for s in test_seeds]
                advance(cfg.seeds)
        per_seed = {reg: [float(right.mean()) for right in v] for reg, v in results.items()}
        record = {"round": r, "swap_every": swap, "chosen": {k: list(v) for k, v in chosen.items()},
                  "test": {reg: {"mean": float(np.mean(per_seed[reg])), "per_seed": per_seed[reg],
                                 "ci95": mean_interval(per_seed[reg], np.random.default_rng(r)),
                                 "over_the_stream": over_the_stream(results[reg])} for reg in REGULATORS},
                  "wall_seconds": time.perf_counter() - t0}
        store.record_round(r, record, {f"accuracy/{reg}": record["test"][reg]["mean"] for reg in REGULATORS})
        progress.log(f"[bold]swap every {swap}[/]  " + "  ".join(
            f"{reg} {record['test'][reg]['mean']:.3f}" for reg in REGULATORS))
        done[swap] = record
    rows = [done[s] for s in cfg.swap_every]
    summary = {"recipe": "homeostatic", "seeds": cfg.seeds, "first_seed": cfg.first_seed, "samples": cfg.samples,
               "rates": rows, "wall_seconds": sum(r["wall_seconds"] for r in rows)}
    store.write_summary(summary)
    store.event("finished")
    return summary


def headline(summary: dict) -> str:
    parts = []
    for r in summary["rates"]:
        t = r["test"]
        best_other = max((reg for reg in REGULATORS if reg != "homeostatic"), key=lambda reg: t[reg]["mean"])
        parts.append(f"swap every {r['swap_every']}: homeostatic {t['homeostatic']['mean']:.3f} vs "
                     f"{best_other} {t[best_other]['mean']:.3f}")
    first = summary.get("first_seed", 0)  # runs before first_seed existed tested seeds from 0
    return "; ".join(parts) + f" (prequential accuracy, seeds {first}-{first + summary['seeds'] - 1})"


def table(summary: dict):
    from rich.table import Table

    t = Table(title=f"prequential accuracy, mean [95% interval] over {summary['seeds']} seeds")
    t.add_column("swap every", justify="right")
    for reg in REGULATORS:
        t.add_column(reg, justify="right")
    for r in summary["rates"]:
        t.add_row(str(r["swap_every"]), *[f"{r['test'][reg]['mean']:.3f} [{r['test'][reg]['ci95'][0]:.3f}, "
                                          f"{r['test'][reg]['ci95'][1]:.3f}]" for reg in REGULATORS])
    return t


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_lines

    rates = [r["swap_every"] for r in summary["rates"]]
    by_rate = plot_lines(rates, {reg: [r["test"][reg]["mean"] for r in summary["rates"]] for reg in REGULATORS},
                         "Prequential accuracy by concept-shift rate", "samples between label swaps", "accuracy",
                         plot_dir / "accuracy_by_rate.png")
    return [by_rate] + [plot_lines([STREAM_WINDOW * k for k in range(len(r["test"][REGULATORS[0]]["over_the_stream"]))],
                                   {reg: r["test"][reg]["over_the_stream"] for reg in REGULATORS},
                                   f"Accuracy over the stream, labels swapped every {r['swap_every']} (mean of "
                                   f"{summary['seeds']} seeds)", "digit", f"accuracy over the next {STREAM_WINDOW}",
                                   plot_dir / f"stream-swap-{r['swap_every']}.png")
                        for r in summary["rates"]]


RECIPE = Recipe(Config, run, headline, plots, table=table)
