"""FinMem's layered agent against its ablations over many fresh markets, with 95% confidence intervals.

    python bench/finmem_seeds.py [--seeds 1000-1029] [--dev 10-14]

The agent's defaults were chosen on the development markets 10-14 only; the reported markets are
seeds nobody tuned on. Each market runs every variant (agents/finmem.py) with the recipe's defaults
and scores the held-out days' annualised Sharpe ratio. Prints one JSON line per split and variant:
the mean Sharpe with a bootstrap 95% interval over markets, and the mean paired difference from
the layered agent (same markets) with its interval and the number of markets it beats the layered one.
"""

from __future__ import annotations

import argparse

import numpy as np
from common import emit, seed_list

from selfevolve.agents.finmem import VARIANTS, performance, trade
from selfevolve.agents.market import make_market
from selfevolve.metrics import mean_interval
from selfevolve.recipes.finmem import Config


def interval(values: np.ndarray, rng: np.random.Generator) -> list[float]:
    return [round(q, 3) for q in mean_interval(values, rng)]


def sharpes(markets: list[int], cfg: Config) -> dict[str, np.ndarray]:
    out = {v: [] for v in VARIANTS}
    for seed in markets:
        market = make_market(seed, cfg.days, cfg.noise, cfg.test_fraction)
        for variant in VARIANTS:
            positions = trade(market, variant, cfg, seed).positions
            out[variant].append(performance((positions * market.returns)[market.test_start:])["sharpe"])
    return {v: np.array(s) for v, s in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="1000-1029", help="fresh markets reported (first-last)")
    ap.add_argument("--dev", default="10-14", help="the development markets the defaults were chosen on")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for split, markets in (("dev", seed_list(args.dev)), ("fresh", seed_list(args.seeds))):
        result = sharpes(markets, Config())
        for variant, values in result.items():
            diff = values - result["layered"]
            emit(bench="finmem_seeds", split=split, markets=f"{markets[0]}-{markets[-1]}", n=len(markets),
                 variant=variant, mean_sharpe=round(float(values.mean()), 3), ci95=interval(values, rng),
                 minus_layered=round(float(diff.mean()), 3), minus_layered_ci95=interval(diff, rng),
                 beats_layered=int((diff > 0).sum()), ties=int((diff == 0).sum()))


if __name__ == "__main__":
    main()
