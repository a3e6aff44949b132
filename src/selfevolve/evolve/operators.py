"""How a child program is made from a parent: a language model's edit (asked for with the parent, a few
inspirations, their metrics and the errors of recent children), or a random edit (the baseline that
tells how much the model adds).

A model replies in one of two formats: `rewrite` (the whole evolvable code in a ```python block,
what a small model manages) or `diff` (search/replace blocks, see diffs.py). Either reply becomes a
full program or a `DiffError` whose text goes into a later prompt.
"""

from __future__ import annotations

import io
import re
import tokenize

import numpy as np

from selfevolve.evolve.diffs import END, START, DiffError, apply, regions
from selfevolve.evolve.program_db import Program

CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)
FORMATS = ("rewrite", "diff")
ASK = {"rewrite": "Write an improved version of the current code. Reply with only the new code, in one ```python "
                  "block, keeping the function's name and arguments.",
       "diff": "Improve the current code. Reply with one or more edits, each in this exact form:\n"
               "<<<<<<< SEARCH\nlines copied exactly from the current code\n=======\nthe new lines\n>>>>>>> REPLACE"}


def evolvable(program: str) -> str:
    """The code of the program's evolvable regions (what the model sees and rewrites)."""
    return "\n".join(program[a:b].strip("\n") for a, b in regions(program))


def shown(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())


def prompt(description: str, parent: Program, inspirations: list[Program], failures: list[str],
           edit_format: str) -> list[dict]:
    """The chat messages that ask for a child of `parent`."""
    parts = [f"Task: {description}. A higher score is better.",
             f"Current code ({shown(parent.metrics)}):\n```python\n{evolvable(parent.code)}\n```"]
    for p in inspirations:
        parts.append(f"Another attempt ({shown(p.metrics)}):\n```python\n{evolvable(p.code)}\n```")
    if failures:
        parts.append("Recent attempts that failed:\n" + "\n".join(f"- {f}" for f in failures))
    parts.append(ASK[edit_format])
    return [{"role": "system", "content": "You are an expert Python programmer who improves code step by step."},
            {"role": "user", "content": "\n\n".join(parts)}]


def child_program(parent: str, reply: str, edit_format: str) -> str:
    """The program a reply makes of the parent, or a DiffError saying why it makes none."""
    if edit_format == "diff":
        return apply(parent, reply)
    blocks = CODE_BLOCK.findall(reply)
    if not blocks or not blocks[0].strip():
        raise DiffError("no ```python code block in the reply")
    code = "\n".join(line for line in blocks[0].strip("\n").splitlines() if line.strip() not in (START, END))
    spans = regions(parent)
    if len(spans) != 1:
        raise DiffError("a rewrite replaces one evolvable region; this program has several (use edit_format=diff)")
    a, b = spans[0]
    return parent[:a] + "\n" + code + "\n" + parent[b:]


OPERATORS = ["+", "-", "*", "/"]


def random_edit(program: str, rng: np.random.Generator) -> str:
    """The program with one random token of its evolvable code changed: a number scaled or shifted,
    an arithmetic operator swapped, or a variable replaced by a small constant or a constant by the
    first argument. No model involved."""
    a, b = regions(program)[0]
    code = program[a:b]
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return program
    args = re.findall(r"def \w+\(([^)]*)\)", code)
    first_arg = args[0].split(",")[0].strip() if args and args[0].strip() else "1"
    body = [t for t in tokens if t.start[0] > 1 + code[:code.find("def ")].count("\n")]  # after the signature
    binary = {id(t) for before, t in zip(body, body[1:], strict=False)  # a sign, as in -5, stays
              if t.string in OPERATORS and (before.type in (tokenize.NAME, tokenize.NUMBER) or before.string in ")]")}
    called = {id(t) for t, after in zip(body, body[1:], strict=False) if after.string == "("}
    choices = [t for t in body if t.type == tokenize.NUMBER or id(t) in binary
               or (t.type == tokenize.NAME and t.string == first_arg and id(t) not in called)]
    if not choices:
        return program
    t = choices[int(rng.integers(len(choices)))]
    if t.type == tokenize.NUMBER:
        value = float(t.string)
        scaled = (value * float(rng.uniform(0.5, 1.5)) if value and rng.random() < 0.5
                  else value + float(rng.choice([-2, -1, 1, 2])))
        new = repr(round(scaled, 4))
        if rng.random() < 0.2:
            new = first_arg
    elif t.string in OPERATORS:
        new = str(rng.choice([o for o in OPERATORS if o != t.string]))
    else:
        new = f"({t.string} {rng.choice(OPERATORS)} {t.string})" if rng.random() < 0.5 else str(int(rng.integers(1, 4)))
    lines = code.splitlines(keepends=True)
    row, col = t.start[0] - 1, t.start[1]
    lines[row] = lines[row][:col] + new + lines[row][col + len(t.string):]
    return program[:a] + "".join(lines) + program[b:]
