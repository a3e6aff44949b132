"""Fitness of LoRA adapters given as flat vectors: what evolving merges of adapters needs."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from selfevolve.errors import ConfigError
from selfevolve.evolve.ops import Flat, majority_vote
from selfevolve.models.lora import set_adapter_state
from selfevolve.search.sampling import answer
from selfevolve.tasks.base import Problem


def accuracy(predicted: list[str], problems: list[Problem]) -> float:
    """Exact match of stripped answers."""
    return float(np.mean([a == p.answer for a, p in zip(predicted, problems, strict=True)]))


def split_shared(pool: dict[str, dict[str, torch.Tensor]]) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """(the weights every adapter holds equally, each adapter's other weights). Experts trained from one
    frozen A share it; merging only their B matrices makes a merge of experts exactly that merge of their
    weight updates B A (merging A too would scale it: a plain sum of two would be twice both updates)."""
    first = next(iter(pool.values()))
    shared = {k: v for k, v in first.items() if all(torch.equal(v, a[k]) for a in pool.values())}
    if len(shared) == len(first):
        raise ConfigError("the adapters are identical: there is nothing to merge")
    return shared, {name: {k: v for k, v in a.items() if k not in shared} for name, a in pool.items()}


class AdapterEval:
    """Answers of an adapted model for flat adapter vectors; picklable (the model travels with it), so
    each Ray worker evaluates on its own copy. Answers are kept per vector and problem set: the final
    scoring asks again for what evolution already evaluated (the experts, the best, the ensemble's
    members), and greedy answers of the same adapter to the same prompts are the same."""

    def __init__(self, model, tok, flat: Flat, problems: list[Problem]) -> None:
        self.model, self.tok, self.flat, self.problems = model, tok, flat, problems
        self.known: dict[bytes, list[str]] = {}

    def load(self, vector: torch.Tensor):
        """The model with this adapter in place."""
        set_adapter_state(self.model, self.flat.unflatten(vector))
        return self.model

    def answers(self, vector: torch.Tensor, problems: list[Problem] | None = None) -> list[str]:
        problems = problems or self.problems
        key = hashlib.blake2b(vector.detach().contiguous().numpy().tobytes(), digest_size=16)
        key.update("\0".join(p.prompt for p in problems).encode())
        if (k := key.digest()) not in self.known:
            self.known[k] = [a.strip() for a in answer(self.load(vector), self.tok, problems)[0]]
        return self.known[k]

    def scores(self, candidates: dict[str, torch.Tensor], ensemble: dict[str, list[torch.Tensor]],
               problems: list[Problem] | None = None) -> dict[str, float]:
        """Exact match of each candidate, and of each ensemble's majority vote, on the problems."""
        problems = problems or self.problems
        out = {k: accuracy(self.answers(v, problems), problems) for k, v in candidates.items()}
        for k, members in ensemble.items():
            out[k] = accuracy(majority_vote([self.answers(m, problems) for m in members]), problems)
        return out

    def __call__(self, rows: np.ndarray, seed: int) -> np.ndarray:  # the runner's (rows, seed) -> fitness
        return np.array([accuracy(self.answers(torch.from_numpy(r)), self.problems) for r in rows])
