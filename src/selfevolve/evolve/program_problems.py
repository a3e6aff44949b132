"""Built-in problems for program evolution: a starting program with an evolvable region, and an
evaluator (Python source run in the sandbox beside each candidate: `quick`, then `evaluate`).

- `regression`: a function of x that fits a GP benchmark's points (`selfevolve run gp` solves the
  same points, so genetic programming is the baseline); score = -RMSE on the training points,
  `test_rmse` on points the score never sees.
- `packing`: online bin packing (FunSearch): a priority rule picks the bin for each arriving item;
  score = -(bins used / the lower bound ceil(sum / capacity)), averaged over fixed instances.
- `minimize`: a search routine that finds a low point of a bumpy 2-D function within 200 calls
  (OpenEvolve's function-minimisation example); score = -(mean f at the returned points).

Every evaluator is self-contained (its data as literals), deterministic, and reports `score`
(higher is better); the loop adds `length`, the evolvable code's length, as a feature.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfevolve.errors import ConfigError
from selfevolve.evolve.diffs import DiffError, regions
from selfevolve.evolve.problems import benchmark


@dataclass(frozen=True)
class ProgramProblem:
    description: str
    program: str
    evaluator: str


def regression(name: str, seed: int) -> ProgramProblem:
    data = benchmark(name, seed)
    xs, ys = (np.round(a, 6).tolist() for a in (data.X[:, 0], data.y))
    xt, yt = (np.round(a, 6).tolist() for a in (data.X_test[:, 0], data.y_test))
    program = '''import math

# EVOLVE-BLOCK-START
def f(x):
    """An expression in x (math is imported) that fits the data points."""
    return x
# EVOLVE-BLOCK-END
'''
    evaluator = f'''import math

X, Y = {xs!r}, {ys!r}
X_TEST, Y_TEST = {xt!r}, {yt!r}


def rmse(f, xs, ys):
    total = 0.0
    for x, y in zip(xs, ys):
        v = float(f(x))
        if not math.isfinite(v):
            return 1e6
        total += (v - y) ** 2
    return min(math.sqrt(total / len(xs)), 1e6)


def quick(program):
    return {{"score": float(math.isfinite(float(program.f(0.5))))}}


def evaluate(program):
    error = rmse(program.f, X, Y)
    return {{"score": -error, "rmse": error, "test_rmse": rmse(program.f, X_TEST, Y_TEST)}}
'''
    # what the model is told: never the benchmark's name or formula, which it could copy
    told = f"a function of x that fits {len(xs)} data points with x in [{min(xs):.2f}, {max(xs):.2f}], as code"
    return ProgramProblem(told, program, evaluator)


PACKING_PROGRAM = '''# EVOLVE-BLOCK-START
def priority(item, capacities):
    """A score for putting `item` into each bin that can hold it (its remaining capacity in
    `capacities`); the item goes to the highest-scoring bin, the first on a tie."""
    return [0.0 for c in capacities]
# EVOLVE-BLOCK-END
'''

PACKING_EVALUATOR = '''import math
import random

CAPACITY = 150


def instances(n, items, seed):
    rng = random.Random(seed)
    return [[rng.randint(20, 100) for _ in range(items)] for _ in range(n)]


def pack(priority, items):
    bins = []
    for item in items:
        fits = [i for i, c in enumerate(bins) if c >= item]
        if not fits:
            bins.append(CAPACITY - item)
            continue
        scores = [float(s) for s in priority(item, [bins[i] for i in fits])]
        if len(scores) != len(fits) or not all(math.isfinite(s) for s in scores):
            raise ValueError("priority must return one finite number per bin it is given")
        best = max(range(len(fits)), key=lambda k: (scores[k], -k))
        bins[fits[best]] -= item
    return len(bins)


def ratio(priority, cases):
    return sum(pack(priority, items) / math.ceil(sum(items) / CAPACITY) for items in cases) / len(cases)


def quick(program):
    return {"score": -ratio(program.priority, instances(1, 50, 7))}


def evaluate(program):
    r = ratio(program.priority, instances(5, 300, 11))
    return {"score": -r, "bins_over_bound": r}
'''

MINIMIZE_PROGRAM = '''import math
import random

# EVOLVE-BLOCK-START
def search(f, budget, rng):
    """Return (x, y) in [-5, 5] x [-5, 5] where f(x, y) is as low as you can find, calling f at most
    `budget` times; `rng` is a random.Random."""
    best = None
    for _ in range(budget):
        x, y = rng.uniform(-5, 5), rng.uniform(-5, 5)
        v = f(x, y)
        if best is None or v < best[0]:
            best = (v, x, y)
    return best[1], best[2]
# EVOLVE-BLOCK-END
'''

MINIMIZE_EVALUATOR = '''import math
import random

BUDGET, LOWEST = 200, -1.5187


def bumpy(x, y):
    return math.sin(x) * math.cos(y) + math.sin(x * y) + (x * x + y * y) / 20


def mean_found(search, runs):
    total = 0.0
    for seed in range(runs):
        calls = [0]

        def f(x, y):
            calls[0] += 1
            if calls[0] > BUDGET:
                raise RuntimeError(f"more than {BUDGET} calls of f")
            return bumpy(float(x), float(y))

        x, y = search(f, BUDGET, random.Random(seed))
        x, y = min(max(float(x), -5.0), 5.0), min(max(float(y), -5.0), 5.0)
        total += bumpy(x, y)
    return total / runs


def quick(program):
    return {"score": -mean_found(program.search, 1)}


def evaluate(program):
    found = mean_found(program.search, 10)
    return {"score": -found, "gap_to_minimum": found - LOWEST}
'''

PROBLEMS = ("regression", "packing", "minimize")


def get_problem(name: str, seed: int, regression_benchmark: str = "nguyen-2") -> ProgramProblem:
    if name == "regression":
        return regression(regression_benchmark, seed)
    if name == "packing":
        return ProgramProblem("online bin packing (capacity 150, items 20-100)", PACKING_PROGRAM, PACKING_EVALUATOR)
    if name == "minimize":
        return ProgramProblem("minimise a bumpy 2-D function in 200 calls", MINIMIZE_PROGRAM, MINIMIZE_EVALUATOR)
    raise ConfigError(f"problem: unknown problem {name!r}; valid: {', '.join(PROBLEMS)}")


def user_problem(program_file: str, evaluator_file: str) -> ProgramProblem:
    """The user's program and evaluator, checked: readable, regions sound, the evaluator defines evaluate."""
    texts = []
    for name, file in (("program", program_file), ("evaluator", evaluator_file)):
        path = Path(file)
        if not path.is_file():
            raise ValueError(f"{name}: {file} is not a file")
        texts.append(path.read_text())
    program, evaluator = texts
    try:
        regions(program)
    except DiffError as err:
        raise ValueError(f"program: {err}") from None
    try:
        defined = {n.name for n in ast.parse(evaluator).body if isinstance(n, ast.FunctionDef)}
    except SyntaxError as err:
        raise ValueError(f"evaluator: {evaluator_file} is not valid Python ({err.msg}, line {err.lineno})") from None
    if "evaluate" not in defined:
        raise ValueError(f"evaluator: {evaluator_file} defines no evaluate(program) function")
    return ProgramProblem(f"improve {Path(program_file).name}", program, evaluator)
