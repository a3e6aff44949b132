"""GENOME / GENOME+ behind an ask / tell interface over flat weight vectors (one row per individual).

    evo = Genome(GenomeConfig(), experts, expert_fitness)   # the experts are generation 0
    state = evo.init(seed)
    for _ in range(generations):
        children, state = evo.ask(state)               # (pop_size - elites, dim); `state` is not changed
        state = evo.tell(state, children, fitness)     # fitness of those children

Each generation draws pairs of distinct parents by fitness, makes each child by a
fitness-weighted crossover of the two (or a copy of one) plus masked Gaussian mutation, and
with `succession` (GENOME+) moves the child by a particle-swarm step: towards its better
parent's best-ever weights and the population's best, away from the worst. Parents and children
then compete for the `pop_size` places: the `elites` best, the rest by tournament (as in the
GENOME authors' code). Fitness is deterministic (a fixed dev split), so survivors are not
evaluated again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from selfevolve.evolve.ops import SELECTIONS, crossover, mutate, select, succession, survive


@dataclass
class GenomeConfig:
    """GENOME's evolution settings; also a mixin of the genome recipe's config."""

    pop_size: int = 10
    """Individuals per generation (the experts are generation 0)."""
    elites: int = 2
    """The best this many survive each generation unchanged."""
    selection: str = "roulette"
    """Parent selection: roulette, tournament or rank."""
    tournament_size: int = 3
    """Contenders per pick when selection=tournament."""
    crossover_rate: float = 0.8
    """Share of children made by crossover (the rest copy one parent)."""
    crossover_scale: float = 1.2
    """A crossover child is this times its parents' fitness-weighted average (1.2 in the GENOME code)."""
    mutation_rate: float = 0.1
    """Fraction of a child's weights that get Gaussian noise."""
    mutation_sigma: float = 0.05
    """Noise std as a fraction of the individuals' weight std (their mean)."""
    succession: bool = True
    """GENOME+: move each child towards its line's best and the best ever, away from the worst."""
    succession_step: float = 1.0
    """GENOME+: the size of that move."""

    def __post_init__(self) -> None:
        getattr(super(), "__post_init__", lambda: None)()  # a mixin: the recipe's other bases check theirs
        if self.pop_size < 2 or not 0 <= self.elites < self.pop_size:
            raise ValueError(f"need pop_size >= 2 and 0 <= elites < pop_size, got {self.pop_size}, {self.elites}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if not 0 <= self.crossover_rate <= 1 or not 0 <= self.mutation_rate <= 1:
            raise ValueError("crossover_rate and mutation_rate must be in [0, 1]")
        if min(self.crossover_scale, self.tournament_size) <= 0 or min(self.mutation_sigma, self.succession_step) < 0:
            raise ValueError("need crossover_scale > 0, mutation_sigma and succession_step >= 0, tournament_size >= 1")


@dataclass
class GenomeState:
    generation: int
    population: torch.Tensor  # (n, dim)
    fitness: torch.Tensor  # (n,)
    velocity: torch.Tensor  # (n, dim) each line's last move, GENOME+ only (zeros otherwise)
    personal_best: torch.Tensor  # (n, dim): the best weights in each individual's line
    personal_fitness: torch.Tensor  # (n,)
    best: torch.Tensor  # (dim,) best ever seen
    best_fitness: float
    worst: torch.Tensor  # (dim,) worst ever seen
    worst_fitness: float
    rng: torch.Tensor  # generator state
    parents: torch.Tensor | None = None  # (children, 2) of the last ask, for tell

    TENSORS = ("population", "fitness", "velocity", "personal_best", "personal_fitness", "best", "worst", "rng")

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in self.TENSORS}

    def scalars(self) -> dict:
        return {"generation": self.generation, "best_fitness": self.best_fitness, "worst_fitness": self.worst_fitness}

    @classmethod
    def restore(cls, tensors: dict[str, torch.Tensor], scalars: dict) -> GenomeState:
        return cls(**{k: tensors[k] for k in cls.TENSORS}, **scalars)


class Genome:
    def __init__(self, cfg: GenomeConfig, experts: torch.Tensor, fitness: torch.Tensor) -> None:
        """`experts` (n, dim) flat weights and their `fitness` (n,): generation 0."""
        self.cfg, self.experts, self.expert_fitness = cfg, experts, fitness

    def init(self, seed: int) -> GenomeState:
        experts, fitness = self.experts, self.expert_fitness.float()
        b, w = int(fitness.argmax()), int(fitness.argmin())
        rng = torch.Generator().manual_seed(seed)
        return GenomeState(0, experts.clone(), fitness.clone(), torch.zeros_like(experts), experts.clone(),
                           fitness.clone(), experts[b].clone(), float(fitness[b]), experts[w].clone(),
                           float(fitness[w]), rng.get_state())

    def ask(self, state: GenomeState) -> tuple[torch.Tensor, GenomeState]:
        """Children (pop_size - elites, dim), and a state that knows their parents; `state` itself is
        left as it is."""
        cfg, rng = self.cfg, torch.Generator()
        rng.set_state(state.rng)
        n = cfg.pop_size - cfg.elites
        f = state.fitness
        a = select(f, n, cfg.selection, rng, cfg.tournament_size)
        b = select(f, n, cfg.selection, rng, cfg.tournament_size, exclude=a)
        cross = torch.rand(n, generator=rng) < cfg.crossover_rate
        pop = state.population
        x = torch.where(cross[:, None], crossover(pop[a], pop[b], f[a], f[b], cfg.crossover_scale), pop[a])
        sigma = cfg.mutation_sigma * state.population.std(1).mean()
        x = mutate(x, cfg.mutation_rate, float(sigma), rng)
        better = torch.where(cross & (f[b] > f[a]), b, a)  # whose line the child continues
        if cfg.succession:
            x, _ = succession(x, state.velocity[better], state.personal_best[better], state.best, state.worst, rng,
                              step=cfg.succession_step)
        return x, dataclasses.replace(state, rng=rng.get_state(), parents=better)

    def tell(self, state: GenomeState, children: torch.Tensor, fitness: torch.Tensor) -> GenomeState:
        cfg, line = self.cfg, state.parents
        fitness = fitness.float()
        velocity = children - state.population[line] if cfg.succession else torch.zeros_like(children)
        improved = fitness > state.personal_fitness[line]
        personal = torch.where(improved[:, None], children, state.personal_best[line])
        personal_f = torch.where(improved, fitness, state.personal_fitness[line])
        best, best_f = state.best, state.best_fitness
        if fitness.max() > best_f:
            best, best_f = children[fitness.argmax()].clone(), float(fitness.max())
        worst, worst_f = state.worst, state.worst_fitness
        if fitness.min() < worst_f:
            worst, worst_f = children[fitness.argmin()].clone(), float(fitness.min())
        everyone = torch.cat([state.fitness, fitness])
        rng = torch.Generator()
        rng.set_state(state.rng)
        keep = survive(everyone, cfg.pop_size, cfg.elites, rng, cfg.tournament_size)
        return GenomeState(
            state.generation + 1, torch.cat([state.population, children])[keep], everyone[keep],
            torch.cat([state.velocity, velocity])[keep], torch.cat([state.personal_best, personal])[keep],
            torch.cat([state.personal_fitness, personal_f])[keep], best, best_f, worst, worst_f, rng.get_state())
