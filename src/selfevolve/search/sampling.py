"""Choosing among several sampled answers: majority vote with its agreement share."""

from __future__ import annotations

from collections import Counter


def majority_vote(groups: list[list[str]]) -> list[tuple[str, float]]:
    """For each group of answers to one problem: the most common answer and the share that gave it.

    Ties go to the answer seen first, so a greedy answer placed first wins a tie.
    """
    out = []
    for answers in groups:
        if not answers:
            raise ValueError("majority_vote got an empty group of answers")
        counts = Counter(answers)
        best = max(counts, key=lambda a: (counts[a], -answers.index(a)))
        out.append((best, counts[best] / len(answers)))
    return out
