"""Population operators on weight vectors: merges, crossover, mutation, selection, succession, ensemble.

An individual is one flat float vector (a LoRA adapter's weights laid end to end, see `Flat`),
and a population is a (n, dim) tensor, so every operator is a handful of tensor ops over all
individuals at once. These are the operators of GENOME (Zhang et al. 2025, "Nature-Inspired
Population-Based Evolution of Large Language Models") and the merges it builds on: TIES (Yadav
et al. 2023) and DARE (Yu et al. 2024).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

SELECTIONS = ("roulette", "tournament", "rank")


@dataclass(frozen=True)
class Flat:
    """How a dict of tensors (an adapter's state) lies in one vector, and back."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, state: dict[str, torch.Tensor]) -> Flat:
        names = tuple(sorted(state))
        return cls(names, tuple(tuple(state[n].shape) for n in names))

    @property
    def dim(self) -> int:
        return sum(torch.Size(s).numel() for s in self.shapes)

    def flatten(self, state: dict[str, torch.Tensor]) -> torch.Tensor:
        if set(state) != set(self.names):
            differ = sorted(set(state) ^ set(self.names))[:3]
            raise ValueError(f"adapter weights differ from the population's layout: {differ}")
        return torch.cat([state[n].reshape(-1).float() for n in self.names])

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = vector.split([torch.Size(s).numel() for s in self.shapes])
        return {n: p.reshape(s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)}


# -- merges: k vectors (k, dim) -> one (dim,) ------------------------------------------------
def _weights(k: int, weights: torch.Tensor | Sequence[float] | None) -> torch.Tensor:
    w = torch.ones(k) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    if w.shape != (k,) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"merge weights must be {k} non-negative numbers with a positive sum")
    return w


def linear_merge(vectors: torch.Tensor, weights=None) -> torch.Tensor:
    """Weighted average; uniform weights give the model soup."""
    w = _weights(len(vectors), weights)
    return (w[:, None] * vectors).sum(0) / w.sum()


def random_merge_search(vectors: torch.Tensor, score, budget: int, generator: torch.Generator,
                        advance=lambda **_: None) -> tuple[torch.Tensor, float]:
    """The best of `budget` linear merges with weights uniform in [0, 1), by `score(merge) -> float`: the
    baseline an evolved merge must beat with the same number of evaluations."""
    best, best_score = vectors[0], float("-inf")
    for _ in range(budget):
        candidate = linear_merge(vectors, torch.rand(len(vectors), generator=generator))
        if (value := score(candidate)) > best_score:
            best, best_score = candidate, value
        advance(best=best_score)
    return best, best_score


def trim(deltas: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the `density` fraction of largest-magnitude entries of each row, zero the rest."""
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density}")
    keep = max(1, round(density * deltas.shape[1]))
    threshold = deltas.abs().topk(keep, dim=1).values[:, -1:]
    return torch.where(deltas.abs() >= threshold, deltas, 0.0)


def dare(deltas: torch.Tensor, drop: float, generator: torch.Generator) -> torch.Tensor:
    """Drop each entry with probability `drop` and rescale the rest by 1 / (1 - drop)."""
    if not 0 <= drop < 1:
        raise ValueError(f"drop must be in [0, 1), got {drop}")
    keep = torch.rand(deltas.shape, generator=generator) >= drop
    return torch.where(keep, deltas / (1 - drop), 0.0)


def _elect_and_average(deltas: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """TIES' sign election (the sign of the weighted sum) and the mean of the entries that agree."""
    sign = torch.sign((w[:, None] * deltas).sum(0))
    agree = (torch.sign(deltas) == sign) & (deltas != 0)
    mass = (w[:, None] * agree).sum(0)
    return torch.where(mass > 0, (w[:, None] * deltas * agree).sum(0) / mass.clamp(min=1e-12), 0.0)


def ties_merge(vectors: torch.Tensor, density: float = 0.2, weights=None, base: torch.Tensor | None = None,
               scale: float = 1.0) -> torch.Tensor:
    """TIES: trim each delta from `base` to its top `density`, elect signs, average the agreeing ones."""
    base = torch.zeros(vectors.shape[1]) if base is None else base
    return base + scale * _elect_and_average(trim(vectors - base, density), _weights(len(vectors), weights))


def dare_ties_merge(vectors: torch.Tensor, drop: float, generator: torch.Generator, weights=None,
                    base: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
    """DARE's random drop-and-rescale in place of TIES' magnitude trim, then TIES' election."""
    base = torch.zeros(vectors.shape[1]) if base is None else base
    return base + scale * _elect_and_average(dare(vectors - base, drop, generator), _weights(len(vectors), weights))


# -- variation over a whole population -------------------------------------------------------
def crossover(a: torch.Tensor, b: torch.Tensor, fit_a: torch.Tensor, fit_b: torch.Tensor,
              scale: float = 1.0) -> torch.Tensor:
    """GENOME's crossover: each child is its two parents averaged with weights proportional to
    their fitness (equal weights when both are 0), times `scale` (the GENOME authors' code uses
    1.2: an average of two updates is shorter than either). a, b: (n, dim); fit_a, fit_b: (n,)."""
    total = fit_a + fit_b
    w = torch.where(total > 0, fit_a / total.clamp(min=1e-12), 0.5)[:, None]
    return scale * (w * a + (1 - w) * b)


def mutate(x: torch.Tensor, rate: float, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Add N(0, sigma^2) noise to a random `rate` fraction of the entries of every row."""
    if not 0 <= rate <= 1 or sigma < 0:
        raise ValueError(f"mutation rate must be in [0, 1] and sigma >= 0, got {rate}, {sigma}")
    mask = torch.rand(x.shape, generator=generator) < rate
    return x + mask * sigma * torch.randn(x.shape, generator=generator)


def _shares(fitness: torch.Tensor, method: str) -> torch.Tensor:
    """Unnormalised selection probabilities: linear rank, or roulette in proportion to fitness
    (shifted above the worst only where some fitness is negative; all zero -> uniform). Not shifted
    otherwise: in a converged population the shift would leave the worst no share at all."""
    m = len(fitness)
    if method == "rank":
        return torch.empty(m).scatter_(0, fitness.argsort(), torch.arange(1, m + 1, dtype=torch.float32))
    p = fitness - fitness.min() if fitness.min() < 0 else fitness
    return p if p.sum() > 0 else torch.ones(m)


def select(fitness: torch.Tensor, n: int, method: str, generator: torch.Generator, tournament_size: int = 3,
           exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of `n` parents drawn with replacement by fitness-proportional (roulette), tournament
    or linear-rank selection. exclude: (n,) one index per draw that it may not return (a child's
    first parent, so that nothing mates with itself); needs at least two individuals."""
    if method not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {method!r}")
    m = len(fitness)
    if method == "tournament":
        if exclude is None:
            entrants = torch.randint(m, (n, tournament_size), generator=generator)
        else:  # drawn from the others: skip over the excluded index
            entrants = torch.randint(m - 1, (n, tournament_size), generator=generator)
            entrants += entrants >= exclude[:, None]
        return entrants.gather(1, fitness[entrants].argmax(1, keepdim=True)).squeeze(1)
    p = _shares(fitness, method).expand(n, m).clone()
    if exclude is not None:
        rows = torch.arange(n)
        p[rows, exclude] = 0
        p[p.sum(1) == 0] = 1  # only the excluded one had a share: the others evenly
        p[rows, exclude] = 0
    return torch.multinomial(p, 1, generator=generator).squeeze(1)


def survive(fitness: torch.Tensor, keep: int, elites: int, generator: torch.Generator,
            tournament_size: int = 3) -> torch.Tensor:
    """Indices of the `keep` survivors of parents and children together, as the GENOME authors'
    code selects: the `elites` best, then tournament winners drawn without replacement from the
    rest. A parent stays until better ones push it out, so one generation of good children cannot
    wipe out a skill the population still needs."""
    order = fitness.argsort(descending=True, stable=True)
    chosen, rest = order[:elites].tolist(), order[elites:].tolist()
    while len(chosen) < min(keep, len(fitness)):
        draw = torch.randperm(len(rest), generator=generator)[:tournament_size].tolist()
        winner = max((rest[i] for i in draw), key=lambda i: float(fitness[i]))
        chosen.append(winner)
        rest.remove(winner)
    return torch.tensor(chosen)


def succession(x: torch.Tensor, velocity: torch.Tensor, personal_best: torch.Tensor, global_best: torch.Tensor,
               global_worst: torch.Tensor, generator: torch.Generator,
               inertia: float = 0.4, cognitive: float = 0.3, social: float = 0.3, repel: float = 0.1,
               step: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """GENOME+'s succession, a particle-swarm step (as in Model Swarms, Feng et al. 2024):

        v' = (inertia v + cognitive r_p (p - x) + social r_g (g - x) - repel r_w (w - x)) / C
        x' = x + step v'

    with p each individual's best so far, g and w the best and worst ever seen, r_* uniform in
    [0, 1) per individual, and C the sum of the four coefficients. x, velocity, personal_best: (n, dim).
    """
    n = len(x)
    r_p, r_g, r_w = (torch.rand(n, 1, generator=generator) for _ in range(3))
    c = inertia + cognitive + social + repel
    v = (inertia * velocity + cognitive * r_p * (personal_best - x) + social * r_g * (global_best - x)
         - repel * r_w * (global_worst - x)) / c
    return x + step * v, v


def majority_vote(answers: Sequence[Sequence[str]]) -> list[str]:
    """Ensemble: per example, the answer most members give; ties go to the earliest member
    (members come best first). answers: one list per member, one answer per example."""
    out = []
    for column in zip(*answers, strict=True):
        counts = Counter(column)
        top = max(counts.values())
        out.append(next(a for a in column if counts[a] == top))
    return out
