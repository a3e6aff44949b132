"""Countdown answers written after reasoning, in the five priming styles of Gandhi et al. (2025),
"Cognitive Behaviors that Enable Self-Improving Reasoners", arXiv:2503.01307.

    "3,7,25>82:" answer        #3*25+7
                 optimal       3*25=75 75+7=82 #3*25+7
                 search        7-3=4 need 78 4*25=100!=82 back 7+25=32 need 50 32*3=96!=82 back
                               3*25=75 75+7=82==82 #3*25+7
                 search-wrong  the same search, whose last step slips (75-7=82==82) to a wrong answer
                 filler        the search's length in dots, then #3*25+7

A program searches the way a person would: it tries a first combination (closest to the target
first, with some randomness), sets the subgoal of what is still missing ("need 50"), completes it
if one number does, verifies every result against the target ("!=82", "==82") and backtracks
("back") after a miss; after two misses it writes the path it finds by exhaustive search. The
answer is the text after the last "#". Each problem's trace is drawn from a generator seeded by
its prompt, so the problems a run draws are the same whatever the style.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import zlib
from fractions import Fraction

import numpy as np

from selfevolve.tasks.base import Problem
from selfevolve.tasks.countdown import CountdownTask

STYLES = ("answer", "optimal", "search", "search-wrong", "filler")
MAX_MISSES = 2
BEHAVIOURS = {"verification": re.compile(r"[!=]=\d"), "backtracking": re.compile(r"\bback\b"),
              "subgoal": re.compile(r"\bneed \d")}


def count_behaviours(text: str) -> dict[str, int]:
    """How often a completion verifies a result against the target, backtracks and sets a subgoal."""
    return {name: len(pattern.findall(text)) for name, pattern in BEHAVIOURS.items()}


def final_answer(text: str) -> str:
    """The expression after the last "#" ("" if there is none)."""
    return text.rpartition("#")[2].strip() if "#" in text else ""


def apply(a: int, op: str, b: int) -> int | None:
    """a op b, where the result stays a positive whole number (else None)."""
    value = {"+": a + b, "-": a - b, "*": a * b, "/": Fraction(a, b)}[op]
    return int(value) if value > 0 and value == int(value) else None


def render(start: int, steps: list[tuple[str, int]]) -> str:
    """A left-deep expression as text, with parentheses where + or - comes before * or /."""
    text, prec = str(start), 3
    for op, n in steps:
        new = 1 if op in "+-" else 2
        text = f"({text})" if prec < new else text
        text, prec = f"{text}{op}{n}", new
    return text


def shortest_path(numbers: list[int], target: int) -> tuple[int, list[tuple[str, int, int]]]:
    """The shortest left-deep way to the target: (start, [(op, number, value), ...])."""
    for size in range(2, len(numbers) + 1):
        for order in itertools.permutations(numbers, size):
            for ops in itertools.product("+-*/", repeat=size - 1):
                value, path = order[0], []
                for op, n in zip(ops, order[1:], strict=True):
                    value = apply(value, op, n)
                    if value is None:
                        break
                    path.append((op, n, value))
                if value == target:
                    return order[0], path
    raise ValueError(f"no left-deep solution for {numbers} > {target}")


def search(numbers: list[int], target: int, rng: np.random.Generator) -> tuple[list[str], int, list]:
    """A person-like search: (the trace's parts, the start number, the successful path)."""
    firsts = [(a, op, b, v, [n for k, n in enumerate(numbers) if k not in (i, j)])
              for (i, a), (j, b) in itertools.permutations(enumerate(numbers), 2) for op in "+-*/"
              if (i < j or op in "-/") and (v := apply(a, op, b)) is not None]  # 2+1 is 1+2: tried once
    # closer to the target first, but a person often tries another combination before the best one
    keys = np.log1p([abs(target - f[3]) for f in firsts]) + rng.normal(0, 1.5, len(firsts))
    parts, misses = [], 0
    for k in np.argsort(keys, kind="stable"):
        a, op, b, v, rest = firsts[k]
        if v == target:
            return parts + [f"{a}{op}{b}={v}=={target}"], a, [(op, b, v)]
        if misses == MAX_MISSES:
            break
        if not rest:
            parts.append(f"{a}{op}{b}={v}!={target} back")
            misses += 1
            continue
        parts.append(f"{a}{op}{b}={v} need {abs(target - v)}")
        tries = [(op2, n, w) for n in dict.fromkeys(rest) for op2 in "+-*/" if (w := apply(v, op2, n)) is not None]
        done = [t for t in tries if t[2] == target]
        if done:
            op2, n, _ = done[0]
            return parts + [f"{v}{op2}{n}={target}=={target}"], a, [(op, b, v), (op2, n, target)]
        if tries:
            op2, n, w = min(tries, key=lambda t: abs(target - t[2]))
            parts.append(f"{v}{op2}{n}={w}!={target} back")
        else:
            parts.append("back")
        misses += 1
    start, path = shortest_path(numbers, target)
    steps, value = [], start
    for op2, n, w in path:
        steps.append(f"{value}{op2}{n}={w}")
        value = w
    return parts + [" ".join(steps) + f"=={target}"], start, path


def slip(parts: list[str], start: int, path: list, target: int) -> tuple[list[str], int, list]:
    """The same trace whose last step uses a wrong operator and still claims the target."""
    op, n, _ = path[-1]
    before = path[-2][2] if len(path) > 1 else start
    wrong = next(o for o in "+-*/" if o != op and apply(before, o, n) != target)
    last = parts[-1]
    cut = last.rindex(f"{before}{op}{n}={target}")
    return parts[:-1] + [last[:cut] + f"{before}{wrong}{n}={target}=={target}"], start, [*path[:-1], (wrong, n, None)]


def trace(problem: Problem, style: str) -> str:
    """The problem's answer in a priming style (see the module docstring)."""
    numbers, target = problem.fields["numbers"], problem.fields["target"]
    if style in ("answer", "optimal"):
        start, path = shortest_path(numbers, target)
        expr = render(start, [(op, n) for op, n, _ in path])
        if style == "answer":
            return f"#{expr}"
        values = [start] + [w for _, _, w in path]
        return " ".join(f"{v}{op}{n}={w}" for v, (op, n, w) in zip(values, path, strict=False)) + f" #{expr}"
    rng = np.random.default_rng(zlib.crc32(problem.prompt.encode()))
    parts, start, path = search(numbers, target, rng)
    if style == "search-wrong":
        parts, start, path = slip(parts, start, path, target)
    body, expr = " ".join(parts), render(start, [(op, n) for op, n, _ in path])
    if style == "filler":
        return "." * len(body) + f" #{expr}"
    return f"{body} #{expr}"


class TracedCountdown(CountdownTask):
    """Countdown whose gold answers are traces in one priming style; a completion is judged by its final
    answer."""

    max_answer_tokens = 112
    max_seq_len = 144

    def __init__(self, style: str = "search") -> None:
        if style not in STYLES:
            raise ValueError(f"priming style must be one of {', '.join(STYLES)}, got {style!r}")
        super().__init__()
        self.style = style

    def make(self, numbers: list[int], target: int, solution: str = "") -> Problem:
        problem = super().make(numbers, target, solution)
        try:
            return dataclasses.replace(problem, answer=trace(problem, self.style))
        except ValueError:  # a user's problem that only a nested expression solves: judged, never trained on
            return problem

    def well_formed(self, problem: Problem, answer: str) -> bool:
        return super().well_formed(problem, final_answer(answer))

    def verify(self, problem: Problem, answer: str) -> bool:
        return super().verify(problem, final_answer(answer))
