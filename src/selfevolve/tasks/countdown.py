"""Countdown: combine some of the given numbers with + - * / to hit the target.

"3,7,25>78:" -> "3*25+7" (each number at most once). The generator builds every target from a
random expression over the numbers, so every problem is solvable. Difficulty is how many numbers
are given. Answers are checked by parsing them into a syntax tree that may hold only integers,
the four operators and parentheses; model-written text is never executed.
"""

from __future__ import annotations

import ast
import warnings
from collections import Counter
from fractions import Fraction

import numpy as np

from selfevolve.tasks.base import Problem, commuted, whole_number

OPS = {ast.Add: ("+", 1), ast.Sub: ("-", 1), ast.Mult: ("*", 2), ast.Div: ("/", 2)}


def parse(answer: str) -> tuple[Fraction, list[int]] | None:
    """Value and the numbers used of an arithmetic expression, or None if it is anything else."""
    if len(answer) > 64:
        return None
    try:
        with warnings.catch_warnings():  # "3(4)" warns of a call; a model's answer is data, not our code
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(answer, mode="eval").body
    except (SyntaxError, ValueError):
        return None
    used: list[int] = []

    def value(node) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0:
            used.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in OPS:
            a, b = value(node.left), value(node.right)
            if isinstance(node.op, ast.Div):
                if b == 0:
                    raise ZeroDivisionError
                return a / b
            return a + b if isinstance(node.op, ast.Add) else a - b if isinstance(node.op, ast.Sub) else a * b
        raise ValueError("not allowed")

    try:
        return value(tree), used
    except (ValueError, ZeroDivisionError, RecursionError):
        return None


class CountdownTask:
    name = "countdown"
    max_answer_tokens = 24  # generated tokens before an answer counts as unfinished
    max_seq_len = 128

    def __init__(self, max_number: int = 10, max_target: int = 100) -> None:
        self.max_number, self.max_target = max_number, max_target

    def make(self, numbers: list[int], target: int, solution: str = "") -> Problem:
        prompt = f"{','.join(map(str, numbers))}>{target}:"
        return Problem(prompt, solution, len(numbers), {"numbers": list(numbers), "target": target})

    def _expression(self, numbers: list[int], rng: np.random.Generator) -> tuple[int, str] | None:
        """A random left-deep expression over `numbers` whose every step stays a positive integer."""
        value, text, prec = numbers[0], str(numbers[0]), 3
        for n in numbers[1:]:
            op = "+-*/"[int(rng.integers(4))]
            if op == "-" and value - n <= 0 or op == "/" and value % n:
                return None
            value = {"+": value + n, "-": value - n, "*": value * n, "/": value // n}[op]
            new_prec = 1 if op in "+-" else 2
            text = f"({text})" if prec < new_prec else text
            text, prec = f"{text}{op}{n}", new_prec
        return value, text

    def sample(self, n: int, difficulty: int, rng: np.random.Generator, mixed: bool = False) -> list[Problem]:
        if difficulty < 2:
            raise ValueError(f"countdown difficulty (how many numbers) must be >= 2, got {difficulty}")
        out = []
        while len(out) < n:
            count = int(rng.integers(2, difficulty + 1)) if mixed else difficulty
            numbers = rng.integers(1, self.max_number + 1, size=count).tolist()
            used = int(rng.integers(2, count + 1))
            made = self._expression([numbers[i] for i in rng.permutation(count)[:used]], rng)
            if made and 1 <= made[0] <= self.max_target:
                out.append(self.make(numbers, made[0], made[1]))
        return out

    def well_formed(self, problem: Problem, answer: str) -> bool:
        """An arithmetic expression that uses only the given numbers, each at most once."""
        parsed = parse(answer)
        return parsed is not None and not Counter(parsed[1]) - Counter(problem.fields["numbers"])

    def verify(self, problem: Problem, answer: str) -> bool:
        parsed = parse(answer)
        return (parsed is not None and parsed[0] == problem.fields["target"]
                and not Counter(parsed[1]) - Counter(problem.fields["numbers"]))

    def paraphrase(self, problem: Problem, answer: str, rng: np.random.Generator) -> str:
        """The same expression with + and * operands swapped (a judge should score it the same)."""
        return commuted(answer)

    def feedback(self, problem: Problem, answer: str) -> str:
        """What a teacher would say about an answer, without giving the solution away (SELF's critiques)."""
        parsed = parse(answer)
        if parsed is None:
            return "not an expression"
        value, used = parsed
        numbers = problem.fields["numbers"]
        extra = Counter(used) - Counter(numbers)
        if extra:
            n = min(extra)
            return f"uses {n} too often" if n in numbers else f"uses {n}, not given"
        if value != problem.fields["target"]:
            return f"gives {value}, not {problem.fields['target']}"
        return "correct"

    def variants(self, problem: Problem) -> list[Problem]:
        return []

    def from_record(self, record: dict) -> Problem:
        """{"numbers": [3, 7, 25, 50], "target": 225}: 2-6 positive numbers and a whole-number target."""
        numbers = record.get("numbers")
        if (not isinstance(numbers, list) or not 2 <= len(numbers) <= 6
                or any(type(n) is not int or n < 1 for n in numbers)):
            raise ValueError(f"field 'numbers' must be a list of 2 to 6 positive whole numbers, got {numbers!r}")
        return self.make(numbers, whole_number(record, "target"))
