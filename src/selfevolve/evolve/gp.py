"""Tree GP for symbolic regression with mate choice, behind an ask / tell interface.

    gp = TreeGP(GPConfig(mate_choice="ideal"), pset, y)
    state = gp.init(seed)
    while ...:
        trees, state = gp.ask(state)                          # trees whose outputs are still unknown
        state = gp.tell(state, trees, evaluate(trees, X, pset))   # their outputs on the data (the fitness)

A generation is DEAP's `eaSimple` (tournament selection of pairs, subtree crossover with
`cxpb`, subtree mutation with `mutpb`, a static depth limit that keeps the parent when a
child is too deep), except for how the second parent of each pair is chosen:

- ``none``: by tournament, like the first (standard GP);
- ``random``: uniformly at random (the random-mate baseline);
- ``ideal``: mate choice by ideal-mate representations (PIMP; Simões, Lourenço and Machado
  2023, "All You Need Is Sex for Diversity", arXiv:2303.17441). Every individual carries a
  second tree, its idea of a perfect partner, inherited by crossover and mutation like its
  genotype. The first parent looks at `tournament_size` random candidates and mates with the
  one whose outputs on the data are closest to its ideal tree's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selfevolve.evolve.trees import PrimitiveSet, Tree, crossover, depths, ramped_half_and_half, subtree_mutation

MATE_CHOICES = ("none", "random", "ideal")


@dataclass(frozen=True)
class GPConfig:
    pop_size: int = 300
    tournament_size: int = 3
    cxpb: float = 0.5
    mutpb: float = 0.1
    init_depth: tuple[int, int] = (1, 4)
    max_depth: int = 17
    mate_choice: str = "none"

    def __post_init__(self) -> None:
        if self.pop_size < 2 or self.pop_size % 2:
            raise ValueError(f"pop_size must be an even number >= 2, got {self.pop_size}")
        if self.tournament_size < 1:
            raise ValueError(f"tournament_size must be >= 1, got {self.tournament_size}")
        for name in ("cxpb", "mutpb"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        lo, hi = self.init_depth
        if not 0 <= lo <= hi <= self.max_depth:
            raise ValueError(f"init_depth must satisfy 0 <= min <= max <= max_depth, got {self.init_depth}")
        if self.mate_choice not in MATE_CHOICES:
            raise ValueError(f"mate_choice must be one of {MATE_CHOICES}, got {self.mate_choice!r}")


@dataclass
class GPState:
    generation: int
    population: list[Tree]
    mates: list[Tree]  # ideal-mate trees (empty unless mate_choice == "ideal")
    outputs: np.ndarray | None  # (individuals + mate trees, points); rows where ~known are stale
    known: np.ndarray  # which rows of outputs are up to date
    rng: dict
    best_tree: Tree | None = None
    best_error: float = float("inf")
    best_outputs: np.ndarray | None = None
    evaluations: int = 0
    reloaded: np.ndarray | None = None  # rows known before a resume: evaluating them again is not new work

    def to_json(self) -> dict:
        return {"generation": self.generation, "population": [list(t) for t in self.population],
                "mates": [list(t) for t in self.mates], "rng": self.rng,
                "best_tree": None if self.best_tree is None else list(self.best_tree),
                "best_error": self.best_error, "evaluations": self.evaluations, "known": self.known.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> GPState:
        pop, mates = [tuple(t) for t in d["population"]], [tuple(t) for t in d["mates"]]
        best = None if d["best_tree"] is None else tuple(d["best_tree"])
        # outputs are recomputed: the next ask() returns every tree, and tell() fills them in
        return cls(d["generation"], pop, mates, None, np.zeros(len(pop) + len(mates), dtype=bool), d["rng"], best,
                   d["best_error"], None, d["evaluations"], np.array(d["known"], dtype=bool))


def mse(outputs: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        err = np.mean((outputs - y) ** 2, axis=-1)
    return np.where(np.isfinite(err), err, np.inf)


class TreeGP:
    """Evolves trees that fit `y`: a tree's fitness is its outputs on the data points (mean squared
    error to y for selection, the outputs themselves for mate choice)."""

    def __init__(self, cfg: GPConfig, pset: PrimitiveSet, y: np.ndarray) -> None:
        self.cfg, self.pset, self.arity, self.y = cfg, pset, pset.arity, np.asarray(y)
        self.arity_list = tuple(int(a) for a in self.arity)  # fast to index from Python loops

    def init(self, seed: int) -> GPState:
        rng = np.random.default_rng(seed)
        pop = ramped_half_and_half(rng, self.pset, self.cfg.pop_size, *self.cfg.init_depth)
        mates = (ramped_half_and_half(rng, self.pset, self.cfg.pop_size, *self.cfg.init_depth)
                 if self.cfg.mate_choice == "ideal" else [])
        return GPState(0, pop, mates, None, np.zeros(len(pop) + len(mates), dtype=bool), rng.bit_generator.state)

    def ask(self, state: GPState) -> tuple[list[Tree], GPState]:
        """Trees whose outputs are unknown (after a resume, the best tree so far comes last), and the
        state, unchanged."""
        trees = state.population + state.mates
        asked = [trees[i] for i in np.flatnonzero(~state.known)]
        return (asked + [state.best_tree] if self._needs_best(state) else asked), state

    @staticmethod
    def _needs_best(state: GPState) -> bool:
        return state.best_tree is not None and state.best_outputs is None

    def tell(self, state: GPState, trees: list[Tree], outputs: np.ndarray) -> GPState:
        """Record the outputs (trees, points) of the asked trees, then breed the next generation."""
        if len(trees) != len(outputs):
            raise ValueError(f"tell() needs one row of outputs per asked tree ({len(trees)}), got {len(outputs)}")
        y = self.y
        pending = np.flatnonzero(~state.known)
        best_tree, best_error, best_outputs = state.best_tree, state.best_error, state.best_outputs
        if self._needs_best(state):
            best_outputs, outputs = outputs[-1], outputs[:-1]
        if len(outputs) != len(pending):
            raise ValueError(f"tell() needs outputs for the {len(pending)} asked trees, got {len(outputs)}")
        P = len(state.population)
        filled = np.empty((len(state.known), len(y))) if state.outputs is None else state.outputs.copy()
        filled[pending] = outputs
        own = filled[:P]
        errors = mse(own, y)
        new = pending if state.reloaded is None else pending[~state.reloaded[pending]]
        evaluations = state.evaluations + int(np.sum(new < P))
        top = int(np.argmin(errors))
        if errors[top] < best_error:
            best_tree, best_error, best_outputs = state.population[top], float(errors[top]), own[top].copy()
        rng = np.random.default_rng()
        rng.bit_generator.state = state.rng
        pop, mates, rows, changed = self._breed(rng, state, errors, filled)
        return GPState(state.generation + 1, pop, mates, filled[rows], ~changed, rng.bit_generator.state, best_tree,
                       best_error, best_outputs, evaluations)

    # -- breeding (selection and mate choice are vectorised over all pairs) -------------------
    def _tournament(self, rng: np.random.Generator, errors: np.ndarray, n: int) -> np.ndarray:
        entrants = rng.integers(len(errors), size=(n, self.cfg.tournament_size))
        return entrants[np.arange(n), np.argmin(errors[entrants], axis=1)]

    def _choose_mates(self, rng, first: np.ndarray, errors, own, mate_outputs) -> np.ndarray:
        n = len(first)
        if self.cfg.mate_choice == "none":
            return self._tournament(rng, errors, n)
        if self.cfg.mate_choice == "random":
            return rng.integers(len(errors), size=n)
        candidates = rng.integers(len(errors), size=(n, self.cfg.tournament_size))
        with np.errstate(all="ignore"):
            dist = np.mean((own[candidates] - mate_outputs[first][:, None, :]) ** 2, axis=2)
        dist = np.where(np.isfinite(dist), dist, np.inf)
        return candidates[np.arange(n), np.argmin(dist, axis=1)]

    def _vary(self, rng, trees: list[Tree], parents: np.ndarray, cross: np.ndarray) -> list[Tree]:
        """Children 2k, 2k+1 of parents[2k], parents[2k+1]: crossover where `cross`, then mutation."""
        cuts = rng.random((len(cross), 2))
        children: list[Tree] = []
        for k, crossed in enumerate(cross):
            a, b = trees[parents[2 * k]], trees[parents[2 * k + 1]]
            children += crossover(a, b, cuts[k], self.arity_list) if crossed else (a, b)
        for c in np.flatnonzero(rng.random(len(children)) < self.cfg.mutpb):
            children[c] = subtree_mutation(rng, children[c], self.pset, self.arity_list)
        return children

    def _breed(self, rng, state: GPState, errors: np.ndarray, outputs: np.ndarray):
        """Children and ideal-mate trees, the output row each inherits from its parent, and which
        changed; a changed tree deeper than max_depth is replaced by its parent."""
        P = len(state.population)
        first = self._tournament(rng, errors, P // 2)
        second = self._choose_mates(rng, first, errors, outputs[:P], outputs[P:])
        parents = np.stack([first, second], axis=1).ravel()
        cross = rng.random(P // 2) < self.cfg.cxpb
        pop = self._vary(rng, state.population, parents, cross)
        mates = self._vary(rng, state.mates, parents, cross) if state.mates else []
        rows = np.concatenate([parents, P + parents]) if mates else parents
        before = state.population + state.mates
        after = pop + mates
        changed = np.array([child is not before[r] for child, r in zip(after, rows, strict=False)])
        new = np.flatnonzero(changed)
        if len(new):
            for c in new[depths([after[c] for c in new], self.arity) > self.cfg.max_depth]:
                after[c], changed[c] = before[rows[c]], False
        return after[:P], after[P:], rows, changed
