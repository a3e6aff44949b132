"""Population operators: merges against hand-computed values, mutation touches the configured
fraction, selection draws with the stated probabilities, succession follows its formula."""

import pytest
import torch

from selfevolve.evolve.ops import (
    Flat,
    crossover,
    dare,
    dare_ties_merge,
    linear_merge,
    majority_vote,
    mutate,
    select,
    succession,
    survive,
    ties_merge,
    trim,
)

TAUS = torch.tensor([[1.0, -2.0, 3.0, 0.1], [-4.0, 1.0, 2.0, 0.2], [2.0, 3.0, -1.0, 0.0]])


def test_linear_merge_is_the_weighted_average():
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.equal(linear_merge(v), torch.tensor([2.0, 3.0]))
    assert torch.equal(linear_merge(v, [1, 3]), torch.tensor([2.5, 3.5]))
    with pytest.raises(ValueError, match="non-negative"):
        linear_merge(v, [1, -1])


def test_trim_keeps_the_largest_magnitudes_of_each_row():
    assert torch.equal(trim(torch.tensor([[1.0, -5.0, 2.0, 0.5]]), 0.5), torch.tensor([[0.0, -5.0, 2.0, 0.0]]))


def test_ties_elects_signs_and_averages_the_agreeing_entries():
    # no trim: signs of the column sums (-1, 2, 4, 0.3) are (-, +, +, +)
    torch.testing.assert_close(ties_merge(TAUS, density=1.0), torch.tensor([-4.0, 2.0, 2.5, 0.15]))
    # trimmed to 2 of 4 per row: [0,-2,3,0], [-4,0,2,0], [2,3,0,0]; sums (-2, 1, 5, 0)
    torch.testing.assert_close(ties_merge(TAUS, density=0.5), torch.tensor([-4.0, 3.0, 2.5, 0.0]))
    base = torch.tensor([1.0, 1.0, 1.0, 1.0])
    torch.testing.assert_close(ties_merge(TAUS + base, density=1.0, base=base, scale=0.5),
                               base + 0.5 * torch.tensor([-4.0, 2.0, 2.5, 0.15]))


def test_dare_drops_the_configured_fraction_and_keeps_the_mean():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 50_000) + 1
    out = dare(x, 0.3, g)
    assert abs((out == 0).float().mean().item() - 0.3) < 0.01
    torch.testing.assert_close(out[out != 0], x[out != 0] / 0.7)
    assert abs(out.mean().item() - x.mean().item()) < 0.01
    # with nothing dropped DARE-TIES is TIES without trimming
    torch.testing.assert_close(dare_ties_merge(TAUS, 0.0, g), ties_merge(TAUS, density=1.0))


def test_crossover_weights_parents_by_fitness():
    a, b = torch.zeros(2, 3), torch.ones(2, 3)
    child = crossover(a, b, torch.tensor([3.0, 0.0]), torch.tensor([1.0, 0.0]))
    assert torch.equal(child, torch.tensor([[0.25] * 3, [0.5] * 3]))


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5])
def test_mutation_touches_the_configured_fraction(rate):
    x = torch.zeros(20, 5000)
    out = mutate(x, rate, 0.02, torch.Generator().manual_seed(1))
    assert abs((out != 0).float().mean().item() - rate) < 0.005
    assert abs(out[out != 0].std().item() - 0.02) < 0.002


def frequencies(fitness, method, **kw):
    picks = select(torch.tensor(fitness), 60_000, method, torch.Generator().manual_seed(2), **kw)
    return torch.bincount(picks, minlength=len(fitness)).float() / 60_000


def test_selection_draws_with_the_stated_probabilities():
    torch.testing.assert_close(frequencies([0.0, 1.0, 3.0], "roulette"), torch.tensor([0.0, 0.25, 0.75]),
                               atol=0.01, rtol=0)
    torch.testing.assert_close(frequencies([5.0, 0.0, 2.0], "rank"), torch.tensor([3, 1, 2]) / 6, atol=0.01, rtol=0)
    # a tournament of 2 (with replacement) among 3: the best wins unless both entrants are others
    torch.testing.assert_close(frequencies([0.1, 0.9, 0.5], "tournament", tournament_size=2),
                               torch.tensor([1 / 9, 5 / 9, 3 / 9]), atol=0.01, rtol=0)
    torch.testing.assert_close(frequencies([0.4, 0.4], "roulette"), torch.tensor([0.5, 0.5]), atol=0.01, rtol=0)


def test_a_second_parent_is_never_the_first_and_keeps_the_stated_probabilities():
    fitness = torch.tensor([0.0, 1.0, 3.0, 2.0])
    first = torch.tensor([2, 1, 0, 3] * 15_000)
    for method in ("roulette", "rank", "tournament"):
        second = select(fitness, len(first), method, torch.Generator().manual_seed(4), exclude=first)
        assert not (second == first).any()
    second = select(fitness, len(first), "roulette", torch.Generator().manual_seed(5), exclude=first)
    after_best = torch.bincount(second[first == 2], minlength=4).float() / 15_000  # shares 0, 1, -, 2
    torch.testing.assert_close(after_best, torch.tensor([0.0, 1 / 3, 0.0, 2 / 3]), atol=0.015, rtol=0)
    # the only one with a share is excluded: the others evenly
    lone = select(torch.tensor([0.0, 5.0, 0.0]), 3000, "roulette", torch.Generator().manual_seed(6),
                  exclude=torch.ones(3000, dtype=torch.long))
    torch.testing.assert_close(torch.bincount(lone, minlength=3).float() / 3000, torch.tensor([0.5, 0.0, 0.5]),
                               atol=0.03, rtol=0)


def test_survivors_are_the_elites_then_distinct_tournament_winners():
    fitness = torch.tensor([0.2, 0.9, 0.1, 0.7, 0.5, 0.0, 0.3])
    for seed in range(20):
        keep = survive(fitness, 5, 2, torch.Generator().manual_seed(seed), tournament_size=3)
        assert keep[:2].tolist() == [1, 3] and len(set(keep.tolist())) == 5
        assert 5 not in keep.tolist()  # the worst never wins a tournament of 3 among the 5 left
    assert sorted(survive(fitness, 7, 2, torch.Generator()).tolist()) == list(range(7))  # room for all


def test_succession_follows_its_formula():
    g = torch.Generator().manual_seed(3)
    x, v, p = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    best, worst = torch.randn(7, generator=g), torch.randn(7, generator=g)
    new_x, new_v = succession(x, v, p, best, worst, torch.Generator().manual_seed(9), inertia=0.5, cognitive=0.2,
                              social=0.2, repel=0.1, step=0.8)
    r = torch.Generator().manual_seed(9)
    r_p, r_g, r_w = (torch.rand(5, 1, generator=r) for _ in range(3))
    want_v = (0.5 * v + 0.2 * r_p * (p - x) + 0.2 * r_g * (best - x) - 0.1 * r_w * (worst - x)) / 1.0
    torch.testing.assert_close(new_v, want_v)
    torch.testing.assert_close(new_x, x + 0.8 * want_v)


def test_majority_vote_breaks_ties_towards_the_best_member():
    members = [["a", "x", "1"], ["b", "y", "2"], ["b", "x", "3"]]
    assert majority_vote(members) == ["b", "x", "1"]


def test_flat_round_trips_an_adapter_state():
    state = {"b.lora_B.weight": torch.randn(4, 2), "a.lora_A.weight": torch.randn(2, 3)}
    flat = Flat.of(state)
    vector = flat.flatten(state)
    assert vector.shape == (flat.dim,) == (14,)
    back = flat.unflatten(vector)
    assert all(torch.equal(back[k], state[k]) for k in state)
    with pytest.raises(ValueError, match="layout"):
        flat.flatten({"a.lora_A.weight": torch.randn(2, 3)})
