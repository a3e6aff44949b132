"""Evaluate a population in fixed chunks, in this process or across a Ray cluster.

The population is cut into chunks of `chunk_size` rows and chunk c is evaluated with seed
(seed, c), whoever runs it, so the serial path and Ray give the same fitness for a fixed
seed. chunk_size 0 evaluates every row as one task in this process with the seed itself (the
rollouts that recipes measured in one batch). Ray starts a local cluster unless `address`
names a running one ("auto" or "ray://host:port").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from selfevolve.errors import ConfigError

ChunkFn = Callable[[np.ndarray, int], np.ndarray]  # (rows, seed) -> one fitness per row


def _call(fn: ChunkFn, rows: np.ndarray, seed: int) -> np.ndarray:
    return fn(rows, seed)


def object_rows(items: list) -> np.ndarray:
    """One row per item, whatever it is (an episode, not a fitness): what a chunk function returns."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def chunk_seed(seed: int, chunk: int) -> int:
    return int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0])


@dataclass
class ParallelConfig:
    """Where a population's fitness is evaluated: the config fields of every recipe that evolves one."""

    backend: str = "serial"
    """serial (this process) or ray (local cluster, or ray_address)."""
    ray_address: str = ""
    """Address of a running Ray cluster; empty = start a local one."""
    workers: int = 0
    """CPUs for a local Ray cluster; 0 = all."""
    chunk_size: int = 4
    """Individuals per fitness task (the unit of parallel work); 0 = all as one task, in this process."""

    def __post_init__(self) -> None:
        getattr(super(), "__post_init__", lambda: None)()  # a mixin: the recipe's other bases check theirs
        if self.backend not in ("serial", "ray"):
            raise ValueError(f"backend must be serial or ray, got {self.backend!r}")
        if self.chunk_size < 0 or self.workers < 0:
            raise ValueError(f"chunk_size and workers must be >= 0, got {self.chunk_size}, {self.workers}")
        if self.backend == "ray" and not self.chunk_size:
            raise ValueError("backend=ray needs chunk_size >= 1 (the tasks sent to the workers)")

    def evaluator(self, fn: ChunkFn) -> Evaluator:
        return Evaluator(fn, self.chunk_size, self.backend, self.ray_address, self.workers)


class Evaluator:
    def __init__(self, fn: ChunkFn, chunk_size: int, backend: str = "serial", address: str = "",
                 workers: int = 0) -> None:
        if backend not in ("serial", "ray"):
            raise ConfigError(f"backend must be 'serial' or 'ray', got {backend!r}")
        if chunk_size < 0 or (backend == "ray" and not chunk_size):
            raise ConfigError(f"chunk_size must be >= {int(backend == 'ray')} with backend {backend}, got {chunk_size}")
        self.fn, self.chunk_size, self.backend = fn, chunk_size, backend
        if backend == "ray":
            try:
                import ray
            except ImportError:
                raise ConfigError("backend='ray' needs Ray: pip install 'selfevolve[ray]'") from None
            if not ray.is_initialized():
                ray.init(address=address or None, num_cpus=(workers or None) if not address else None,
                         include_dashboard=False, log_to_driver=False, configure_logging=False)
            self._remote, self._fn_ref = ray.remote(_call), ray.put(fn)

    def __call__(self, rows: np.ndarray, seed: int) -> np.ndarray:
        if not self.chunk_size:
            return self.fn(rows, seed)
        chunks = [rows[i : i + self.chunk_size] for i in range(0, len(rows), self.chunk_size)]
        seeds = [chunk_seed(seed, c) for c in range(len(chunks))]
        if self.backend == "serial":
            parts = [self.fn(chunk, s) for chunk, s in zip(chunks, seeds, strict=False)]
        else:
            import ray

            tasks = [self._remote.remote(self._fn_ref, chunk, s) for chunk, s in zip(chunks, seeds, strict=True)]
            parts = ray.get(tasks)
        return np.concatenate(parts)
