"""Best-of-N: n sampled solutions per problem, each run once, and the ways to choose one of them
(majority vote over final answers, or the highest score of a reward model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from selfevolve.models.policy import Policy
from selfevolve.search.sampling import answer, majority_vote
from selfevolve.tasks.base import Problem
from selfevolve.train.sft import Examples


class FinalAnswerTask(Protocol):
    """A task whose solutions end in a value that can be compared and voted on."""

    max_answer_tokens: int

    def final_answer(self, text: str) -> Any:
        """The value a solution ends with, None if it gives none (or does not run)."""

    def answer_matches(self, problem: Problem, value: Any) -> bool:
        """Is `value` the problem's gold answer?"""


@dataclass
class Solutions:
    """n sampled solutions per problem, each run once: texts, final values (None: no answer),
    verdicts and generated tokens, all (problems, n)."""

    texts: list[list[str]]
    values: list[list]
    correct: np.ndarray
    length: np.ndarray

    @classmethod
    def sample(cls, policy: Policy, task: FinalAnswerTask, problems: list[Problem], n: int, temperature: float,
               gen: torch.Generator, advance=None) -> Solutions:
        flat, _ = answer(policy.model, policy.tok, problems, num_samples=n, temperature=temperature, generator=gen,
                         max_new=task.max_answer_tokens, advance=advance)
        texts = [flat[i * n:(i + 1) * n] for i in range(len(problems))]
        values = [[task.final_answer(t) for t in row] for row in texts]
        correct = np.array([[task.answer_matches(p, v) for v in row] for p, row in zip(problems, values, strict=True)])
        return cls(texts, values, correct, np.array([[len(policy.tok.encode(t)) + 1 for t in row] for row in texts]))

    def choose(self, strategy: str, n: int, scores: dict[str, np.ndarray]) -> np.ndarray:
        """Which of its first n solutions each problem's strategy picks: the first holding the majority
        value, or the reward model's highest-scored solution among those that gave an answer."""
        if strategy == "majority":
            return np.array([majority_index(row[:n]) for row in self.values])
        ran = np.array([[v is not None for v in row[:n]] for row in self.values])
        return np.where(ran, scores[strategy][:, :n], -np.inf).argmax(1)

    def accuracy(self, picked: np.ndarray) -> float:
        return float(self.correct[np.arange(len(picked)), picked].mean())


def majority_index(values: list) -> int:
    """The first solution holding the most common final value among those that gave one (0 if none)."""
    ran = [v for v in values if v is not None]
    return values.index(majority_vote([ran])[0][0]) if ran else 0


def score_solutions(rms: dict, tok, problems: list[Problem], solutions: Solutions) -> dict[str, np.ndarray]:
    """Each reward model's score of every solution, (problems, n). A confident policy samples the same
    solution many times (about 500 distinct of 3200 at N = 64), and each distinct one is scored once."""
    n = solutions.correct.shape[1]
    pairs = [(p.prompt, t) for p, row in zip(problems, solutions.texts, strict=True) for t in row]
    distinct = list(dict.fromkeys(pairs))
    where = {pair: i for i, pair in enumerate(distinct)}
    back = np.array([where[pair] for pair in pairs])
    examples = Examples.encode(tok, [p for p, _ in distinct], [t for _, t in distinct])
    return {name: rm.score(examples)[back].reshape(len(problems), n) for name, rm in rms.items()}


def compare_strategies(policy: Policy, task: FinalAnswerTask, problems: list[Problem], ns: list[int],
                       temperature: float, gen: torch.Generator, rms: dict, advance=None) -> tuple[dict, dict, list]:
    """Held-out accuracy and mean generated tokens per problem, {strategy: {N: value}}, of greedy
    decoding and of best-of-N by majority vote and by each reward model in `rms`, every strategy
    choosing among the same max(ns) sampled solutions, and `pass` (some one of the first N is right:
    the ceiling any chooser has, so pass - majority is the room a reward model can win); and each
    problem's greedy verdict."""
    greedy, _ = answer(policy.model, policy.tok, problems, max_new=task.max_answer_tokens, advance=advance)
    solutions = Solutions.sample(policy, task, problems, max(ns), temperature, gen, advance)
    scores = score_solutions(rms, policy.tok, problems, solutions)
    right = [task.answer_matches(p, task.final_answer(t)) for p, t in zip(problems, greedy, strict=True)]
    acc = {"greedy": {"1": float(np.mean(right))}}
    tokens = {"greedy": {"1": float(np.mean([len(policy.tok.encode(t)) + 1 for t in greedy]))}}
    for name in ("majority", *scores):
        acc[name] = {str(n): solutions.accuracy(solutions.choose(name, n, scores)) for n in ns}
        tokens[name] = {str(n): float(solutions.length[:, :n].sum(1).mean()) for n in ns}
    acc["pass"] = {str(n): float(solutions.correct[:, :n].any(1).mean()) for n in ns}
    return acc, tokens, right


def answer_by(strategy: str, n: int, policy: Policy, task: FinalAnswerTask, problems: list[Problem],
              temperature: float, gen: torch.Generator, rm=None, advance=None) -> tuple[list[str], list[int]]:
    """Each problem's answer by one strategy (greedy; majority or a reward model `rm` over n samples),
    and the tokens generated for it."""
    if strategy == "greedy":
        texts, _ = answer(policy.model, policy.tok, problems, max_new=task.max_answer_tokens, advance=advance)
        return texts, [len(policy.tok.encode(t)) + 1 for t in texts]
    solutions = Solutions.sample(policy, task, problems, n, temperature, gen, advance)
    scores = score_solutions({strategy: rm} if rm is not None else {}, policy.tok, problems, solutions)
    picked = solutions.choose(strategy, n, scores)
    return ([row[i] for row, i in zip(solutions.texts, picked, strict=True)],
            [int(u) for u in solutions.length.sum(1)])
