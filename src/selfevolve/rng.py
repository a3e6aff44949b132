"""Every random stream of a run, derived from (seed, *stream names) in one place.

A round, a phase or a worker asks for its own streams by name, so resuming it, running it on
another worker or adding a new phase elsewhere never shifts the numbers it draws. numpy's
SeedSequence mixes the tuple; torch and Python generators are seeded from its output.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import numpy as np
import torch

T = TypeVar("T")


class Streams(NamedTuple):
    np: np.random.Generator
    torch: torch.Generator
    py: random.Random


def _entropy(seed: int, stream: tuple[int | str, ...]) -> list[int]:
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return [seed, *(zlib.crc32(s.encode()) if isinstance(s, str) else int(s) for s in stream)]


def rngs(seed: int, *stream: int | str) -> Streams:
    """numpy, torch and Python generators for the stream (seed, *stream); same tuple, same numbers."""
    sequence = np.random.SeedSequence(_entropy(seed, stream))
    torch_seed, py_seed = (int(x) for x in sequence.generate_state(2, np.uint64))
    return Streams(np.random.default_rng(sequence), torch.Generator().manual_seed(torch_seed & (2**63 - 1)),
                   random.Random(py_seed))


def torch_seed(seed: int, *stream: int | str) -> int:
    """An int seed for code that takes one (torch.manual_seed inside a fork_rng block, say)."""
    return int(np.random.SeedSequence(_entropy(seed, stream)).generate_state(1, np.uint64)[0]) & (2**63 - 1)


def seeded(build: Callable[[], T], seed: int, *stream: int | str) -> T:
    """`build()` (a model constructor, say: it draws from torch's global stream) with that stream
    seeded from (seed, *stream), and put back as it was afterwards."""
    with torch.random.fork_rng():
        torch.manual_seed(torch_seed(seed, *stream))
        return build()
