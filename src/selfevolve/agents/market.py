"""A synthetic market whose prices follow its news: the test bed of memory-based trading agents.

Each day some news items appear: templated text of a kind and a sentiment (+1 or -1). An item
adds sentiment x effect to the daily drift for `lifetime` days from the day it appears, and a
day's return is its drift plus Gaussian noise. So what an agent should remember depends on the
kind: earnings move the price for weeks, analyst notes for days, rumours for one day, and
distractors never. The news of day t is known before day t's return (decide at the open,
settle at the close). One seed gives one market; the last `test_fraction` of the days are held out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COMPANY = "Acme"


@dataclass(frozen=True)
class NewsKind:
    name: str
    lifetime: int  # days the item moves the drift
    effect: float  # drift per day while active, times the sentiment
    per_day: float  # expected items per day (Poisson)
    positive: tuple[str, ...]
    negative: tuple[str, ...]


KINDS = (
    NewsKind("earnings", 20, 0.004, 0.06,
             ("{co} beats earnings estimates and raises its guidance", "{co} reports record quarterly profit"),
             ("{co} misses earnings estimates and cuts its guidance", "{co} reports a quarterly loss")),
    NewsKind("analyst", 5, 0.003, 0.15,
             ("Analyst upgrades {co} to buy", "Broker lifts its price target on {co}"),
             ("Analyst downgrades {co} to sell", "Broker cuts its price target on {co}")),
    NewsKind("rumour", 1, 0.012, 0.3,
             ("Rumour: {co} is a takeover target", "Rumour: {co} wins a large contract"),
             ("Rumour: regulators probe {co} accounts", "Rumour: {co} loses a key customer")),
    NewsKind("distractor", 0, 0.0, 1.0,
             ("{co} sponsors the city marathon", "{co} opens a new office cafe", "{co} changes its logo colour"),
             ("{co} moves its annual picnic indoors", "{co} updates its website", "{co} hires a new chef")),
)


@dataclass(frozen=True)
class NewsItem:
    day: int
    kind: str
    sentiment: int  # +1 or -1 (distractors: the sign of a template chosen at random; it moves nothing)
    text: str


@dataclass
class Market:
    news: list[list[NewsItem]]  # the items of each day
    drift: np.ndarray  # (days,) the expected return of each day, from the news alone
    returns: np.ndarray  # (days,) close-to-close returns
    test_start: int  # first held-out day

    @property
    def days(self) -> int:
        return len(self.returns)

    @property
    def prices(self) -> np.ndarray:
        return 100 * np.cumprod(1 + self.returns)


def make_market(seed: int, days: int = 500, noise: float = 0.01, test_fraction: float = 0.4) -> Market:
    if days < 10 or not 0 < test_fraction < 1 or noise < 0:
        raise ValueError("need days >= 10, 0 < test_fraction < 1 and noise >= 0")
    rng = np.random.default_rng(seed)
    news: list[list[NewsItem]] = [[] for _ in range(days)]
    drift = np.zeros(days)
    for day in range(days):
        for kind in KINDS:
            for _ in range(rng.poisson(kind.per_day)):
                sentiment = 1 if rng.random() < 0.5 else -1
                templates = kind.positive if sentiment > 0 else kind.negative
                text = templates[rng.integers(len(templates))].format(co=COMPANY)
                news[day].append(NewsItem(day, kind.name, sentiment, text))
                drift[day : day + kind.lifetime] += sentiment * kind.effect
    returns = drift + noise * rng.standard_normal(days)
    return Market(news, drift, returns, int(days * (1 - test_fraction)))
