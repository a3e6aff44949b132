"""Reasoning modules and plans written by a language model (SELF-DISCOVER, Auto-Evolve): the prompts,
and the parsers of what comes back.

SELF-DISCOVER (Zhou et al. 2024) gives the model a fixed list of seed reasoning modules ("break the
problem into steps", ...) and has it compose a plan from them before it solves a problem. Auto-Evolve
(Aswani et al. 2024) has the model write the modules itself from a few solved examples of the task
family, and refine each plan before solving. Every prompt here is a chat conversation, so any model
behind the LM interface (ours, SmolLM2, an OpenAI-compatible server, a scripted one) takes it.
"""

from __future__ import annotations

import re

# a fixed module set in the style of SELF-DISCOVER's seed modules, for problems told in words
SEED_MODULES = (
    "Identify the quantities the problem gives and what it asks for.",
    "Break the problem into steps and solve them one at a time.",
    "Track how each quantity changes after every sentence.",
    "Ignore information that does not change the answer.",
    "Write the calculation of each step before its result.",
    "Check the result by working backwards from the answer.",
)
ITEM = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*(.+?)\s*$")
ANSWER = re.compile(r"answer\s*(?:is)?\s*[:=]?\s*\**\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
WORD = re.compile(r"[^\W\d_]{2,}")


def modules_prompt(examples: list[tuple[str, str]], n: int) -> list[dict]:
    """Ask for `n` reasoning modules fitted to the task family the solved `examples` (question, answer) show."""
    shown = "\n\n".join(f"Problem: {q}\nAnswer: {a}" for q, a in examples)
    return [{"role": "user", "content": (
        f"Here are solved problems of one kind.\n\n{shown}\n\nWrite {n} reasoning modules for solving problems "
        "of this kind: short general instructions, one per line, each line starting with '- '. Do not solve "
        "anything.")}]


def _listed(modules: list[str]) -> str:
    return "\n".join(f"- {m}" for m in modules) or "- (none)"


def plan_prompt(question: str, modules: list[str]) -> list[dict]:
    """Ask for a plan for one problem built from the modules (SELF-DISCOVER's select, adapt, implement)."""
    return [{"role": "user", "content": (
        f"Reasoning modules:\n{_listed(modules)}\n\nUsing the modules that help, write a plan for the problem below: "
        f"numbered steps, each saying what to work out. Do not solve it.\n\nProblem: {question}")}]


def refine_prompt(question: str, modules: list[str], plan: str) -> list[dict]:
    """Ask the model to improve its own plan (Auto-Evolve's iterative refinement)."""
    return [{"role": "user", "content": (
        f"Reasoning modules:\n{_listed(modules)}\n\nProblem: {question}\n\nPlan:\n{plan}\n\nImprove this plan: "
        "add a step that is missing, make a vague step exact, drop a step that does not help. Write the whole "
        "improved plan as numbered steps. Do not solve the problem.")}]


def solve_prompt(question: str, plan: str | None) -> list[dict]:
    """Ask for the solution, following a plan, or step by step without one (the chain-of-thought baseline)."""
    how = f"Follow this plan:\n{plan}\n\n" if plan else "Think step by step.\n\n"
    return [{"role": "user", "content": f"Problem: {question}\n\n{how}End with a line 'Answer: N'."}]


def parse_modules(text: str, n: int) -> list[str]:
    """The first `n` distinct list items of a reply ('- ', '* ', '1. ' lines of 3-200 characters). A module
    is an instruction, so an item without a word ('2. 3. ...', '- 4 + 5') is not one."""
    out: list[str] = []
    for line in text.split("\n"):
        m = ITEM.match(line)
        if (m and 3 <= len(m.group(1)) <= 200 and WORD.search(m.group(1))
                and m.group(1).lower() not in {x.lower() for x in out}):
            out.append(m.group(1))
    return out[:n]


def stated_answer(text: str) -> float | None:
    """The number a reply gives as its answer: after its last 'Answer:', else its last number; None if
    it holds no number."""
    marked = ANSWER.findall(text)
    found = marked or NUMBER.findall(text)
    return float(found[-1]) if found else None
