"""The FinMem agent learns what news means from its own reflections and trades on it; the
recipe scores every variant on the held-out days, resumes, and refuses bad settings clearly."""

import math

import numpy as np
import pandas as pd
import pytest
from helpers import assert_clean_error, run_cli, sets, summary

from selfevolve.agents.finmem import VARIANTS, AgentConfig, performance, trade
from selfevolve.agents.market import KINDS, make_market
from selfevolve.agents.memory import LayeredMemory


def test_performance_matches_hand_computed_values():
    daily = np.array([0.1, -0.2, 0.1])
    got = performance(daily)
    assert got["return"] == pytest.approx(1.1 * 0.8 * 1.1 - 1)
    assert got["max_drawdown"] == pytest.approx(0.2)  # 1.1 -> 0.88
    assert got["sharpe"] == pytest.approx(daily.mean() / daily.std() * math.sqrt(252))
    assert performance(np.zeros(4)) == {"return": 0.0, "sharpe": 0.0, "max_drawdown": 0.0}


def test_reflections_teach_the_agent_which_way_news_moves_the_price():
    """After trading a market, the direction the agent reads for each kind of news has the sign of
    its sentiment for rumours (the strongest kind) and is zero for distractors, which move nothing."""
    agent = trade(make_market(1), "layered", AgentConfig(), seed=1).agent
    rumour, distractor = (next(k for k in KINDS if k.name == name) for name in ("rumour", "distractor"))
    for text in rumour.positive:
        assert agent.direction(text.format(co="Acme")) > 0.005
    for text in rumour.negative:
        assert agent.direction(text.format(co="Acme")) < -0.005
    for text in distractor.positive + distractor.negative:
        assert agent.direction(text.format(co="Acme")) == 0.0


def test_the_layered_agent_beats_buy_and_hold_on_held_out_days():
    """Mean held-out Sharpe over two markets: the memory agent has learned to read the news."""
    sharpe = {v: [] for v in ("layered", "buy_and_hold")}
    for seed in (1, 2):
        market = make_market(seed)
        for variant in sharpe:
            positions = trade(market, variant, AgentConfig(), seed).positions
            sharpe[variant].append(performance((positions * market.returns)[market.test_start:])["sharpe"])
    assert np.mean(sharpe["layered"]) > np.mean(sharpe["buy_and_hold"]) + 2


def test_no_ablation_is_buy_and_hold_in_disguise():
    """Every variant but buy-and-hold changes its position during the held-out days (the old no-decay
    ablation read the same stale items every day and stayed long throughout: buy-and-hold exactly)."""
    market = make_market(1)
    for variant in VARIANTS:
        held = trade(market, variant, AgentConfig(), 1).positions[market.test_start:]
        assert (len(set(held)) == 1) == (variant == "buy_and_hold"), variant


def test_finmem_run_writes_every_variant_and_a_loadable_memory(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("run", "finmem", "--out", str(out), *sets(["days=200", "seed=3"]))
    assert proc.returncode == 0, proc.stderr
    s = summary(out)
    assert set(s["test"]) == set(VARIANTS) and s["wall_seconds"] > 0
    for result in s["test"].values():
        assert set(result) == {"return", "sharpe", "max_drawdown"} and 0 <= result["max_drawdown"] < 1
    market = make_market(3, days=200)
    assert s["test"]["buy_and_hold"] == pytest.approx(performance(market.returns[market.test_start:]))
    trajectory = pd.read_parquet(out / "samples" / "round-000.parquet")  # the layered agent, day by day
    assert len(trajectory) == 200 and trajectory["held_out"].sum() == 80
    assert trajectory["memory_reflection"].iloc[-1] > 0 and set(trajectory["position"]) <= {-1, 0, 1}
    memory = LayeredMemory.load(out / "memory.npz")
    assert memory.sizes()["reflection"] == trajectory["memory_reflection"].iloc[-1]
    assert (out / "report.html").exists() and "layered" in proc.stdout


@pytest.mark.parametrize("setting, message", [
    ("variants=layered,magic", "variants must be some of"),
    ("mid_sources=gossip", "unknown news source 'gossip'"),
    ("test_fraction=1.5", "test_fraction must be between 0 and 1"),
    ("window=0", "window must be >= 1"),
])
def test_bad_settings_get_one_clear_error(tmp_path, setting, message):
    assert_clean_error(run_cli("run", "finmem", "--out", str(tmp_path / "r"), "--set", setting), message)
    assert not (tmp_path / "r").exists()
