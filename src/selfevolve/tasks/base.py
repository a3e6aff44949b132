"""The Task protocol: where problems come from and how an answer is checked."""

from __future__ import annotations

import ast
import json
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from selfevolve.rng import rngs


@dataclass(frozen=True)
class Problem:
    prompt: str  # what the model sees
    answer: str  # the gold answer text (what a correct model writes before its stop token)
    difficulty: int
    fields: dict = field(default_factory=dict, compare=False)  # task-specific, e.g. operands


class Task(Protocol):
    name: str
    max_answer_tokens: int  # generated tokens before an answer counts as unfinished
    max_seq_len: int  # prompt + answer tokens a model for this task must handle

    def sample(self, n: int, difficulty: int, rng: np.random.Generator, mixed: bool = False) -> list[Problem]:
        """n problems at `difficulty`; mixed=True also draws easier parts (for training data)."""

    def verify(self, problem: Problem, answer: str) -> bool:
        """Ground truth: is `answer` correct for `problem`?"""

    def well_formed(self, problem: Problem, answer: str) -> bool:
        """A check that needs no label (e.g. the answer has a possible length)."""

    def variants(self, problem: Problem) -> list[Problem]:
        """Other problems that must have the same answer (e.g. b+a for a+b), for agreement filters."""

    def from_record(self, record: dict) -> Problem:
        """A problem from a user's JSON object (the task's fields); ValueError names what is wrong."""


class HeldOutSplit:
    """Test problems behind an accessor that allows one read: nothing can be selected on them."""

    def __init__(self, problems: list[Problem]) -> None:
        self._problems, self.reads = problems, 0

    def read(self) -> list[Problem]:
        if self.reads:
            raise RuntimeError("the test split was already read; every choice must be made on dev")
        self.reads += 1
        return self._problems


def sample_unseen(task: Task, n: int, difficulty: int, rng: np.random.Generator, seen: Collection[str],
                  mixed: bool = False) -> tuple[list[Problem], int]:
    """n problems none of whose prompts is in `seen` (held-out means unseen): refused draws are drawn
    again, for up to 20 rounds, so a small problem space that runs out gives fewer. Returns the
    problems and how many draws were refused."""
    out: list[Problem] = []
    refused = 0
    for _ in range(20):
        batch = task.sample(n - len(out), difficulty, rng, mixed)
        fresh = [p for p in batch if p.prompt not in seen]
        refused += len(batch) - len(fresh)
        out += fresh
        if len(out) == n:
            break
    return out, refused


SPLITS = ("test", "dev")


def held_out_split(task: Task, n: int, difficulty: int, seed: int, split: str, seen: Collection[str],
                   *stream: int | str, mixed: bool = False) -> tuple[list[Problem], int]:
    """n held-out problems of the `split`, none of them in `seen`: test problems from their own
    stream (seed, 10_000, *stream), the same every round; dev problems drawn apart from those test
    problems too, so settings chosen on dev never touch test. Returns them and the refused draws."""
    problems, refused = sample_unseen(task, n, difficulty, rngs(seed, 10_000, *stream).np, seen, mixed)
    if split == "dev" and problems:
        problems, refused = sample_unseen(task, n, difficulty, rngs(seed, "dev", *stream).np,
                                          {*seen, *(p.prompt for p in problems)}, mixed)
    return problems, refused


def unseen(problems: list[Problem], seen: Collection[str]) -> tuple[list[Problem], int]:
    """The problems whose prompts are not in `seen`, and how many were dropped."""
    kept = [p for p in problems if p.prompt not in seen]
    return kept, len(problems) - len(kept)


def one_digit_off(text: str, rng: np.random.Generator) -> str:
    """The text with one of its digits changed (a wrong first answer for a model to learn to fix)."""
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    if not digits:
        return text + "0"
    i = digits[rng.integers(len(digits))]
    return text[:i] + str((int(text[i]) + int(rng.integers(1, 10))) % 10) + text[i + 1:]


def first_digit_up(text: str) -> str:
    """The text with its first digit one up (9 -> 0): one mistake, made the same way every time, so
    a model taught it makes it on problems it has never seen."""
    i = next((i for i, c in enumerate(text) if c.isdigit()), None)
    return text + "0" if i is None else text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:]


def first_attempts(problems: list[Problem], rng: np.random.Generator) -> list[str]:
    """First answers for a model to learn to judge or fix: the right one for every other problem, one
    digit off for the rest."""
    return [p.answer if i % 2 == 0 else one_digit_off(p.answer, rng) for i, p in enumerate(problems)]


def whole_number(record: dict, key: str, minimum: int = 0) -> int:
    """record[key] as an int >= minimum, or a ValueError that names the field."""
    value = record.get(key)
    if type(value) is not int or value < minimum:
        raise ValueError(f"field {key!r} must be a whole number >= {minimum}, got {value!r}")
    return value


def read_problems(path: str | Path, task: Task) -> list[Problem]:
    """Problems from a JSONL file, one JSON object per line; an error names the file and the line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ValueError(f"problem file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"problem file {path} is unreadable ({err})") from None
    problems = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: expected a JSON object, got {line.strip()[:40]!r}")
        try:
            problems.append(task.from_record(record))
        except ValueError as err:
            raise ValueError(f"{path}, line {number}: {err}") from None
    if not problems:
        raise ValueError(f"problem file {path} holds no problems")
    return problems


def commuted(expression: str) -> str:
    """The expression with the operands of every + and * swapped: the same value in other words (a
    paraphrase of an answer, for judging judges). Text that does not parse comes back as it was."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return expression
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            node.left, node.right = node.right, node.left
    out = ast.unparse(tree)
    return out if " " in expression else out.replace(" ", "")
