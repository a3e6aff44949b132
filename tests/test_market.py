"""The synthetic market: one seed, one market; each kind of news moves the price for as long as
it says, in the direction it says, and distractors move nothing (checked on the returns)."""

import numpy as np
import pytest

from selfevolve.agents.market import KINDS, make_market


def test_the_same_seed_gives_the_same_market():
    a, b = make_market(3), make_market(3)
    assert np.array_equal(a.returns, b.returns) and a.news == b.news
    assert not np.array_equal(a.returns, make_market(4).returns)
    assert a.test_start == 300 and a.prices.shape == (500,) and (a.prices > 0).all()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_news_moves_returns_for_its_lifetime_and_no_longer(kind):
    """Mean return on the days an item of this kind is (or is no longer) active, signed by its
    sentiment, pooled over many markets: its effect inside the lifetime, zero just after."""
    inside, after = [], []
    for seed in range(40):
        m = make_market(seed, days=400)
        for day in m.news:
            for item in day:
                if item.kind != kind.name:
                    continue
                life = max(kind.lifetime, 1)
                inside += list(item.sentiment * m.returns[item.day : item.day + life])
                after += list(item.sentiment * m.returns[item.day + life : item.day + life + 5])
    assert np.mean(inside) == pytest.approx(kind.effect, abs=0.0015)
    assert np.mean(after) == pytest.approx(0, abs=0.0015)


def test_bad_market_settings_are_refused():
    with pytest.raises(ValueError, match="days >= 10"):
        make_market(0, days=5)
