"""The Task protocol: where problems come from and how an answer is checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Problem:
    prompt: str  # what the model sees
    answer: str  # the gold answer text (what a correct model writes before its stop token)
    difficulty: int
    fields: dict = field(default_factory=dict, compare=False)  # task-specific, e.g. operands


class Task(Protocol):
    name: str

    def sample(self, n: int, difficulty: int, rng: np.random.Generator, mixed: bool = False) -> list[Problem]:
        """n problems at `difficulty`; mixed=True also draws easier parts (for training data)."""

    def verify(self, problem: Problem, answer: str) -> bool:
        """Ground truth: is `answer` correct for `problem`?"""

    def well_formed(self, problem: Problem, answer: str) -> bool:
        """A check that needs no label (e.g. the answer has a possible length)."""

    def variants(self, problem: Problem) -> list[Problem]:
        """Other problems that must have the same answer (e.g. b+a for a+b), for agreement filters."""
