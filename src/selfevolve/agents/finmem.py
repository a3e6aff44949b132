"""A FinMem-style trading agent on the synthetic market, and the backtest that scores it.

Yu et al. (2023), "FinMem", arXiv:2311.13743, with a rule in place of the LLM:

    each day, at the open: the day's news enters memory, filed by source as FinMem files them
    (news in the short layer; `mid_sources`, here earnings reports, in the mid layer); the agent
    retrieves the top `k` items of the short, mid and long layers (score = similarity to its
    query + recency + importance); it reads each item's direction from the reflection layer: the
    mean daily move recorded by the reflections on the same news, minus the mean over all
    reflections, counted only when at least `min_t` standard errors from zero; the signal is the
    sum of directions weighted by recency ** `recency_power` x importance / 100; buy (go long)
    above `threshold`, sell (go short) below -`threshold`, otherwise hold the position
    at the close: each cited item gets feedback (+ if its direction matched the day's move, - if
    not) and the memory steps a day (decay, clean-up, promotion, demotion); news that has now
    seen `horizon` closes (`mid_horizon` for mid-layer sources) is reflected on: "<news>. Over
    the next N days the price moved +x%" joins the reflection layer, found by the news's text

Variants, the ablations of the recipe: `layered` (the above), `one_layer` (every news item in the
short layer, which never promotes: the layers removed, everything else the same), `no_feedback`,
`flat_window` (the news of the last `window` days, equally weighted, directions from the same
reflections) and `buy_and_hold`. (An earlier `no_decay` ablation, recency and importance never
decaying, was degenerate: with recency constant the fixed query retrieves the same few
feedback-inflated items every day, so it held one position for the whole test, exactly
buy-and-hold; it said nothing about the layers.)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import numpy as np

from selfevolve.agents.market import COMPANY, Market
from selfevolve.agents.memory import FINMEM_LAYERS, LAYERS, LayeredMemory

VARIANTS = ("layered", "buy_and_hold", "flat_window", "one_layer", "no_feedback")
ONE_LAYER = {**FINMEM_LAYERS, "short": replace(FINMEM_LAYERS["short"], promote_at=math.inf)}
REFLECTION = re.compile(r"Over the next (\d+) days the price moved ([+-]\d+\.\d+)%$")


@dataclass(frozen=True)
class AgentConfig:
    k: int = 5
    """Items retrieved per layer (short, mid, long) for a decision."""
    reflection_k: int = 1000
    """Reflections read to judge the direction of one item (the most similar first)."""
    min_similarity: float = 0.9
    """Only reflections at least this similar to the item count (0.9: the same news text)."""
    min_t: float = 2.0
    """An item's direction counts only when its reflections' excess move is this many standard errors."""
    threshold: float = 0.001
    """Buy when the signal is above it, sell below minus it, hold in between."""
    recency_power: float = 6.0
    """An item's weight in the signal is recency ** this x importance / 100."""
    horizon: int = 1
    """Reflect on short-layer news after this many closes, with the move over them."""
    mid_horizon: int = 10
    """The same for news from mid- and long-layer sources."""
    window: int = 1
    """Days of news the flat-window ablation keeps."""
    mid_sources: tuple[str, ...] = ("earnings",)
    """News sources filed in the mid layer (FinMem: quarterly reports); the rest go to short."""
    long_sources: tuple[str, ...] = ()
    """News sources filed in the long layer (FinMem: annual reports)."""

    def layer_of(self, source: str) -> str:
        return "mid" if source in self.mid_sources else "long" if source in self.long_sources else "short"

    def horizon_of(self, source: str) -> int:
        return self.horizon if self.layer_of(source) == "short" else self.mid_horizon


class Agent:
    """One variant of the agent: `decide` at the open, `settle` at the close, `reflect` on old news."""

    def __init__(self, variant: str, cfg: AgentConfig, seed: int) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; variants: {', '.join(VARIANTS)}")
        self.variant, self.cfg = variant, cfg
        self.memory = LayeredMemory(layers=ONE_LAYER if variant == "one_layer" else FINMEM_LAYERS, seed=seed)
        self.query = f"{COMPANY} news that moves the share price"
        self.position = 0
        self.daily_moves: list[float] = []  # one per reflection ever written
        self.base_move = 0.0  # their mean: the move after news at large

    def direction(self, text: str) -> float:
        """Excess mean daily move after news like this, or 0 while the evidence is thin."""
        hits = self.memory.query(text, self.cfg.reflection_k, ("reflection",), self.cfg.min_similarity)["reflection"]
        moves = np.array([daily_move(h.text) for h in hits])
        if len(moves) < 2:
            return 0.0
        excess = moves.mean() - self.base_move
        stderr = moves.std(ddof=1) / math.sqrt(len(moves))
        return float(excess) if abs(excess) >= self.cfg.min_t * stderr else 0.0

    def decide(self, news: list[tuple[str, str]], window: list[list[tuple[str, str]]]) -> tuple[int, list]:
        """Today's position (+1 long, -1 short) and the (memory id, direction) of the items it cited."""
        if self.variant == "buy_and_hold":
            return 1, []
        if self.variant == "flat_window":
            texts = [text for day in window for text, _ in day]
            return self._act(sum(self.direction(t) for t in texts) / max(len(texts), 1)), []
        for layer in ("short", "mid", "long"):
            self.memory.add([text for text, source in news if self.layer_of(source) == layer], layer)
        cited, signal, known = [], 0.0, {}  # known: the direction of each text read today
        for hits in self.memory.query(self.query, self.cfg.k, layers=("short", "mid", "long")).values():
            for hit in hits:
                if hit.text not in known:
                    known[hit.text] = self.direction(hit.text)
                d = known[hit.text]
                signal += d * hit.recency**self.cfg.recency_power * min(hit.importance, 100) / 100
                cited.append((hit.id, d))
        return self._act(signal), cited

    def layer_of(self, source: str) -> str:
        return "short" if self.variant == "one_layer" else self.cfg.layer_of(source)

    def _act(self, signal: float) -> int:
        if abs(signal) > self.cfg.threshold:
            self.position = 1 if signal > 0 else -1
        return self.position

    def settle(self, cited: list[tuple[int, float]], market_return: float) -> None:
        """At the close: feedback on each cited item, then a day of decay and layer moves."""
        if self.variant in ("layered", "one_layer"):
            self.memory.feedback([i for i, d in cited if d * market_return > 0], 1.0)
            self.memory.feedback([i for i, d in cited if d * market_return < 0], -1.0)
        self.memory.step(1.0)

    def reflect(self, texts: list[str], days: int, move: float) -> None:
        """Record the move over the `days` closes since these news items appeared."""
        if texts:
            self.daily_moves += [move / days] * len(texts)
            self.base_move = float(np.mean(self.daily_moves))
            self.memory.add([f"{t}. Over the next {days} days the price moved {100 * move:+.2f}%" for t in texts],
                            "reflection", importance=[80.0] * len(texts), keys=texts)


def daily_move(reflection: str) -> float:
    """The mean daily move a reflection records."""
    days, percent = REFLECTION.search(reflection).groups()
    return float(percent) / 100 / int(days)


@dataclass
class Backtest:
    positions: np.ndarray  # (days,) +1 / 0 / -1 held over each day
    memory_sizes: np.ndarray  # (days, 4) items per layer at each close, in LAYERS order
    agent: Agent  # as it ended: its memory, reflections and base rate


def trade(market: Market, variant: str, cfg: AgentConfig, seed: int) -> Backtest:
    """Run one variant over every day of the market; it learns online, from the past only."""
    agent = Agent(variant, cfg, seed)
    news = [[(item.text, item.kind) for item in day] for day in market.news]
    positions = np.zeros(market.days)
    sizes = np.zeros((market.days, len(LAYERS)), dtype=np.int64)
    for day in range(market.days):
        positions[day], cited = agent.decide(news[day], news[max(0, day - cfg.window + 1) : day + 1])
        if variant != "buy_and_hold":
            agent.settle(cited, market.returns[day])
            for horizon in sorted({cfg.horizon, cfg.mid_horizon}):
                first = day - horizon + 1  # the news of day `first` has now seen `horizon` closes
                if first >= 0:
                    texts = [text for text, source in news[first] if cfg.horizon_of(source) == horizon]
                    agent.reflect(texts, horizon, float(np.prod(1 + market.returns[first : day + 1]) - 1))
        sizes[day] = list(agent.memory.sizes().values())
    return Backtest(positions, sizes, agent)


def performance(daily: np.ndarray) -> dict[str, float]:
    """Cumulative return, annualised Sharpe ratio (252 days, no risk-free rate), maximum drawdown."""
    equity = np.cumprod(1 + daily)
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    sd = daily.std()
    return {"return": float(equity[-1] - 1), "sharpe": float(daily.mean() / sd * math.sqrt(252)) if sd > 0 else 0.0,
            "max_drawdown": float((1 - equity / peak).max())}
