"""Tree GP: ours (three mate-choice modes) vs DEAP's eaSimple, same settings, same process run.

    python bench/gp_vs_deap.py [--seeds 10] [--first-seed 0] [--pop 500] [--gens 50] [--problems nguyen-1,koza-2]
Both sides use the same primitive set (add sub mul protected-div sin cos clipped-exp
protected-log, the inputs and the constant 1), ramped half-and-half initialisation (depth
1-4), tournament selection (3), one-point subtree crossover (0.5), uniform subtree mutation
with a full tree of depth 0-2 (0.1), a static depth limit of 17, mean squared error as
fitness, and no early stop. Success: max abs error < 0.01 on the training points.
Prints one JSON line per problem and method:
{"problem", "method", "success_rate", "median_best_error", "evals_per_s", "seeds", ...},
then one line per method summed over the problems.
"""

from __future__ import annotations

import argparse
import math
import operator
import statistics
import time
from functools import partial

import numpy as np
from common import emit
from deap import algorithms, base, creator, gp, tools

from selfevolve.evolve.gp import GPConfig, TreeGP
from selfevolve.evolve.problems import BENCHMARKS, benchmark
from selfevolve.evolve.trees import FUNCTIONS, PrimitiveSet, evaluate

SUCCESS = 0.01


def deap_run(data, seed: int, pop_size: int, gens: int) -> tuple[float, int, float]:
    """(max abs error of the hall-of-fame best, evaluations, seconds)."""
    import random

    pset = gp.PrimitiveSet("main", len(data.variables))
    for name, (arity, _, scalar, _) in FUNCTIONS.items():
        pset.addPrimitive(scalar, arity, name=name)
    pset.addTerminal(1.0)
    pset.renameArguments(**{f"ARG{i}": v for i, v in enumerate(data.variables)})
    if not hasattr(creator, "FitnessMin"):
        creator.create("FitnessMin", base.Fitness, weights=(-1.0,))
        creator.create("Individual", gp.PrimitiveTree, fitness=creator.FitnessMin)
    tb = base.Toolbox()
    tb.register("expr", gp.genHalfAndHalf, pset=pset, min_=1, max_=4)
    tb.register("individual", tools.initIterate, creator.Individual, tb.expr)
    tb.register("population", tools.initRepeat, list, tb.individual)
    tb.register("compile", gp.compile, pset=pset)
    points = [(tuple(x), float(y)) for x, y in zip(data.X, data.y, strict=False)]
    count = [0]

    def outputs(ind):
        f = tb.compile(expr=ind)
        return [f(*x) for x, _ in points]

    def fitness(ind):
        count[0] += 1
        try:
            err = math.fsum((o - y) ** 2 for o, (_, y) in zip(outputs(ind), points, strict=False)) / len(points)
        except (ValueError, OverflowError):
            return (math.inf,)
        return (err if math.isfinite(err) else math.inf,)

    tb.register("evaluate", fitness)
    tb.register("select", tools.selTournament, tournsize=3)
    tb.register("mate", gp.cxOnePoint)
    tb.register("expr_mut", gp.genFull, min_=0, max_=2)
    tb.register("mutate", gp.mutUniform, expr=tb.expr_mut, pset=pset)
    tb.decorate("mate", gp.staticLimit(key=operator.attrgetter("height"), max_value=17))
    tb.decorate("mutate", gp.staticLimit(key=operator.attrgetter("height"), max_value=17))
    random.seed(seed)
    t0 = time.perf_counter()
    pop, hof = tb.population(n=pop_size), tools.HallOfFame(1)
    algorithms.eaSimple(pop, tb, cxpb=0.5, mutpb=0.1, ngen=gens, halloffame=hof, verbose=False)
    seconds = time.perf_counter() - t0
    try:
        max_abs = max(abs(o - y) for o, (_, y) in zip(outputs(hof[0]), points, strict=False))
    except (ValueError, OverflowError):
        max_abs = math.inf
    return max_abs, count[0], seconds


def ours_run(data, seed: int, pop_size: int, gens: int, mate_choice: str) -> tuple[float, int, float]:
    pset = PrimitiveSet(tuple(FUNCTIONS), data.variables, (1.0,))
    algo = TreeGP(GPConfig(pop_size=pop_size, mate_choice=mate_choice), pset, data.y)
    t0 = time.perf_counter()
    state = algo.init(seed)
    for _ in range(gens + 1):  # eaSimple evaluates the initial population and then `gens` generations
        trees, state = algo.ask(state)
        state = algo.tell(state, trees, evaluate(trees, data.X, pset))
    seconds = time.perf_counter() - t0
    return float(np.max(np.abs(state.best_outputs - data.y))), state.evaluations, seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first..first+seeds-1 (fresh seeds: 20 on)")
    ap.add_argument("--pop", type=int, default=500)
    ap.add_argument("--gens", type=int, default=50)
    ap.add_argument("--problems", default=",".join(BENCHMARKS))
    args = ap.parse_args()
    methods = {"deap": deap_run, **{f"ours-{m}": partial(ours_run, mate_choice=m) for m in ("none", "random", "ideal")}}
    totals = {m: {"successes": 0, "evals": 0, "seconds": 0.0} for m in methods}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for problem in args.problems.split(","):
        for method, fn in methods.items():
            results = [fn(benchmark(problem, seed), seed, args.pop, args.gens) for seed in seeds]
            errors = [r[0] for r in results]
            evals, seconds = sum(r[1] for r in results), sum(r[2] for r in results)
            successes = sum(e < SUCCESS for e in errors)
            for key, value in (("successes", successes), ("evals", evals), ("seconds", seconds)):
                totals[method][key] += value
            emit(bench="gp_vs_deap", problem=problem, method=method, seeds=args.seeds, first_seed=args.first_seed,
                 pop=args.pop, gens=args.gens, success_rate=successes / args.seeds,
                 median_best_error=statistics.median(errors),
                 evals_per_s=round(evals / seconds, 1), unit="evaluations/s",
                 peer=f"deap {__import__('deap').__version__} eaSimple")
    for method, t in totals.items():
        emit(bench="gp_vs_deap", problem="all", method=method, seeds=args.seeds, first_seed=args.first_seed,
             successes=int(t["successes"]), runs=args.seeds * len(args.problems.split(",")),
             evals_per_s=round(t["evals"] / t["seconds"], 1),
             speedup_vs_deap=round(t["evals"] / t["seconds"] / (totals["deap"]["evals"] / totals["deap"]["seconds"]),
                                   2), unit="evaluations/s")


if __name__ == "__main__":
    main()
