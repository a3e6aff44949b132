"""Seed-chain genomes (Such et al. 2017, "Deep Neuroevolution", arXiv:1712.06567).

A network is never stored: a genome is its initialisation seed followed by one index into a
shared table of Gaussian noise per mutation it went through. Its weights are rebuilt as
init(seed) + sigma * sum(table[i : i + dim]), so an individual costs a few integers per
generation however many parameters the network has, and a worker given the table and the
genome rebuilds exactly the same float32 weights.
"""

from __future__ import annotations

import numpy as np

Genome = tuple[int, ...]


class NoiseTable:
    """`size` float32 standard-normal numbers drawn once from `seed`, shared by every genome."""

    def __init__(self, size: int, seed: int = 0) -> None:
        if size < 1:
            raise ValueError(f"noise table size must be >= 1, got {size}")
        self.size, self.seed = size, seed
        self.table = np.random.default_rng(seed).standard_normal(size, dtype=np.float32)

    def slice(self, index: int, dim: int) -> np.ndarray:
        return self.table[index : index + dim]

    def sample_index(self, rng: np.random.Generator, dim: int) -> int:
        if dim > self.size:
            raise ValueError(f"noise table ({self.size}) is smaller than the network ({dim} parameters)")
        return int(rng.integers(0, self.size - dim + 1))


def mutate(params: np.ndarray, index: int, sigma: float, noise: NoiseTable) -> np.ndarray:
    """One Gaussian mutation step; `reconstruct` applies exactly these steps in the same order."""
    return params + np.float32(sigma) * noise.slice(index, params.shape[-1])


def reconstruct(genome: Genome, init, sigma: float, noise: NoiseTable) -> np.ndarray:
    """Weights of `genome` = init(seed) followed by its mutations; `init(seed) -> (dim,) float32`."""
    params = init(genome[0])
    for index in genome[1:]:
        params = mutate(params, index, sigma, noise)
    return params
