"""Task registry: pick a task by name; an unknown name lists the valid ones."""

from __future__ import annotations

from selfevolve.tasks.arithmetic import ArithmeticTask
from selfevolve.tasks.base import Problem, Task, read_problems
from selfevolve.tasks.countdown import CountdownTask
from selfevolve.tasks.long_lookup import LongLookupTask
from selfevolve.tasks.toy_translation import ToyTranslationTask
from selfevolve.tasks.wordmath import WordMathTask

TASKS = {
    "addition": lambda: ArithmeticTask("addition", "+"),
    "multiplication": lambda: ArithmeticTask("multiplication", "*"),
    "countdown": CountdownTask,
    "lookup": LongLookupTask,
    "translation": ToyTranslationTask,
    "wordmath": WordMathTask,
    "wordmath-hard": lambda: WordMathTask(max_number=15, distractors=0.3, compound=0.3, name="wordmath-hard"),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]()


__all__ = ["Problem", "Task", "TASKS", "get_task", "read_problems"]
