"""Homeostatic learners: the need-coupled step size against a hand computation, the gradients against
finite differences, the concept shift, the controls, and a short run of the whole comparison."""

import copy

import numpy as np
import pytest
from helpers import run_cli, sets, summary

from selfevolve.recipes.homeostatic import Config
from selfevolve.train.homeostatic import MLP, REGULATORS, Need, learn, shuffled, stream, swapped_labels


def test_the_step_size_follows_the_need_computed_by_hand():
    x, labels = stream(3, 300, 100)
    base, coupling = 0.05, 2.0
    out = learn(x, labels, "homeostatic", base, seed=3, coupling=coupling, need=Need(gain=0.05, cost=0.2))
    energy, expected = 1.0, []
    for right in out["right"]:
        expected.append(base * (1 + coupling * (1 - energy)))  # the need before this sample
        energy = min(1.0, max(0.0, energy + (0.05 if right else -0.2)))
    assert np.allclose(out["lr"], expected) and out["lr"].max() > base  # errors made it hungry
    errors, trace = 0.0, []
    surprise = learn(x, labels, "surprise", base, seed=3, coupling=coupling)
    for right in surprise["right"]:
        trace.append(base * (1 + coupling * errors))
        errors = 0.9 * errors + 0.1 * (not right)
    assert np.allclose(surprise["lr"], trace)


@pytest.mark.parametrize("regulator", ["lrh", "lookahead"])
def test_lrh_and_its_lookahead_control_move_the_step_size_as_computed_by_hand(regulator):
    x, labels = stream(4, 1500, 100)
    out = learn(x, labels, regulator, 0.05, seed=4)
    # by hand: a twin network stepped alike, each decision imagined on a deep copy, sample by sample
    net, coin, step, expected = MLP(np.random.default_rng([4, 1])), np.random.default_rng([4, 3]), 0.05, []

    def imagined(grads, lr, i):
        twin = copy.deepcopy(net)
        twin.sgd(grads, lr)
        return np.mean([twin.predict(x[j])[0] == labels[j] for j in range(i - 20, i)])

    for i in range(len(labels)):
        guess, cache = net.predict(x[i])
        grads = net.gradients(cache, int(labels[i]))
        if i >= 20 and i % 10 == 0:
            # lrh tries the guessed class's effect (5-9 excite, 0-4 inhibit) and takes the true label's
            tried = (0.005 if guess >= 5 else -0.005) if regulator == "lrh" else 0.005 * coin.choice([-1, 1])
            if imagined(grads, max(step + tried, 1e-8), i) > imagined(grads, step, i):
                step = max(step + ((0.005 if labels[i] >= 5 else -0.005) if regulator == "lrh" else tried), 1e-8)
        expected.append(step)
        net.sgd(grads, step)
    assert np.allclose(out["lr"], expected) and np.count_nonzero(np.diff(expected)) >= 2  # it moved, twice


def test_gradients_match_finite_differences_and_a_step_descends():
    rng = np.random.default_rng(0)
    net = MLP(rng, inputs=6, hidden=4)
    x, label = rng.random(6), 3

    def loss():
        return -np.log(net.predict(x)[1][2][label])

    grads = net.gradients(net.predict(x)[1], label)
    for p, g in zip(net.params, grads, strict=True):
        i = np.unravel_index(int(np.argmax(np.abs(g))), g.shape)
        p[i] += 1e-5
        up = loss()
        p[i] -= 2e-5
        down = loss()
        p[i] += 1e-5
        assert abs((up - down) / 2e-5 - g[i]) < 1e-6
    before = loss()
    net.sgd(grads, 0.1)
    assert loss() < before


def test_a_concept_shift_swaps_two_labels_at_each_boundary_and_keeps_a_permutation():
    classes = np.tile(np.arange(10), 40)
    labels = swapped_labels(classes, 100, np.random.default_rng(0))
    assert (labels[:100] == classes[:100]).all()
    for start in range(100, 400, 100):
        before = dict(zip(classes[start - 10:start], labels[start - 10:start], strict=True))
        after = dict(zip(classes[start:start + 10], labels[start:start + 10], strict=True))
        assert sorted(after.values()) == list(range(10))
        assert sum(before[c] != after[c] for c in range(10)) == 2


def test_the_learner_learns_a_still_stream_and_random_regulation_reuses_the_same_step_sizes():
    x, labels = stream(0, 3000, 10_000)
    out = learn(x, labels, "constant", 0.05, seed=0)
    assert out["right"][:300].mean() < 0.5 < 0.7 < out["right"][-1000:].mean()  # chance is 0.1
    own = learn(x, labels, "homeostatic", 0.05, seed=0, coupling=2.0)["lr"]
    assert sorted(shuffled(own, 0)) == sorted(own) and not np.array_equal(shuffled(own, 0), own)


def test_a_short_comparison_runs_reports_every_regulator_and_resumes(tmp_path):
    out = tmp_path / "run"
    settings = ["seeds=3", "dev_seeds=1", "samples=400", "swap_every=200,100", "lr_grid=0.03,0.08",
                "coupling_grid=1,4", "adam_grid=0.003"]
    proc = run_cli("run", "homeostatic", "--out", str(out), *sets(settings))
    assert proc.returncode == 0, proc.stderr
    s = summary(out)
    assert [r["swap_every"] for r in s["rates"]] == [200, 100]
    for r in s["rates"]:
        assert set(r["test"]) == set(REGULATORS) and r["chosen"]["random"] == r["chosen"]["homeostatic"]
        for reg in REGULATORS:
            t = r["test"][reg]
            assert len(t["per_seed"]) == 3 and t["ci95"][0] <= t["mean"] <= t["ci95"][1]
            # four windows of 100 digits, whose mean is the stream's accuracy
            assert len(t["over_the_stream"]) == 4 and np.mean(t["over_the_stream"]) == pytest.approx(t["mean"])
    for name in ("accuracy_by_rate", "stream-swap-200", "stream-swap-100"):
        assert (out / "plots" / f"{name}.png").is_file()
    # fresh test seeds: the same dev choice, so seed 2 alone scores what it scored as the third seed
    fresh = tmp_path / "fresh"
    proc = run_cli("run", "homeostatic", "--out", str(fresh), *sets(settings[1:] + ["seeds=1", "first_seed=2"]))
    assert proc.returncode == 0, proc.stderr
    for r, alone in zip(s["rates"], summary(fresh)["rates"], strict=True):
        assert alone["chosen"] == r["chosen"]
        assert all(alone["test"][reg]["per_seed"] == r["test"][reg]["per_seed"][2:] for reg in REGULATORS)


def test_test_seeds_may_not_reach_the_dev_streams():
    with pytest.raises(ValueError, match="dev streams"):
        Config(first_seed=995, seeds=10)
