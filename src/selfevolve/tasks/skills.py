"""Small text skills for populations of experts: one transformation of a word per skill.

A problem reads `skill:word=` and its answer is the transformed word, so one model can hold
many skills told apart by the tag, and an adapter can specialise in one. A target task is a
mixture of skills: no single expert covers it, a merge of the right experts can.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from selfevolve.tasks.base import Problem

LOWER = string.ascii_lowercase


def _shift(word: str) -> str:
    return "".join(LOWER[(LOWER.index(c) + 1) % 26] for c in word)


def _swap(word: str) -> str:
    pairs = [word[i : i + 2][::-1] for i in range(0, len(word), 2)]
    return "".join(pairs)


SKILLS = {
    "copy": lambda w: w,
    "reverse": lambda w: w[::-1],
    "upper": str.upper,
    "shift": _shift,  # each letter to the next one (z -> a)
    "rotate": lambda w: w[1:] + w[:1],
    "swap": _swap,  # swap neighbouring letters pairwise
    "sort": lambda w: "".join(sorted(w)),
    "title": str.capitalize,
    "double": lambda w: w + w,
    "last": lambda w: w[-1],
}


def check_skills(names: tuple[str, ...], what: str) -> None:
    unknown = [n for n in names if n not in SKILLS]
    if unknown or not names:
        raise ValueError(f"{what} must name skills from {', '.join(SKILLS)}; got {', '.join(names) or 'none'}")


def skill_problems(skills: tuple[str, ...], n: int, rng: np.random.Generator, min_len: int = 3,
                   max_len: int = 6) -> list[Problem]:
    """n problems, skills in turn (an even mixture), lowercase words of min_len..max_len letters."""
    check_skills(skills, "skills")
    letters = np.array(list(LOWER))
    lengths = rng.integers(min_len, max_len + 1, n)
    out = []
    for i, length in enumerate(lengths):
        skill = skills[i % len(skills)]
        word = "".join(rng.choice(letters, length))
        out.append(Problem(f"{skill}:{word}=", SKILLS[skill](word), int(length), {"skill": skill, "word": word}))
    return out


def with_examples(problems: list[Problem], shots: int, rng: np.random.Generator,
                  render: Callable[[list[dict]], str]) -> list[Problem]:
    """The problems with `shots` solved problems of the same skill (fresh words) before each, as earlier
    turns of a chat that `render` (a chat template) writes out. A pretrained model then partly does skills
    it was never trained on, so an expert sharpens a skill instead of learning a new format from nothing."""
    if not shots:
        return problems
    out = []
    for p in problems:  # an empty system turn: a template's default one (SmolLM2's) would double the prompt
        skill, turns = p.fields["skill"], [{"role": "system", "content": ""}]
        for solved in skill_problems((skill,), shots, rng):
            turns += [{"role": "user", "content": f"{skill}: {solved.fields['word']}"},
                      {"role": "assistant", "content": solved.answer}]
        prompt = render([*turns, {"role": "user", "content": f"{skill}: {p.fields['word']}"}])
        out.append(replace(p, prompt=prompt))
    return out
