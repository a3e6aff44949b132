"""Tree GP: operators keep trees valid and within limits, and the vectorised evaluator agrees
with a plain one-point-at-a-time interpreter (the way DEAP evaluates).

The interpreter applies the same NumPy primitives, so the evaluator's layout, sharing and
grouping must reproduce it bit for bit; that the NumPy primitives mean what the scalar
(DEAP-style) definitions mean is checked one application at a time, where rounding cannot be
amplified: numpy's exp may differ from math.exp by one ulp, and cos(exp(exp(y))) turns that
into a difference in the ninth digit."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from selfevolve.evolve.gp import GPConfig, GPState, TreeGP
from selfevolve.evolve.trees import (
    FUNCTIONS,
    PrimitiveSet,
    crossover,
    depths,
    evaluate,
    ramped_half_and_half,
    random_tree,
    subtree_end,
    subtree_mutation,
    to_infix,
)

PSET = PrimitiveSet(tuple(FUNCTIONS), ("x", "y"), (1.0, 0.5))
ARITY = tuple(int(a) for a in PSET.arity)


def is_valid(tree) -> bool:
    return len(tree) > 0 and all(0 <= c < PSET.size for c in tree) and subtree_end(tree, 0, ARITY) == len(tree)


def interpret(tree, point) -> float:
    """One point, recursively, one primitive call per node."""
    def go(i):
        code = tree[i]
        if code >= PSET.n_functions:
            k = code - PSET.n_functions
            value = point[k] if k < len(PSET.variables) else PSET.constants[k - len(PSET.variables)]
            return np.array([value], dtype=np.float64), i + 1
        args, j = [], i + 1
        for _ in range(ARITY[code]):
            value, j = go(j)
            args.append(value)
        with np.errstate(all="ignore"):
            return FUNCTIONS[PSET.functions[code]][1](*args), j
    return float(go(0)[0][0])


seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=60, deadline=None)
@given(seed=seeds, lo=st.integers(0, 3), extra=st.integers(0, 3), full=st.booleans())
def test_random_trees_are_valid_and_respect_depth(seed, lo, extra, full):
    tree = random_tree(np.random.default_rng(seed), PSET, lo, lo + extra, full)
    assert is_valid(tree)
    d = depths([tree], PSET.arity)[0]
    assert d <= lo + extra and (d >= lo or not full or len(tree) == 1)


@settings(max_examples=80, deadline=None)
@given(seed=seeds)
def test_crossover_and_mutation_keep_trees_valid_and_conserve_nodes(seed):
    rng = np.random.default_rng(seed)
    a, b = ramped_half_and_half(rng, PSET, 2, 0, 5)
    c, d = crossover(a, b, tuple(rng.random(2)), ARITY)
    assert is_valid(c) and is_valid(d)
    assert len(c) + len(d) == len(a) + len(b)
    assert sorted(c + d) == sorted(a + b)  # crossover swaps material, it creates none
    m = subtree_mutation(rng, a, PSET, ARITY)
    assert is_valid(m)


@settings(max_examples=40, deadline=None)
@given(seed=seeds)
def test_vectorised_evaluation_matches_point_by_point_interpreter(seed):
    rng = np.random.default_rng(seed)
    trees = ramped_half_and_half(rng, PSET, 30, 0, 6)
    trees += trees[:5]  # duplicates share subtrees in the evaluator; results must not mix up
    X = rng.uniform(-3, 3, (7, 2))
    got = evaluate(trees, X, PSET)
    want = np.array([[interpret(t, p) for p in X] for t in trees])
    np.testing.assert_array_equal(got, want)


EDGES = [0.0, 1e-7, -1e-7, 1e-6, 2e-6, -3.0, 0.5, 99.0, 101.0, 700.0, 1e5]


@settings(max_examples=40, deadline=None)
@given(a=st.one_of(st.sampled_from(EDGES), st.floats(-50, 50)),
       b=st.one_of(st.sampled_from(EDGES), st.floats(-50, 50)))
def test_numpy_primitives_mean_what_the_scalar_definitions_say(a, b):
    for name, (k, vector, scalar, _) in FUNCTIONS.items():
        args = (a, b)[:k]
        got = vector(*(np.array([x]) for x in args))[0]
        assert math.isclose(got, scalar(*args), rel_tol=1e-13, abs_tol=1e-300), (name, args)


def test_infix_reads_like_the_tree():
    x, y, one = PSET.n_functions, PSET.n_functions + 1, PSET.n_functions + 2
    add, mul, sin = (PSET.functions.index(f) for f in ("add", "mul", "sin"))
    assert to_infix((add, mul, x, x, sin, y), PSET) == "((x * x) + sin(y))"
    assert to_infix((one,), PSET) == "1.0"


@settings(max_examples=15, deadline=None)
@given(seed=seeds, mate_choice=st.sampled_from(["none", "random", "ideal"]))
def test_generations_never_exceed_the_depth_limit(seed, mate_choice):
    cfg = GPConfig(pop_size=40, mutpb=0.5, cxpb=0.9, max_depth=6, init_depth=(2, 5), mate_choice=mate_choice)
    X = np.random.default_rng(seed).uniform(-1, 1, (10, 2))
    y = X[:, 0] * X[:, 1]
    gp = TreeGP(cfg, PSET, y)
    state = gp.init(seed)
    for _ in range(6):
        trees, state = gp.ask(state)
        state = gp.tell(state, trees, evaluate(trees, X, PSET))
        trees = state.population + state.mates
        assert all(is_valid(t) for t in trees)
        assert depths(trees, PSET.arity).max() <= 6
        assert len(state.mates) == (40 if mate_choice == "ideal" else 0)


def run_gp(gp, state, X, generations):
    for _ in range(generations):
        trees, state = gp.ask(state)
        state = gp.tell(state, trees, evaluate(trees, X, gp.pset))
    return state


def test_gp_finds_x_squared_plus_x_within_a_few_generations():
    pset = PrimitiveSet(tuple(FUNCTIONS), ("x",))
    X = np.linspace(-1, 1, 20)[:, None]
    y = X[:, 0] ** 2 + X[:, 0]
    for mate_choice in ("none", "ideal"):
        gp = TreeGP(GPConfig(pop_size=200, mate_choice=mate_choice), pset, y)
        state = gp.init(0)
        first = run_gp(gp, state, X, 1)
        state = run_gp(gp, first, X, 9)
        assert first.best_error > 0.01  # the random population does not already hold it
        assert np.max(np.abs(state.best_outputs - y)) < 1e-9, to_infix(state.best_tree, pset)


def test_state_round_trips_through_json_and_resumes_identically():
    X = np.linspace(-1, 1, 15)[:, None] * np.ones((1, 2))
    y = np.sin(X[:, 0]) + X[:, 1] ** 2
    gp = TreeGP(GPConfig(pop_size=30, mate_choice="ideal"), PSET, y)
    state = run_gp(gp, gp.init(3), X, 4)
    resumed = run_gp(gp, GPState.from_json(state.to_json()), X, 3)
    straight = run_gp(gp, state, X, 3)
    assert resumed.population == straight.population and resumed.mates == straight.mates
    assert resumed.best_error == straight.best_error
