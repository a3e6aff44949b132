"""k sampled answers per problem, judged; and the tables of them that self-training learns from.

The sample table (one row per answer: prompt, answer, temperature, reward, correct, selected,
kept) is what a round writes to `samples/round-NNN.parquet` and what a learning step reads:
`kept` rows for fine-tuning, (selected, rejected) answers of one prompt for preference pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from selfevolve.models.policy import Policy
from selfevolve.search.sampling import NO_STOP, answer
from selfevolve.tasks.base import Problem, Task

# scores (P, k) for the answers texts[i][j] to problems[i]; `correct` is passed for the exact verifier
Judge = Callable[[list[Problem], list[list[str]], np.ndarray], np.ndarray]


def verifier_judge(problems: list[Problem], texts: list[list[str]], correct: np.ndarray) -> np.ndarray:
    """The task's exact check as a judge: 1 for a correct answer, 0 otherwise."""
    return correct.astype(np.float32)


@dataclass
class Answers:
    """k sampled answers per problem: the gold verdict (for reports, and for selection only when the
    judge is the verifier), the judge's score and the temperature each was drawn at. (P, k) arrays."""

    problems: list[Problem]
    texts: list[list[str]]
    correct: np.ndarray
    reward: np.ndarray
    temperature: np.ndarray
    ARRAYS = ("correct", "reward", "temperature")  # the (P, k) fields, in field order

    @staticmethod
    def concat(parts: list[Answers]) -> Answers:
        return Answers([p for a in parts for p in a.problems], [t for a in parts for t in a.texts],
                       *(np.concatenate([getattr(a, f) for a in parts]) for f in Answers.ARRAYS))

    def drawn_at(self, temperature: float) -> Answers:
        """The problems sampled at this temperature: what B-STaR's monitors describe is the configuration
        an iteration chose, not the probe of the others that chose it."""
        rows = np.flatnonzero(self.temperature[:, 0] == temperature)
        return Answers([self.problems[i] for i in rows], [self.texts[i] for i in rows],
                       *(getattr(self, f)[rows] for f in Answers.ARRAYS))


def sample_and_judge(policy: Policy, task: Task, problems: list[Problem], k: int, temperature: float,
                     gen: torch.Generator, judge: Judge = verifier_judge,
                     advance: Callable[[int], None] | None = None) -> Answers:
    """k answers per problem in one batched generation, each verified and scored by `judge`;
    `advance(n)` hears of every n problems answered."""
    texts, _ = answer(policy.model, policy.tok, problems, num_samples=k, temperature=temperature, generator=gen,
                      max_new=task.max_answer_tokens, advance=advance)
    rows = [texts[i * k:(i + 1) * k] for i in range(len(problems))]
    correct = np.array([[task.verify(p, t) for t in row] for p, row in zip(problems, rows, strict=True)])
    return Answers(problems, rows, correct, judge(problems, rows, correct), np.full(correct.shape, temperature))


def sample_table(answers: Answers, threshold: float, keep_top: int = 0) -> dict[str, list]:
    """Every sample with its verdict and score; `selected` is the judge's acceptance, `kept` marks the
    first copy of each distinct selected answer of a problem (what is trained on); with keep_top, only
    a problem's keep_top distinct selected answers that score highest are kept (M-STaR's re-ranking)."""
    cols: dict[str, list] = {"prompt": [], "answer": [], "temperature": [], "reward": [], "correct": [],
                             "selected": [], "kept": []}
    for p, row, ok, score, temp in zip(answers.problems, answers.texts, answers.correct, answers.reward,
                                       answers.temperature, strict=True):
        seen: set[str] = set()
        kept = []
        for t, c, s, tt in zip(row, ok, score, temp, strict=True):
            chosen = bool(s >= threshold) and t != NO_STOP
            cols["prompt"].append(p.prompt)
            cols["answer"].append(t)
            cols["temperature"].append(float(tt))
            cols["reward"].append(float(s))
            cols["correct"].append(bool(c))
            cols["selected"].append(chosen)
            kept.append(chosen and t not in seen)
            seen.add(t)
        if keep_top:
            best = sorted((i for i, k in enumerate(kept) if k), key=lambda i: -score[i])[:keep_top]
            kept = [i in best for i in range(len(kept))]
        cols["kept"] += kept
    return cols


def kept_rows(samples: dict[str, list]) -> tuple[list[str], list[str]]:
    """(prompts, answers) of the rows of a sample table marked kept."""
    rows = [i for i, k in enumerate(samples["kept"]) if k]
    return [samples["prompt"][i] for i in rows], [samples["answer"][i] for i in rows]


def preference_pairs(samples: dict[str, list]) -> tuple[list[str], list[str], list[str]]:
    """(prompt, chosen, rejected) per problem with a selected and a rejected finished answer: the
    selected one the judge scores highest, and the rejected one it scores lowest (first on ties)."""
    chosen: dict[str, tuple[float, str]] = {}
    rejected: dict[str, tuple[float, str]] = {}
    for prompt, text, score, ok in zip(samples["prompt"], samples["answer"], samples["reward"], samples["selected"],
                                       strict=True):
        if ok and (prompt not in chosen or score > chosen[prompt][0]):
            chosen[prompt] = (score, text)
        elif not ok and text != NO_STOP and (prompt not in rejected or score < rejected[prompt][0]):
            rejected[prompt] = (score, text)
    prompts = [p for p in chosen if p in rejected]
    return prompts, [chosen[p][1] for p in prompts], [rejected[p][1] for p in prompts]
