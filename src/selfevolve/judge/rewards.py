"""Reward functions for policy-gradient training, with TRL's signature so users can bring theirs:

    def reward(prompts: list[str], completions: list[str], **columns) -> list[float]

`columns` holds, per completion, the problem (`problem`) and each of the task's fields (countdown:
`numbers`, `target`; wordmath: `question`, `value`; ...), as TRL passes a dataset's columns. Named
rewards combine with weights: `rewards=correct,format` with `reward_weights=1,0.1`, and a user's own
function by `module:function` (imported; the module must be on the Python path).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from selfevolve.tasks.base import Task

RewardFn = Callable[..., list[float]]


def correct_reward(task: Task) -> RewardFn:
    """1 for a completion the task's verifier accepts, else 0."""
    def correct(prompts: list[str], completions: list[str], problem: list, **_) -> list[float]:
        return [float(task.verify(p, c)) for p, c in zip(problem, completions, strict=True)]
    return correct


def format_reward(task: Task) -> RewardFn:
    """1 for a completion of the task's form (its label-free check: a possible length, steps that run, ...)."""
    def well_formed(prompts: list[str], completions: list[str], problem: list, **_) -> list[float]:
        return [float(task.well_formed(p, c)) for p, c in zip(problem, completions, strict=True)]
    return well_formed


def score_reward(task: Task) -> RewardFn:
    """The task's graded score of a completion (translation: chrF of the final answer, in [0, 1])."""
    if not hasattr(task, "score"):
        raise ValueError(f"reward score: task {task.name} has no graded score (only translation has one)")

    def score(prompts: list[str], completions: list[str], problem: list, **_) -> list[float]:
        return [task.score(p, c) for p, c in zip(problem, completions, strict=True)]
    return score


def length_penalty(max_chars: int) -> RewardFn:
    """-(characters beyond max_chars) / max_chars: 0 for completions that are short enough."""
    def penalty(prompts: list[str], completions: list[str], **_) -> list[float]:
        return [-max(0, len(c) - max_chars) / max_chars for c in completions]
    return penalty


def combine(parts: list[tuple[RewardFn, float]]) -> RewardFn:
    """The weighted sum of several reward functions."""
    def total(prompts: list[str], completions: list[str], **columns) -> list[float]:
        out = [0.0] * len(completions)
        for fn, weight in parts:
            values = fn(prompts, completions, **columns)
            if len(values) != len(completions):
                raise ValueError(f"reward {getattr(fn, '__name__', fn)} gave {len(values)} values for "
                                 f"{len(completions)} completions")
            out = [o + weight * float(v) for o, v in zip(out, values, strict=True)]
        return out
    return total


def resolve(name: str, task: Task, max_chars: int = 64) -> RewardFn:
    """A built-in reward by name (correct, format, score, length) or a user's `module:function`."""
    builtins = {"correct": lambda: correct_reward(task), "format": lambda: format_reward(task),
                "score": lambda: score_reward(task), "length": lambda: length_penalty(max_chars)}
    if name in builtins:
        return builtins[name]()
    module, sep, attr = name.partition(":")
    if not sep:
        raise ValueError(f"reward {name!r} is not one of {', '.join(builtins)} nor a module:function")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"reward {name!r} cannot be loaded ({err})") from None
    if not callable(fn):
        raise ValueError(f"reward {name!r} is not a function")
    return fn
