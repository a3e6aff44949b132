"""Reversed addition and multiplication (least significant digit first).

Writing numbers reversed lets the model emit the answer in the order carries flow, the
format Lee et al. (2025) use for length generalisation: 123 + 45 = 168 is "321+54=" -> "861".
Difficulty is the number of digits of an operand.
"""

from __future__ import annotations

import numpy as np

from selfevolve.tasks.base import Problem, whole_number


def random_numbers(n: int, digits: np.ndarray, rng: np.random.Generator) -> list[int]:
    """n random integers, the i-th with exactly digits[i] digits (leading digit nonzero)."""
    width = int(digits.max())
    d = rng.integers(0, 10, size=(n, width))
    d[np.arange(n), width - digits] = rng.integers(1, 10, size=n)  # leading digit
    d[np.arange(width)[None, :] < (width - digits)[:, None]] = 0
    d[digits == 1, -1] = rng.integers(0, 10, size=int((digits == 1).sum()))  # 1 digit: 0..9
    return [int("".join(map(str, row))) for row in d]


class ArithmeticTask:
    """`a OP b` for non-negative integers, operands and answer written reversed."""

    max_answer_tokens = 24  # for the STaR family; length-gen sizes its answers by the digits asked
    max_seq_len = 128

    def __init__(self, name: str, op: str) -> None:
        self.name, self.op = name, op

    def _apply(self, a: int, b: int) -> int:
        return a + b if self.op == "+" else a * b

    def make(self, a: int, b: int, difficulty: int) -> Problem:
        prompt = f"{str(a)[::-1]}{self.op}{str(b)[::-1]}="
        return Problem(prompt, str(self._apply(a, b))[::-1], difficulty, {"a": a, "b": b})

    def sample(self, n: int, difficulty: int, rng: np.random.Generator, mixed: bool = False) -> list[Problem]:
        if difficulty < 1:
            raise ValueError(f"difficulty (digits) must be >= 1, got {difficulty}")
        len_a = np.full(n, difficulty)
        len_b = rng.integers(1, difficulty + 1, size=n) if mixed else np.full(n, difficulty)
        swap = rng.random(n) < 0.5 if mixed else np.zeros(n, dtype=bool)
        len_a, len_b = np.where(swap, len_b, len_a), np.where(swap, len_a, len_b)
        return [self.make(a, b, difficulty)
                for a, b in zip(random_numbers(n, len_a, rng), random_numbers(n, len_b, rng), strict=True)]

    def verify(self, problem: Problem, answer: str) -> bool:
        return answer == problem.answer

    def feedback(self, problem: Problem, answer: str) -> str:
        """What a teacher would say about an answer, without giving it away (SELF's critiques): the first
        wrong digit, in the order the answer is written."""
        if not answer.isdigit():
            return "not a number"
        for i, (a, b) in enumerate(zip(answer, problem.answer, strict=False)):
            if a != b:
                return f"digit {i + 1} is wrong"
        if len(answer) != len(problem.answer):
            return "too short" if len(answer) < len(problem.answer) else "too long"
        return "correct"

    def well_formed(self, problem: Problem, answer: str) -> bool:
        la, lb = len(str(problem.fields["a"])), len(str(problem.fields["b"]))
        if not answer.isdigit() or (len(answer) > 1 and answer[-1] == "0"):
            return False
        if self.op == "+":
            return max(la, lb) <= len(answer) <= max(la, lb) + 1
        zero = problem.fields["a"] == 0 or problem.fields["b"] == 0
        return answer == "0" if zero else la + lb - 1 <= len(answer) <= la + lb

    def variants(self, problem: Problem) -> list[Problem]:
        return [self.make(problem.fields["b"], problem.fields["a"], problem.difficulty)]

    def from_record(self, record: dict) -> Problem:
        """{"a": 123, "b": 45}: two non-negative whole numbers."""
        a, b = whole_number(record, "a"), whole_number(record, "b")
        return self.make(a, b, max(len(str(a)), len(str(b))))

    def split(self, problem: Problem, k: int) -> tuple[Problem, Problem]:
        """The problem on the k lowest digits, and on the digits above them.

        (a + b) mod 10^k and (a * b) mod 10^k depend only on a and b mod 10^k, so a model's
        answer to a long problem must start (reversed) like its answer to the low part. For
        addition with no carry out of the low part, it must also end like its answer to the
        high part. Both parts are shorter, easier problems.
        """
        m = 10**k
        a, b = problem.fields["a"], problem.fields["b"]
        return self.make(a % m, b % m, k), self.make(a // m, b // m, max(1, problem.difficulty - k))

    def agrees_with_split(self, answer: str, low: str, high: str, k: int) -> bool:
        """Is a reversed answer consistent with the answers to the split problem (see `split`)?"""
        if answer[:k].ljust(k, "0") != low[:k].ljust(k, "0"):
            return False
        if self.op != "+" or len(low) > k:  # a carry crosses the cut: the high part says nothing exact
            return True
        return answer[k:] == ("" if high == "0" else high)
