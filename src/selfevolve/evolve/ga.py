"""Deep GA (Such et al. 2017) behind an ask / tell interface with explicit state.

    ga = DeepGA(GAConfig(), dim=spec.dim, init=spec.init)
    state = ga.init(seed)
    for _ in range(generations):
        params, state = ga.ask(state)             # (pop_size, dim) weights to evaluate
        state = ga.tell(state, params, fitness)   # fitness (pop_size,) of those weights

The same contract as TreeGP and Genome (and evosax): `ask` never changes the state it is given.

Each generation keeps the best `truncation` individuals as parents, copies the best `elites`
unchanged, and fills the rest with Gaussian mutations of random parents. Elites are
evaluated again in every generation they survive and ranked by the mean of all their
evaluations, so one lucky episode does not keep a weak network on top. The state is plain
data (genomes, fitness sums, the RNG state): it round-trips through JSON for resuming.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from selfevolve.evolve.noise import Genome, NoiseTable, mutate, reconstruct


@dataclass(frozen=True)
class GAConfig:
    pop_size: int = 100
    truncation: int = 10
    elites: int = 1
    sigma: float = 0.1
    noise_size: int = 1 << 22
    noise_seed: int = 0

    def __post_init__(self) -> None:
        if self.pop_size < 2:
            raise ValueError(f"pop_size must be >= 2, got {self.pop_size}")
        if not 1 <= self.truncation <= self.pop_size:
            raise ValueError(f"truncation must be in [1, pop_size], got {self.truncation}")
        if not 0 <= self.elites <= self.truncation:
            raise ValueError(f"elites must be in [0, truncation], got {self.elites}")
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")


@dataclass
class GAState:
    generation: int
    genomes: list[Genome]
    fitness_sum: list[float]  # over earlier evaluations of the same genome (elites), 0 for new ones
    fitness_count: list[int]
    rng: dict  # numpy bit-generator state
    best_genome: Genome | None = None
    best_fitness: float = float("-inf")
    params: np.ndarray | None = field(default=None, repr=False)  # cache of the genomes' weights

    def to_json(self) -> dict:
        return {"generation": self.generation, "genomes": [list(g) for g in self.genomes],
                "fitness_sum": self.fitness_sum, "fitness_count": self.fitness_count, "rng": self.rng,
                "best_genome": None if self.best_genome is None else list(self.best_genome),
                "best_fitness": self.best_fitness}

    @classmethod
    def from_json(cls, d: dict) -> GAState:
        return cls(d["generation"], [tuple(g) for g in d["genomes"]], d["fitness_sum"], d["fitness_count"],
                   d["rng"], None if d["best_genome"] is None else tuple(d["best_genome"]), d["best_fitness"])


class DeepGA:
    def __init__(self, cfg: GAConfig, dim: int, init: Callable[[int], np.ndarray]) -> None:
        self.cfg, self.dim, self.init_params = cfg, dim, init
        self.noise = NoiseTable(cfg.noise_size, cfg.noise_seed)
        if dim > cfg.noise_size:
            raise ValueError(f"noise_size ({cfg.noise_size}) must be >= the network size ({dim})")

    def init(self, seed: int) -> GAState:
        rng = np.random.default_rng(seed)
        genomes = [(int(s),) for s in rng.integers(0, 2**31 - 1, self.cfg.pop_size)]
        n = self.cfg.pop_size
        return GAState(0, genomes, [0.0] * n, [0] * n, rng.bit_generator.state)

    def weights(self, genome: Genome) -> np.ndarray:
        return reconstruct(genome, self.init_params, self.cfg.sigma, self.noise)

    def ask(self, state: GAState) -> tuple[np.ndarray, GAState]:
        """The population's weights (pop_size, dim) and a state that holds them (after a resume they
        are rebuilt from the genomes); `state` itself is left as it is."""
        if state.params is not None:
            return state.params, state
        params = np.stack([self.weights(g) for g in state.genomes])
        return params, dataclasses.replace(state, params=params)

    def tell(self, state: GAState, params: np.ndarray, fitness: np.ndarray) -> GAState:
        fitness = np.asarray(fitness, dtype=np.float64)
        if fitness.shape != (len(state.genomes),) or len(params) != len(state.genomes):
            raise ValueError(f"tell() needs the {len(state.genomes)} asked individuals and one fitness each, got "
                             f"{len(params)} and {fitness.shape}")
        total = np.asarray(state.fitness_sum) + fitness
        count = np.asarray(state.fitness_count) + 1
        mean = total / count
        order = np.argsort(-mean, kind="stable")
        parents = order[: self.cfg.truncation]
        rng = np.random.default_rng()
        rng.bit_generator.state = state.rng
        genomes, sums, counts, rows = [], [], [], []
        for i in order[: self.cfg.elites]:
            genomes.append(state.genomes[i])
            sums.append(float(total[i]))
            counts.append(int(count[i]))
            rows.append(params[i])
        while len(genomes) < self.cfg.pop_size:
            p = int(parents[rng.integers(len(parents))])
            index = self.noise.sample_index(rng, self.dim)
            genomes.append((*state.genomes[p], index))
            sums.append(0.0)
            counts.append(0)
            rows.append(mutate(params[p], index, self.cfg.sigma, self.noise))
        top = int(order[0])
        return GAState(state.generation + 1, genomes, sums, counts, rng.bit_generator.state,
                       state.genomes[top], float(mean[top]), np.stack(rows))
