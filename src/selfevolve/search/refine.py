"""Self-feedback and self-refinement (SELF, Lu et al. 2023): the model criticises its own answer in
words and, unless it calls it correct, writes another.

    critique   prompt + answer + "|check:"                       -> "correct", "gives 96, not 100", ...
    refine     prompt + answer + "|check:" + feedback + "|fix:"  -> a new answer

The meta-skills are learned from the task's own feedback on answers (`task.feedback`: what a
teacher would say without giving the solution away), a stand-in for the strong model that wrote
the paper's feedback.
"""

from __future__ import annotations

import numpy as np

from selfevolve.models.policy import Policy
from selfevolve.search.sampling import ask
from selfevolve.tasks.base import Problem, Task, first_attempts
from selfevolve.train.sft import Examples

CHECK, FIX, CORRECT = "|check:", "|fix:", "correct"


def critique_prompt(prompt: str, text: str) -> str:
    return f"{prompt}{text}{CHECK}"


def refine_prompt(prompt: str, text: str, feedback: str) -> str:
    return f"{prompt}{text}{CHECK}{feedback}{FIX}"


def meta_skill_examples(tok, task: Task, problems: list[Problem], rng: np.random.Generator) -> Examples:
    """Each problem's answer; a critique, by the task's feedback, of a first answer that is the right one
    (every other problem) or one digit off; and the refinement of that first answer to the right one."""
    firsts = first_attempts(problems, rng)
    feedback = [task.feedback(p, f) for p, f in zip(problems, firsts, strict=True)]
    prompts = ([p.prompt for p in problems] + [critique_prompt(p.prompt, f) for p, f in zip(problems, firsts,
                                                                                               strict=True)]
               + [refine_prompt(p.prompt, f, b) for p, f, b in zip(problems, firsts, feedback, strict=True)])
    return Examples.encode(tok, prompts, [p.answer for p in problems] + feedback + [p.answer for p in problems])


def self_refine(policy: Policy, task: Task, problems: list[Problem], texts: list[str]
                ) -> tuple[list[str], list[str], list[bool]]:
    """Critique each answer; refine those the model does not call correct and critique the new answer.
    Returns the first critiques, the final answers and whether the model calls each final answer correct."""
    n = task.max_answer_tokens
    feedback = ask(policy, problems, [critique_prompt(p.prompt, t) for p, t in zip(problems, texts, strict=True)], n)
    redo = [i for i, f in enumerate(feedback) if f != CORRECT]
    finals, judged = list(texts), [f == CORRECT for f in feedback]
    new = ask(policy, [problems[i] for i in redo],
              [refine_prompt(problems[i].prompt, texts[i], feedback[i]) for i in redo], n)
    again = ask(policy, [problems[i] for i in redo],
                [critique_prompt(problems[i].prompt, t) for i, t in zip(redo, new, strict=True)], n)
    for i, t, f in zip(redo, new, again, strict=True):
        finals[i], judged[i] = t, f == CORRECT
    return feedback, finals, judged
