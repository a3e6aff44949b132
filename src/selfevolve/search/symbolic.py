"""Agent symbolic learning (Zhou et al. 2024, "Symbolic Learning Enables Self-Evolving Agents"): an agent
pipeline is a chain of prompt nodes, trained like a network whose weights are words.

    forward   each node answers from its instruction, the problem and the outputs of the nodes before it
    loss      the verifier says right or wrong; for a wrong answer the model writes a language loss
    backward  from the last node to the first, the model writes each node's language gradient: how its
              instruction should change, given what it was given, what it wrote and the gradient after it
    update    the model rewrites each node's instruction from the gradients of a batch

Every prompt is a chat conversation, so any model behind the LM interface takes it. The last node's
answer format ("Answer: N") is fixed outside its instruction, so no rewrite can make answers unreadable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selfevolve.search.reasoning_modules import WORD

ANSWER_FORMAT = "End with a line 'Answer: N'."
INSTRUCTION = re.compile(r"instruction\s*:\s*(.+)", re.IGNORECASE)


@dataclass(frozen=True)
class Node:
    name: str
    instruction: str


def default_pipeline() -> list[Node]:
    return [Node("analysis", "List the numbers the problem gives and say what it asks for."),
            Node("solution", "Work out the answer from the analysis, one calculation per line.")]


def node_input(pipeline: list[Node], k: int, question: str, before: list[str]) -> str:
    """What node k is given: the problem and what the nodes before it wrote."""
    return f"Problem: {question}" + "".join(f"\n\n{pipeline[i].name.capitalize()}:\n{before[i]}" for i in range(k))


def node_prompt(pipeline: list[Node], k: int, question: str, before: list[str]) -> list[dict]:
    """Node k's conversation: its instruction (and the fixed answer format, for the last) and its input."""
    last = ANSWER_FORMAT if k == len(pipeline) - 1 else "Do not give the final answer yet."
    given = node_input(pipeline, k, question, before)
    return [{"role": "user", "content": f"{pipeline[k].instruction} {last}\n\n{given}"}]


def trajectory_text(pipeline: list[Node], outputs: list[str]) -> str:
    return "\n\n".join(f"Step '{n.name}' ({n.instruction}) wrote:\n{o}" for n, o in zip(pipeline, outputs, strict=True))


def loss_prompt(pipeline: list[Node], question: str, outputs: list[str], answer, gold) -> list[dict]:
    """The language loss of a wrong answer: what went wrong, in the model's words."""
    given = "no answer" if answer is None else f"the answer {answer:g}"
    return [{"role": "user", "content": (
        f"An agent solved a problem in steps.\n\nProblem: {question}\n\n{trajectory_text(pipeline, outputs)}\n\n"
        f"It gave {given}; the right answer is {gold:g}. In one or two sentences, say what went wrong.")}]


def gradient_prompt(node: Node, given: str, wrote: str, feedback: str) -> list[dict]:
    """A node's language gradient: how its instruction should change, from the feedback after it."""
    return [{"role": "user", "content": (
        f"A step of an agent has this instruction:\n{node.instruction}\n\nIt was given:\n{given}\n\n"
        f"It wrote:\n{wrote}\n\nFeedback on what followed:\n{feedback}\n\n"
        "In one or two sentences, say how this step's instruction should change.")}]


def update_prompt(node: Node, gradients: list[str]) -> list[dict]:
    """The optimiser: a new instruction from a batch's gradients."""
    listed = "\n".join(f"- {g}" for g in gradients)
    return [{"role": "user", "content": (
        f"A step of an agent has this instruction:\n{node.instruction}\n\nFeedback from several problems:\n{listed}"
        "\n\nWrite an improved instruction for this step: one or two sentences on one line starting with "
        "'Instruction:'.")}]


def parse_instruction(text: str, old: str) -> str:
    """The instruction a reply writes (after 'Instruction:', else its first line), or `old` when the reply
    has none worth keeping (no word, or over 300 characters)."""
    found = INSTRUCTION.search(text)
    line = (found.group(1) if found else next((x for x in text.split("\n") if x.strip()), "")).strip()
    return line if WORD.search(line) and len(line) <= 300 else old
