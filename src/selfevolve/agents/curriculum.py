"""WebRL's self-evolving curriculum on WebSim: new tasks written from the ones the agent failed, kept only
where a critic expects the agent to succeed sometimes but not always.

WebRL asks an LLM to write variations of failed instructions and keeps those whose critic value lies in
[0.05, 0.75]. Here a variation of a failed task is a fresh site with the same template, one difficulty
easier, the same, or one harder; the critic is the agent's judged success on that (template, difficulty)
so far, smoothed (a Beta(1, 1) prior: a cell never tried is estimated at 0.5, inside the band).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from selfevolve.agents.web import Web
from selfevolve.agents.web_agent import WebTask


@dataclass
class Critic:
    """Judged successes and attempts per (template, difficulty)."""

    wins: Counter = field(default_factory=Counter)
    tries: Counter = field(default_factory=Counter)

    def add(self, template: str, difficulty: int, success: bool) -> None:
        self.wins[template, difficulty] += success
        self.tries[template, difficulty] += 1

    def value(self, template: str, difficulty: int) -> float:
        return (self.wins[template, difficulty] + 1) / (self.tries[template, difficulty] + 2)


def in_band(value: float, low: float, high: float) -> bool:
    return low <= value <= high


class TaskWriter:
    """Fresh training sites of a wanted template and difficulty, from ids no earlier task used."""

    def __init__(self, first_id: int, last_id: int) -> None:
        self.next_id, self.last_id = first_id, last_id

    def write(self, template: str, difficulty: int) -> WebTask:
        env = Web(difficulty)
        while self.next_id < self.last_id:
            task_id, self.next_id = self.next_id, self.next_id + 1
            env.reset(task_id)
            if env.template == template:
                return WebTask(difficulty, task_id)
        raise RuntimeError(f"no training task ids left below {self.last_id}")


def evolve(failed: list[tuple[str, WebTask]], critic: Critic, writer: TaskWriter, wanted: int, low: float,
           high: float, max_difficulty: int) -> tuple[list[WebTask], dict]:
    """Up to `wanted` new tasks: for each failed (template, task) in turn, its variations (easier, same,
    harder) whose critic value is in [low, high], each a fresh site. Returns them and counts."""
    out, proposed = [], 0
    for template, task in failed:
        for d in (task.difficulty - 1, task.difficulty, task.difficulty + 1):
            if len(out) == wanted:
                break
            if not 0 <= d <= max_difficulty:
                continue
            proposed += 1
            if in_band(critic.value(template, d), low, high):
                out.append(writer.write(template, d))
    return out, {"proposed": proposed, "accepted": len(out)}
