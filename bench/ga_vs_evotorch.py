"""Deep GA on CartPole-v1: ours vs EvoTorch's GeneticAlgorithm, matching settings, one process run.

    python bench/ga_vs_evotorch.py [--seeds 3] [--pop 100] [--gens 30] [--episodes 3]
Both evolve the same MLP (4-32-32-2, tanh, argmax action) with Gaussian mutation (sigma 0.1),
the same population size and episodes per evaluation, serially in this process. Prints one
JSON line per library: {"library", "evals_per_s", "episodes_per_s", "env_steps_per_s",
"median_generations_to_solve", ...}
where solving = a generation's best fitness (mean return over its episodes) >= 475, and
evals = policies evaluated.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import emit

from selfevolve.evolve.ga import DeepGA, GAConfig
from selfevolve.evolve.rollout import mean_return, policy_spec
from selfevolve.evolve.runner import chunk_seed

SOLVED = 475.0
HIDDEN = 32


def ours(seed: int, args) -> tuple[int | None, int, int, float]:
    spec = policy_spec("CartPole-v1", (HIDDEN, HIDDEN))
    ga = DeepGA(GAConfig(pop_size=args.pop, truncation=max(1, args.pop // 10), sigma=0.1), spec.dim, spec.init)
    state, solved_at, evals, steps = ga.init(seed), None, 0, 0
    t0 = time.perf_counter()
    for gen in range(args.gens):
        params, state = ga.ask(state)
        fitness = mean_return(params, chunk_seed(seed, gen), spec, "CartPole-v1", args.episodes)
        evals += len(fitness)
        steps += int(round(fitness.sum() * args.episodes))  # CartPole pays 1 per step: return = steps
        state = ga.tell(state, params, fitness)
        if fitness.max() >= SOLVED:
            solved_at = gen
            break
    return solved_at, evals, steps, time.perf_counter() - t0


def evotorch(seed: int, args) -> tuple[int | None, int, int, float]:
    from evotorch.algorithms import GeneticAlgorithm
    from evotorch.neuroevolution import GymNE
    from evotorch.operators import GaussianMutation

    torch.manual_seed(seed)
    problem = GymNE(env="CartPole-v1",
                    network=f"Linear(obs_length, {HIDDEN}) >> Tanh() >> Linear({HIDDEN}, {HIDDEN}) >> Tanh() >> "
                            f"Linear({HIDDEN}, act_length)",
                    num_episodes=args.episodes, initial_bounds=(-0.5, 0.5))
    ga = GeneticAlgorithm(problem, operators=[GaussianMutation(problem, stdev=0.1)], popsize=args.pop)
    solved_at = None
    t0 = time.perf_counter()
    for gen in range(args.gens):
        ga.step()
        if float(ga.status["pop_best_eval"]) >= SOLVED:
            solved_at = gen
            break
    seconds = time.perf_counter() - t0
    status = problem.status
    evals = int(status["total_episode_count"]) // args.episodes
    return solved_at, evals, int(status["total_interaction_count"]), seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--pop", type=int, default=100)
    ap.add_argument("--gens", type=int, default=30)
    ap.add_argument("--episodes", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    for name, fn in (("selfevolve", ours), ("evotorch", evotorch)):
        runs = [fn(seed, args) for seed in range(args.seeds)]
        evals, steps, seconds = (sum(r[i] for r in runs) for i in (1, 2, 3))
        solved = [r[0] for r in runs if r[0] is not None]
        emit(bench="ga_vs_evotorch", library=name, env="CartPole-v1", seeds=args.seeds, pop=args.pop,
             episodes=args.episodes, evals_per_s=round(evals / seconds, 1),
             episodes_per_s=round(evals * args.episodes / seconds, 1), env_steps_per_s=round(steps / seconds, 1),
             solved_runs=len(solved),
             median_generations_to_solve=statistics.median(solved) if solved else None,
             peer=f"evotorch {__import__('evotorch').__version__} GeneticAlgorithm + GymNE", unit="evaluations/s")


if __name__ == "__main__":
    main()
