"""FinMem: a trading agent with layered memory, against its ablations, on a synthetic market.

Yu et al. (2023), "FinMem: A Performance-Enhanced LLM Trading Agent with Layered Memory and
Character Design", arXiv:2311.13743, with a rule in place of the LLM (agents/finmem.py):

    one market from the seed (agents/market.py): daily returns follow templated news of four
    kinds with lifetimes of 20, 5, 1 and 0 days; the last `test_fraction` of the days is held out
    each variant trades every day, deciding at the open from what it has in memory and
    learning online (feedback, reflections) from the past only; the held-out days are scored:
    cumulative return, annualised Sharpe ratio, maximum drawdown
    variants: layered (FinMem), buy_and_hold, flat_window, one_layer, no_feedback

    selfevolve run finmem --set seed=1

Each variant is one round of the run (samples/round-NNN.parquet: its daily positions, returns
and memory layer sizes), so an interrupted run resumes at the next variant.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfevolve.agents.finmem import VARIANTS, AgentConfig, performance, trade
from selfevolve.agents.market import KINDS, make_market
from selfevolve.agents.memory import LAYERS
from selfevolve.config import check_min
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.store import RunStore


@dataclass(frozen=True)
class Config(AgentConfig):
    seed: int = 0
    """Seeds the market and the memory's importance draws; same seed = same run."""
    days: int = 500
    """Trading days of the market."""
    noise: float = 0.01
    """Standard deviation of the daily return around the news-driven drift."""
    test_fraction: float = 0.4
    """The last this share of the days is the held-out period that is scored."""
    variants: tuple[str, ...] = VARIANTS
    """Which agents trade: layered, buy_and_hold, flat_window, one_layer, no_feedback."""

    def __post_init__(self) -> None:
        check_min(self, 1, "k", "reflection_k", "horizon", "mid_horizon", "window")
        check_min(self, 10, "days")
        for name in ("min_similarity", "min_t", "threshold", "recency_power", "noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be between 0 and 1, got {self.test_fraction}")
        sources = {kind.name for kind in KINDS}
        for source in (*self.mid_sources, *self.long_sources):
            if source not in sources:
                raise ValueError(f"unknown news source {source!r}; sources: {', '.join(sorted(sources))}")
        if not self.variants or set(self.variants) - set(VARIANTS):
            raise ValueError(f"variants must be some of {', '.join(VARIANTS)}, got {', '.join(self.variants)}")


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    market = make_market(cfg.seed, cfg.days, cfg.noise, cfg.test_fraction)
    done = store.rounds()
    start = time.perf_counter() - (done[-1]["wall_seconds"] if done else 0.0)
    if done:
        progress.log(f"resuming at variant {len(done) + 1} of {len(cfg.variants)}")
    with progress.task(f"FinMem market {cfg.seed}: {market.days} days, trade", len(cfg.variants), len(done)) as advance:
        for i, variant in enumerate(cfg.variants[len(done):], start=len(done)):
            backtest = trade(market, variant, cfg, cfg.seed)
            daily = backtest.positions * market.returns
            store.write_samples(i, {"day": list(range(market.days)), "position": backtest.positions.tolist(),
                                    "market_return": market.returns.tolist(), "return": daily.tolist(),
                                    "held_out": [d >= market.test_start for d in range(market.days)],
                                    **{f"memory_{name}": backtest.memory_sizes[:, j].tolist()
                                       for j, name in enumerate(LAYERS)}})
            if variant == "layered":
                backtest.agent.memory.save(store.path / "memory.npz")
            test, train = performance(daily[market.test_start:]), performance(daily[: market.test_start])
            record = {"round": i, "variant": variant, **{f"test_{k}": v for k, v in test.items()},
                      "train_sharpe": train["sharpe"], "trades": int(np.count_nonzero(np.diff(backtest.positions))),
                      "wall_seconds": time.perf_counter() - start}
            store.record_round(i, record, {f"test/sharpe/{variant}": test["sharpe"]})
            advance(sharpe=test["sharpe"])
    summary = {"recipe": "finmem", "seed": cfg.seed, "days": market.days, "test_start": market.test_start,
               "test": {}, "equity": {}, "memory_sizes": {}, "wall_seconds": time.perf_counter() - start}
    for i, variant in enumerate(cfg.variants):
        samples = store.read_samples(i).to_pydict()
        daily = np.array(samples["return"])[market.test_start:]
        summary["test"][variant] = performance(daily)
        summary["equity"][variant] = np.cumprod(1 + daily).round(6).tolist()
        if variant == "layered":
            summary["memory_sizes"] = {name: samples[f"memory_{name}"] for name in LAYERS}
    store.write_summary(summary)
    store.event("finished")
    return summary


def headline(summary: dict) -> str:
    shown = ", ".join(f"{v} {r['sharpe']:.2f}" for v, r in summary["test"].items())
    return (f"FinMem on market {summary['seed']}, held-out Sharpe ratio: {shown} "
            f"({summary['days'] - summary['test_start']} held-out days, {summary['wall_seconds']:.0f} s)")


def table(summary: dict):
    from rich.table import Table

    out = Table(title=f"Held-out days {summary['test_start']}-{summary['days'] - 1} of market {summary['seed']}")
    for col in ("variant", "return", "Sharpe", "max drawdown"):
        out.add_column(col, justify="left" if col == "variant" else "right")
    for variant, r in summary["test"].items():
        out.add_row(variant, f"{r['return']:+.1%}", f"{r['sharpe']:.2f}", f"{r['max_drawdown']:.1%}")
    return out


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_bars, plot_lines

    days = list(range(summary["test_start"], summary["days"]))
    out = [plot_lines(days, summary["equity"], "Equity over the held-out days (start = 1)", "day", "equity",
                      plot_dir / "equity.png", hline=(1.0, "start")),
           plot_bars({v: r["sharpe"] for v, r in summary["test"].items()}, "Held-out Sharpe ratio (annualised)",
                     "Sharpe ratio", plot_dir / "sharpe.png")]
    if summary["memory_sizes"]:
        sizes, days = summary["memory_sizes"], list(range(summary["days"]))
        out += [plot_lines(days, {k: sizes[k] for k in ("short", "mid", "long")}, "Layered memory: news per layer",
                           "day", "items", plot_dir / "memory_layers.png"),
                plot_lines(days, {"reflection": sizes["reflection"]}, "Layered memory: reflections", "day", "items",
                           plot_dir / "memory_reflections.png")]
    return out


RECIPE = Recipe(Config, run, headline, plots, table=table)
