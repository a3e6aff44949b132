"""Expression trees for symbolic regression: a primitive set, the variation operators, and a
vectorised evaluator for a whole population at once.

A tree is a tuple of node codes in prefix order (functions first in the code space, then
terminals), so slicing a subtree is slicing a tuple and trees hash for caching. Evaluation
never walks one tree at a time: all trees of a population are laid out in one array, every
node's children are found with a prefix-sum search, nodes are grouped by height, and each
(height, primitive) group is one NumPy call over all its nodes and all data points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import chain

import numpy as np

Tree = tuple[int, ...]
EPS = 1e-6  # protected division and log treat |x| <= EPS as zero
EXP_MAX = 100.0  # protected exp clips its argument here


def _div(a, b):
    out = np.ones_like(a)
    np.divide(a, b, out=out, where=np.abs(b) > EPS)
    return out


def _log(a):
    out = np.zeros_like(a)
    np.log(np.abs(a), out=out, where=np.abs(a) > EPS)
    return out


# name -> (arity, numpy function, scalar function for single points (DEAP-style), infix template)
FUNCTIONS = {
    "add": (2, np.add, lambda a, b: a + b, "({} + {})"),
    "sub": (2, np.subtract, lambda a, b: a - b, "({} - {})"),
    "mul": (2, np.multiply, lambda a, b: a * b, "({} * {})"),
    "div": (2, _div, lambda a, b: a / b if abs(b) > EPS else 1.0, "({} / {})"),
    "sin": (1, np.sin, math.sin, "sin({})"),
    "cos": (1, np.cos, math.cos, "cos({})"),
    "exp": (1, lambda a: np.exp(np.minimum(a, EXP_MAX)), lambda a: math.exp(min(a, EXP_MAX)), "exp({})"),
    "log": (1, _log, lambda a: math.log(abs(a)) if abs(a) > EPS else 0.0, "log({})"),
}


@dataclass(frozen=True)
class PrimitiveSet:
    functions: tuple[str, ...]
    variables: tuple[str, ...]
    constants: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        unknown = [f for f in self.functions if f not in FUNCTIONS]
        if unknown:
            raise ValueError(f"unknown primitive {unknown[0]!r}; valid: {', '.join(FUNCTIONS)}")
        if not self.variables:
            raise ValueError("a primitive set needs at least one input variable")

    @property
    def n_functions(self) -> int:
        return len(self.functions)

    @property
    def size(self) -> int:
        return len(self.functions) + len(self.variables) + len(self.constants)

    @cached_property
    def function_arity(self) -> tuple[int, ...]:
        return tuple(FUNCTIONS[f][0] for f in self.functions)

    @property
    def arity(self) -> np.ndarray:
        return np.array([FUNCTIONS[f][0] for f in self.functions] + [0] * (self.size - self.n_functions))

    def name(self, code: int) -> str:
        if code < self.n_functions:
            return self.functions[code]
        code -= self.n_functions
        return self.variables[code] if code < len(self.variables) else repr(self.constants[code - len(self.variables)])


# -- structure -----------------------------------------------------------------------------
def subtree_end(tree: Tree, start: int, arity: tuple[int, ...]) -> int:
    """Index one past the subtree rooted at `start`."""
    need, i = 1, start
    while need:
        need += arity[tree[i]] - 1
        i += 1
    return i


def to_infix(tree: Tree, pset: PrimitiveSet) -> str:
    arity = pset.arity

    def build(i: int) -> tuple[str, int]:
        code = tree[i]
        if code >= pset.n_functions:
            return pset.name(code), i + 1
        args, j = [], i + 1
        for _ in range(arity[code]):
            text, j = build(j)
            args.append(text)
        return FUNCTIONS[pset.functions[code]][3].format(*args), j

    return build(0)[0]


# -- creation and variation ----------------------------------------------------------------
def random_tree(rng: np.random.Generator, pset: PrimitiveSet, min_depth: int, max_depth: int, full: bool) -> Tree:
    """`full`: every branch reaches the chosen depth; else `grow`: leaves may stop early.

    Draws all its random numbers in one call (two per possible node): this runs for every
    mutation, and one NumPy call per node would dominate the generation's time.
    """
    u = rng.random(2 * 2 ** (max_depth + 1) + 1).tolist()
    target = min_depth + int(u[-1] * (max_depth - min_depth + 1))
    n_fn = pset.n_functions
    n_terminals = pset.size - n_fn
    terminal_share = n_terminals / pset.size
    arity = pset.function_arity
    out: list[int] = []
    stack = [0]
    while stack:
        d = stack.pop()
        leaf_draw, pick = u[2 * len(out)], u[2 * len(out) + 1]
        if d == target or (not full and d >= min_depth and leaf_draw < terminal_share):
            out.append(n_fn + int(pick * n_terminals))
        else:
            code = int(pick * n_fn)
            out.append(code)
            stack.extend([d + 1] * arity[code])
    return tuple(out)


def ramped_half_and_half(rng: np.random.Generator, pset: PrimitiveSet, n: int, min_depth: int,
                         max_depth: int) -> list[Tree]:
    return [random_tree(rng, pset, min_depth, max_depth, full=bool(i % 2)) for i in range(n)]


def crossover(a: Tree, b: Tree, cuts: tuple[float, float], arity: tuple[int, ...]) -> tuple[Tree, Tree]:
    """Swap a non-root subtree of `a` with one of `b`, chosen by two uniform numbers in [0, 1).

    Trees of one node have no non-root subtree and are returned as they are.
    """
    if len(a) < 2 or len(b) < 2:
        return a, b
    i, j = 1 + int(cuts[0] * (len(a) - 1)), 1 + int(cuts[1] * (len(b) - 1))
    ie, je = subtree_end(a, i, arity), subtree_end(b, j, arity)
    return a[:i] + b[j:je] + a[ie:], b[:j] + a[i:ie] + b[je:]


def subtree_mutation(rng: np.random.Generator, tree: Tree, pset: PrimitiveSet, arity: tuple[int, ...],
                     min_depth: int = 0, max_depth: int = 2) -> Tree:
    """Replace a random subtree with a new full tree."""
    i = int(rng.integers(len(tree)))
    return tree[:i] + random_tree(rng, pset, min_depth, max_depth, full=True) + tree[subtree_end(tree, i, arity):]


# -- evaluation ----------------------------------------------------------------------------
@dataclass
class Layout:
    """All nodes of many trees in one array: children and height of every node."""

    codes: np.ndarray
    child1: np.ndarray
    child2: np.ndarray
    height: np.ndarray  # 0 for leaves
    roots: np.ndarray  # index of each tree's root

    @property
    def depths(self) -> np.ndarray:
        return self.height[self.roots]


def layout(trees: list[Tree], arity_of: np.ndarray) -> Layout:
    return _layout(tuple(trees), tuple(arity_of.tolist()))


@lru_cache(maxsize=2)  # breeding lays out new children to check their depth; evaluation reuses it
def _layout(trees: tuple[Tree, ...], arity_of: tuple[int, ...]) -> Layout:
    arity_of = np.asarray(arity_of)
    sizes = np.array(list(map(len, trees)), dtype=np.int64)
    codes = np.array(list(chain.from_iterable(trees)), dtype=np.int64)
    roots = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    arity = arity_of[codes]
    n = len(codes)
    # the subtree at j ends at the first k >= j where the running sum of (1 - arity) reaches its
    # value before j plus one; keys (value, position) in one sorted array answer that for all j
    running = np.cumsum(1 - arity)
    before = running - (1 - arity)
    keys = np.sort(running * (n + 1) + np.arange(n))
    first_child_end = keys[np.searchsorted(keys, (before[1:] + 1) * (n + 1) + np.arange(1, n))] % (n + 1)
    child1 = np.minimum(np.arange(n) + 1, n - 1)
    child2 = np.zeros(n, dtype=np.int64)
    has2 = np.flatnonzero(arity[:-1] == 2)
    child2[has2] = first_child_end[has2] + 1
    height = np.where(arity == 0, 0, -1)
    level = 0
    while (height < 0).any():
        level += 1
        done = height >= 0
        ready = ~done & done[child1] & ((arity < 2) | done[child2])
        height[ready] = level
    return Layout(codes, child1, child2, height, roots)


def depths(trees: list[Tree], arity: np.ndarray) -> np.ndarray:
    return layout(trees, arity).depths


def evaluate(trees: list[Tree], X: np.ndarray, pset: PrimitiveSet) -> np.ndarray:
    """Outputs of every tree on every data point: X (n_points, n_vars) -> (len(trees), n_points).

    Identical subtrees are computed once: offspring share most of their subtrees with each
    other, so each height first gives every distinct (function, child, child) its own id.
    """
    if not trees:
        return np.empty((0, X.shape[0]))
    lay = layout(trees, pset.arity)
    codes, n_fn, n_var = lay.codes, pset.n_functions, len(pset.variables)
    ids = codes.copy()  # a leaf's id is its code; inner nodes get ids from pset.size upwards
    values = np.empty((pset.size + len(codes), X.shape[0]))
    values[n_fn : n_fn + n_var] = X.T
    values[n_fn + n_var : pset.size] = np.asarray(pset.constants, dtype=np.float64)[:, None]
    arity = pset.arity[codes]
    M = pset.size + len(codes)
    by_height = np.argsort(lay.height, kind="stable")
    level_starts = np.searchsorted(lay.height[by_height], np.arange(1, lay.height.max() + 2)).tolist()
    next_id = pset.size
    with np.errstate(all="ignore"):
        for lo, hi in zip(level_starts, level_starts[1:], strict=False):
            idx = by_height[lo:hi]
            right = np.where(arity[idx] == 2, ids[lay.child2[idx]], 0)
            keys = (codes[idx] * M + ids[lay.child1[idx]]) * M + right  # sorted keys group by function
            unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
            ids[idx] = next_id + inverse
            reps = idx[first]
            fn_codes = codes[reps]
            bounds = (np.flatnonzero(np.diff(fn_codes)) + 1).tolist()
            for s, e in zip([0, *bounds], [*bounds, len(reps)], strict=False):
                k, fn = FUNCTIONS[pset.functions[fn_codes[s]]][:2]
                group = reps[s:e]
                a = values[ids[lay.child1[group]]]
                values[next_id + s : next_id + e] = fn(a) if k == 1 else fn(a, values[ids[lay.child2[group]]])
            next_id += len(unique)
    return values[ids[lay.roots]]
