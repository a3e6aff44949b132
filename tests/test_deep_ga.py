"""Deep GA: seed-chain genomes, ask/tell, the Ray runner, and the deep-ga recipe end to end."""

import json
from functools import partial

import numpy as np
import pytest
from helpers import THREADS, assert_clean_error, run_cli, sets

from selfevolve.evolve.ga import DeepGA, GAConfig, GAState
from selfevolve.evolve.noise import NoiseTable, reconstruct
from selfevolve.evolve.rollout import mean_return, policy_spec
from selfevolve.evolve.runner import Evaluator

SPEC = policy_spec("CartPole-v1", (8,))


cartpole_fitness = partial(mean_return, spec=SPEC, env_id="CartPole-v1", episodes=2)  # importable by Ray workers


def test_seed_chain_genomes_rebuild_exactly_the_evolved_weights():
    ga = DeepGA(GAConfig(pop_size=12, truncation=4, elites=2, noise_size=10_000), SPEC.dim, SPEC.init)
    state = ga.init(0)
    rng = np.random.default_rng(1)
    for _ in range(6):
        params, state = ga.ask(state)
        state = ga.tell(state, params, rng.normal(size=12))
    lengths = [len(g) for g in state.genomes]
    assert 3 <= max(lengths) <= 7  # the init seed + one noise index per generation it went through
    for genome, weights in zip(state.genomes, ga.ask(state)[0], strict=False):
        assert np.array_equal(reconstruct(genome, SPEC.init, 0.1, NoiseTable(10_000)), weights)
    resumed = GAState.from_json(json.loads(json.dumps(state.to_json())))
    assert np.array_equal(ga.ask(resumed)[0], ga.ask(state)[0])


def test_ask_tell_keeps_elites_and_selects_by_truncation():
    ga = DeepGA(GAConfig(pop_size=10, truncation=3, elites=1, noise_size=10_000), SPEC.dim, SPEC.init)
    state = ga.init(0)
    before = list(state.genomes)
    fitness = np.arange(10.0)
    params, asked = ga.ask(state)
    assert state.params is None and asked.params is params  # ask does not change the state it is given
    state = ga.tell(asked, params, fitness)
    assert state.genomes[0] == before[9] and state.best_genome == before[9]  # the elite survives unchanged
    assert {g[:1] for g in state.genomes[1:]} <= {before[i] for i in (7, 8, 9)}  # children of the top 3
    with pytest.raises(ValueError, match="one fitness each"):
        ga.tell(state, ga.ask(state)[0], np.zeros(3))


def test_short_deep_ga_run_raises_fitness():
    ga = DeepGA(GAConfig(pop_size=30, truncation=5, elites=1, sigma=0.5, noise_size=100_000), SPEC.dim, SPEC.init)
    evaluate = Evaluator(cartpole_fitness, chunk_size=30)
    state = ga.init(4)
    means = []
    for gen in range(8):
        params, state = ga.ask(state)
        fitness = evaluate(params, gen)
        means.append(fitness.mean())
        state = ga.tell(state, params, fitness)
    assert means[0] < 60 and means[-1] > 2 * means[0], means


def test_ray_and_serial_evaluation_agree():
    ray = pytest.importorskip("ray")
    rows = np.stack([SPEC.init(s) for s in range(24)])
    serial = Evaluator(cartpole_fitness, chunk_size=5)(rows, 11)
    try:
        parallel = Evaluator(cartpole_fitness, chunk_size=5, backend="ray", workers=2)(rows, 11)
    finally:
        ray.shutdown()
    assert np.array_equal(serial, parallel)
    assert len(set(serial.tolist())) > 1  # a real spread of returns, not a constant


def test_deep_ga_cli_solves_cartpole_and_reports(tmp_path):
    out = tmp_path / "ga"
    proc = run_cli("run", "deep-ga", "--out", str(out), *sets(["pop_size=50", "hidden=16", THREADS]))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval_mean_return"] >= 475 and summary["eval_episodes"] == 100
    assert summary["generations"] >= 1 and summary["wall_seconds"] > 0
    assert (out / "plots" / "fitness.png").stat().st_size > 1000
    assert "solved" in proc.stdout and "report.html" in proc.stdout


def test_deep_ga_bad_env_is_a_clear_error(tmp_path):
    assert_clean_error(run_cli("run", "deep-ga", *sets(["env=NoSuchEnv-v0"]), cwd=tmp_path),
                       "unknown gymnasium environment 'NoSuchEnv-v0'")
    assert_clean_error(run_cli("run", "deep-ga", *sets(["truncation=0"]), cwd=tmp_path),
                       "truncation must be in [1, pop_size]")
    assert not (tmp_path / "runs").exists()
