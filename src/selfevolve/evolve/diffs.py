"""Edits a language model proposes to a program: search/replace blocks inside the evolvable regions.

    # EVOLVE-BLOCK-START
    def heuristic(x):
        return x * 2
    # EVOLVE-BLOCK-END

An edit is one or more blocks

    <<<<<<< SEARCH
        return x * 2
    =======
        return x * 3 + 1
    >>>>>>> REPLACE

Each SEARCH text must occur exactly once in the program, inside an evolvable region, and its
replacement must leave the region markers as they were. Anything else is a `DiffError` whose
message says what went wrong, so that it can be shown to the model with the next request.
"""

from __future__ import annotations

import re

START, END = "# EVOLVE-BLOCK-START", "# EVOLVE-BLOCK-END"
BLOCK = re.compile(r"<{7} SEARCH\n(.*?)\n?={7}\n(.*?)\n?>{7} REPLACE", re.DOTALL)


class DiffError(ValueError):
    """An edit that cannot be applied; the message is written for the model that proposed it."""


def regions(program: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the evolvable regions (between the marker lines)."""
    spans, pos = [], 0
    while (a := program.find(START, pos)) >= 0:
        b = program.find(END, a)
        if b < 0:
            raise DiffError(f"an {START} has no {END} after it")
        spans.append((a + len(START), b))
        pos = b + len(END)
    if program.find(END, pos) >= 0:
        raise DiffError(f"an {END} has no {START} before it")
    if not spans:
        raise DiffError(f"the program has no evolvable region ({START} ... {END})")
    return spans


def parse(edit: str) -> list[tuple[str, str]]:
    """The (search, replace) pairs of an edit."""
    blocks = BLOCK.findall(edit)
    if not blocks:
        raise DiffError("no <<<<<<< SEARCH / ======= / >>>>>>> REPLACE block found in the edit")
    return blocks


def apply(program: str, edit: str) -> str:
    """The program with every block of the edit applied in order, or a DiffError."""
    for n, (search, replace) in enumerate(parse(edit), start=1):
        if not search.strip():
            raise DiffError(f"block {n}: the SEARCH text is empty")
        if START in replace or END in replace or START in search or END in search:
            raise DiffError(f"block {n}: an edit may not add, remove or move the evolvable-region markers")
        count = program.count(search)
        if count != 1:
            raise DiffError(f"block {n}: the SEARCH text occurs {count} times in the program; it must occur exactly "
                            "once (copy it exactly, with more context if it repeats)")
        at = program.index(search)
        if not any(a <= at and at + len(search) <= b for a, b in regions(program)):
            raise DiffError(f"block {n}: the SEARCH text lies outside the evolvable regions")
        program = program[:at] + replace + program[at + len(search):]
    return program
