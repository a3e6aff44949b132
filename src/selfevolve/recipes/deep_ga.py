"""Deep GA: evolve neural-network policies for a gymnasium control task without gradients.

Such, Madhavan, Conti et al. (2017), "Deep Neuroevolution: Genetic Algorithms Are a Competitive
Alternative for Training Deep Neural Networks for Reinforcement Learning", arXiv:1712.06567

    each generation: evaluate every policy on `episodes` episodes (all policies stepped as one
    vectorised batch), keep the best `truncation` as parents, copy the best `elites`
    unchanged (re-evaluated every generation), fill the rest with Gaussian mutations;
    genomes are seed chains, so the whole population is a few integers per individual
    stop when the best policy's mean return over `check_episodes` fresh episodes reaches
    `solve_return`; report its return over `eval_episodes` other episodes

    selfevolve run deep-ga --set env=Acrobot-v1
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from selfevolve.config import check_min
from selfevolve.errors import ConfigError
from selfevolve.evolve.ga import DeepGA, GAConfig, GAState
from selfevolve.evolve.rollout import episode_returns, mean_return, policy_spec
from selfevolve.evolve.runner import ParallelConfig, chunk_seed
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.store import RunStore

CHECK, FINAL = 1 << 30, (1 << 30) + 1  # seed streams of the solve check and final evaluation


@dataclass
class Config(ParallelConfig):
    seed: int = 0
    """Seeds the population, mutations and episodes; same seed = same run."""
    env: str = "CartPole-v1"
    """Gymnasium environment id (flat Box observations; Discrete or Box actions)."""
    hidden: tuple[int, ...] = (32, 32)
    """Hidden layer widths of the MLP policy (tanh)."""
    pop_size: int = 100
    """Policies per generation."""
    truncation: int = 10
    """The best this many become parents."""
    elites: int = 1
    """The best this many survive unchanged (and are re-evaluated each generation)."""
    sigma: float = 0.1
    """Standard deviation of the Gaussian mutation."""
    episodes: int = 3
    """Episodes per policy per generation; fitness is their mean return."""
    max_generations: int = 200
    """Stop here even if not solved."""
    solve_return: float = 0.0
    """Mean return that counts as solved; 0 = the environment's reward_threshold."""
    check_episodes: int = 100
    """Episodes of the solve check on the best policy, whenever its fitness reaches solve_return."""
    eval_episodes: int = 100
    """Episodes of the final evaluation (seeds never used in training or checks)."""
    noise_size: int = 1 << 22
    """Floats in the shared noise table that mutations index into."""
    chunk_size: int = 50
    """Policies per evaluation task (the unit of parallel work)."""
    threads: int = 2
    """Torch CPU threads for the batched policy forward."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_min(self, 1, "pop_size", "episodes", "max_generations", "check_episodes", "eval_episodes")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must be positive widths, got {self.hidden}")
        self.ga()  # validates pop_size / truncation / elites / sigma
        policy_spec(self.env, self.hidden)  # the env exists and its spaces fit an MLP
        solve_threshold(self)

    def ga(self) -> GAConfig:
        return GAConfig(self.pop_size, self.truncation, self.elites, self.sigma, self.noise_size)


def solve_threshold(cfg: Config) -> float:
    if cfg.solve_return:
        return cfg.solve_return
    import gymnasium as gym

    threshold = gym.spec(cfg.env).reward_threshold
    if threshold is None:
        raise ConfigError(f"{cfg.env} has no reward_threshold; set solve_return")
    return float(threshold)


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    import torch

    torch.set_num_threads(cfg.threads)
    spec = policy_spec(cfg.env, cfg.hidden)
    ga = DeepGA(cfg.ga(), spec.dim, spec.init)
    threshold = solve_threshold(cfg)
    evaluate = cfg.evaluator(partial(mean_return, spec=spec, env_id=cfg.env, episodes=cfg.episodes))
    saved = store.read_state("GA state")
    if saved:
        state, spent, solved = GAState.from_json(saved["ga"]), saved["wall_seconds"], saved["solved"]
    else:
        state, spent, solved = ga.init(cfg.seed), 0.0, False
    start = time.perf_counter() - spent
    with progress.task(f"{cfg.env}: evolve", cfg.max_generations, state.generation) as advance:
        while not solved and state.generation < cfg.max_generations:
            gen = state.generation
            params, state = ga.ask(state)
            fitness = evaluate(params, chunk_seed(cfg.seed, gen))
            state = ga.tell(state, params, fitness)
            check = None
            if state.best_fitness >= threshold:
                check = float(mean_return(ga.weights(state.best_genome)[None], chunk_seed(cfg.seed, CHECK + gen),
                                          spec, cfg.env, cfg.check_episodes)[0])
                solved = check >= threshold
            record = {"round": gen, "generation": gen, "best_fitness": float(fitness.max()),
                      "mean_fitness": float(fitness.mean()), "elite_fitness": state.best_fitness,
                      "check_return": check, "wall_seconds": time.perf_counter() - start}
            store.record_round(gen, record, {"fitness/best": record["best_fitness"],
                                             "fitness/mean": record["mean_fitness"]})
            store.write_state({"ga": state.to_json(), "wall_seconds": record["wall_seconds"], "solved": solved})
            advance(best=record["best_fitness"], mean=record["mean_fitness"])
    final = episode_returns(ga.weights(state.best_genome)[None], spec, cfg.env, cfg.eval_episodes,
                            chunk_seed(cfg.seed, FINAL))[0]
    summary = {"recipe": "deep-ga", "env": cfg.env, "seed": cfg.seed, "solved": bool(solved),
               "solve_return": threshold, "eval_mean_return": float(final.mean()),
               "eval_std_return": float(final.std()), "eval_episodes": cfg.eval_episodes,
               "generations": state.generation, "evaluations": state.generation * cfg.pop_size * cfg.episodes,
               "params": spec.dim, "best_genome_ints": len(state.best_genome),
               "wall_seconds": time.perf_counter() - start, "generations_log": store.rounds()}
    store.write_summary(summary)
    store.event("finished")
    return summary


def headline(summary: dict) -> str:
    verdict = "solved" if summary["solved"] else "not solved"
    return (f"{summary['env']}: {verdict}; best policy {summary['eval_mean_return']:.1f} mean return over "
            f"{summary['eval_episodes']} evaluation episodes after {summary['generations']} generations, "
            f"{summary['wall_seconds']:.0f} s ({summary['params']} weights stored as {summary['best_genome_ints']} "
            f"integers)")


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_lines

    log = summary["generations_log"]
    gens = [r["generation"] for r in log]
    return [plot_lines(gens, {"best": [r["best_fitness"] for r in log], "mean": [r["mean_fitness"] for r in log],
                              "elite (mean of its evaluations)": [r["elite_fitness"] for r in log]},
                       f"{summary['env']}: fitness per generation", "generation", "mean episode return",
                       plot_dir / "fitness.png", hline=(summary["solve_return"], "solved"))]


RECIPE = Recipe(Config, run, headline, plots, run_name=lambda cfg: cfg.env)
