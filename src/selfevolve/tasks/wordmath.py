"""Word arithmetic with executable steps (`wordmath`), the task of rStar-style code-augmented reasoning.

A problem is a short story of quantities; a solution is one line per step, a short text and one
line of code that assigns a name from numbers and earlier names: a step per sentence, then the
count assigns `answer`:

    Ann has 4 bags of 6 pens. She buys 3. She gives away 5. How many pens now?
    bags: pens = 4 * 6
    buys: pens = pens + 3
    gives: pens = pens - 5
    count: answer = pens

Every sentence's step has the same form wherever it stands, so a solution one sentence longer than
any the model has seen needs no new kind of line, only one more of the same.

Step code runs only in the sandbox's restricted evaluator; a step that does not run, or names
something unknown, is invalid. Difficulty is the number of steps; numbers (2..9, and 3 more per
extra step) grow with it. The gold answer is a number, so a user's problems need only a question
and an answer.

`wordmath-hard` leaves more room between a model's best sample and its most frequent answer (what a
reward model can exploit over majority voting): numbers up to 15, sentences about someone else's
things that must not be counted (`other: theirs = 7`), and purchases of several boxes
(`buys: pens = pens + 3 * 4`), each of which has a plausible wrong reading.
"""

from __future__ import annotations

import re

import numpy as np

from selfevolve.models.tokenizer import ALPHABET
from selfevolve.sandbox import StepResult, run_step, run_steps
from selfevolve.tasks.base import Problem, commuted

NAMES = ("Ann", "Bob", "Cal", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon")
PRONOUN = {"Ann": "She", "Dee": "She", "Eve": "She", "Fay": "She", "Ivy": "She"}
ITEMS = ("pens", "cards", "eggs", "books", "coins", "shells", "stamps", "beads")
BOXES = ("bags", "boxes", "packs", "jars", "crates")
MAX_QUESTION = 400


def parse_step(line: str) -> tuple[str, str]:
    """(text, code) of one solution line; a line without "text: " is all code."""
    label, sep, code = line.partition(": ")
    return (label, code) if sep else ("", line)


def parse_solution(text: str) -> list[tuple[str, str]]:
    return [parse_step(line) for line in text.strip().split("\n")]


def execute(text: str) -> StepResult:
    """Run a solution's step codes in the restricted evaluator."""
    return run_steps([code for _, code in parse_solution(text)])


def same_number(value, gold) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value - gold) < 1e-9


class WordMathSteps:
    """Wordmath's step format for the search: a step is "text: code", its state the names defined."""

    def start(self, problem: Problem) -> dict:
        return {}

    def run(self, line: str, state: dict) -> dict:
        return run_step(parse_step(line)[1], state)

    def is_final(self, state: dict) -> bool:
        return "answer" in state

    def is_correct(self, problem: Problem, state: dict) -> bool:
        return same_number(state.get("answer"), problem.fields["value"])


class WordMathTask:
    name = "wordmath"
    max_steps = 8
    max_answer_tokens = 32 * (max_steps + 1)  # a line per sentence and the count, each under 32 characters
    max_seq_len = 512

    def __init__(self, max_number: int = 9, distractors: float = 0.0, compound: float = 0.0,
                 name: str = "wordmath") -> None:
        self.max_number, self.distractors, self.compound, self.name = max_number, distractors, compound, name

    def _story(self, steps: int, rng: np.random.Generator) -> tuple[str, list[str], int]:
        """A question, its solution lines and the answer, for `steps` steps."""
        # numbers grow by 3 per step, so every length shares most of its numbers with the shorter ones
        hi = self.max_number + 3 * (steps - 1)
        name, item, box = NAMES[rng.integers(len(NAMES))], ITEMS[rng.integers(len(ITEMS))], BOXES[rng.integers(5)]
        he = PRONOUN.get(name, "He")
        a, b = (int(x) for x in rng.integers(2, hi + 1, size=2))
        value = a * b
        sentences, lines = [f"{name} has {a} {box} of {b} {item}."], [f"{box}: {item} = {a} * {b}"]
        for _ in range(1, steps):
            # (plain wordmath draws no extra numbers: its stories stay what they were)
            if self.distractors and rng.random() < self.distractors:  # someone else's things, not to be counted
                n, other = int(rng.integers(2, hi + 1)), NAMES[rng.integers(len(NAMES))]
                sentences.append(f"{other if other != name else 'A friend'} has {n} {item}.")
                lines.append(f"other: theirs = {n}")
                continue
            kind = ["buys", "gives", "splits", "doubles"][rng.integers(4)]
            n = int(rng.integers(2, hi + 1))
            if kind == "buys" and self.compound and rng.random() < self.compound:  # several boxes: k * m
                k = int(rng.integers(2, 6))
                sentences.append(f"{he} buys {k} more {box} of {n}.")
                lines.append(f"buys: {item} = {item} + {k} * {n}")
                value += k * n
                continue
            if kind == "gives" and value - n < 1 or kind == "splits" and (value % n or value // n < 2):
                kind = "buys"  # keep every count a positive whole number
            if kind == "doubles" and value * 2 > 10**6:
                kind = "buys"
            if kind == "buys":
                sentences.append(f"{he} buys {n}.")
                lines.append(f"buys: {item} = {item} + {n}")
                value += n
            elif kind == "gives":
                sentences.append(f"{he} gives away {n}.")
                lines.append(f"gives: {item} = {item} - {n}")
                value -= n
            elif kind == "splits":
                sentences.append(f"{he} splits them into {n} equal piles and keeps one.")
                lines.append(f"splits: {item} = {item} // {n}")
                value //= n
            else:
                sentences.append(f"{he} doubles them.")
                lines.append(f"doubles: {item} = {item} * 2")
                value *= 2
        sentences.append(f"How many {item} now?")
        lines.append(f"count: answer = {item}")
        return " ".join(sentences), lines, value

    def make(self, question: str, value: int | float, solution: str = "", difficulty: int = 0) -> Problem:
        return Problem(question + "\n", solution, difficulty, {"question": question, "value": value})

    def sample(self, n: int, difficulty: int, rng: np.random.Generator, mixed: bool = False) -> list[Problem]:
        if not 1 <= difficulty <= self.max_steps:
            raise ValueError(f"wordmath difficulty (steps) must be in 1..{self.max_steps}, got {difficulty}")
        out = []
        for _ in range(n):
            steps = int(rng.integers(1, difficulty + 1)) if mixed else difficulty
            question, lines, value = self._story(steps, rng)
            out.append(self.make(question, value, "\n".join(lines), steps))
        return out

    def verify(self, problem: Problem, answer: str) -> bool:
        return self.answer_matches(problem, self.final_answer(answer))

    def paraphrase(self, problem: Problem, answer: str, rng: np.random.Generator) -> str:
        """The same solution in other words: its variable renamed (to a name it does not use) and the
        operands of + and * swapped; it computes the same steps (a judge should score it the same)."""
        names = [n for n in ("total", "tally", "amount", "stock", "pile") if not re.search(rf"\b{n}\b", answer)]
        renamed = {v: names[i % len(names)] for i, v in enumerate(dict.fromkeys(
            re.findall(r"^[^:\n]*:\s*(\w+)\s*=", answer, re.MULTILINE))) if v != "answer"}
        lines = []
        for line in answer.split("\n"):
            label, colon, step = line.partition(":")
            if colon:
                target, eq, expression = step.partition("=")
                if eq:
                    step = f"{target}= {commuted(expression.strip())}"
                step = re.sub(r"\b\w+\b", lambda m: renamed.get(m.group(0), m.group(0)), step)
            lines.append(label + colon + step)
        return "\n".join(lines)

    def final_answer(self, text: str):
        """The value a solution assigns to `answer`, None if a step does not run or none assigns it."""
        result = execute(text)
        return result.values.get("answer") if result.ok else None

    def answer_matches(self, problem: Problem, value) -> bool:
        return same_number(value, problem.fields["value"])

    def well_formed(self, problem: Problem, answer: str) -> bool:
        """Every step runs and the last one assigns `answer`."""
        result = execute(answer)
        return result.ok and "answer" in result.values

    def variants(self, problem: Problem) -> list[Problem]:
        return []

    def from_record(self, record: dict) -> Problem:
        """{"question": "...", "answer": 42}: a question in printable ASCII and a numeric answer."""
        question, value = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not question.strip() or len(question) > MAX_QUESTION:
            raise ValueError(f"field 'question' must be non-empty text of at most {MAX_QUESTION} characters")
        bad = sorted(set(question) - set(ALPHABET.replace("\n", "")))
        if bad:
            raise ValueError(f"field 'question' holds a character the model cannot read: {bad[0]!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"field 'answer' must be a number, got {value!r}")
        return self.make(question.strip(), value)
