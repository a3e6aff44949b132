"""What PhoneSim and WebSim share: screens as lists of widgets with ids, a committing action that ends the
episode with the verifier's verdict, and a scripted expert that follows a plan from the home screen
and, when an agent has wandered off it, gets back home first and starts the plan again."""

from __future__ import annotations

from dataclasses import dataclass

from selfevolve.agents.env import TextEnv


@dataclass(frozen=True)
class Widget:
    id: str
    kind: str  # button, link, item, text, field
    label: str


class AppEnv(TextEnv):
    recover = ""  # the expert's way home when off its plan ("home", "back")
    plan: list[str]
    plan_pos: int | None

    def at_home(self) -> bool:
        raise NotImplementedError

    def check(self) -> bool:
        """The verifier: the final state is what the instruction asked for."""
        raise NotImplementedError

    def apply(self, verb: str, args: list[str]) -> tuple[str, float, bool] | None:
        """Apply an action to the app or site; None when it is malformed or names nothing on screen."""
        raise NotImplementedError

    def act(self, verb, args):
        result = self.apply(verb, args)
        if result is None:
            return None
        action = " ".join([verb, *args])
        if self.plan_pos is not None:  # the expert's place in its plan; off plan until it is home again
            on_plan = self.plan_pos < len(self.plan) and action == self.plan[self.plan_pos]
            self.plan_pos = self.plan_pos + 1 if on_plan else 0 if self.at_home() else None
        elif self.at_home():
            self.plan_pos = 0
        return result

    def end(self) -> tuple[str, float, bool]:
        """The committing action's outcome: the episode ends, rewarded if the verifier agrees."""
        ok = self.check()
        return ("done: the task is complete" if ok else "done: that was not what the task asked"), float(ok), True

    def expert(self) -> str:
        if self.plan_pos is None:
            return f"Thought: I am off my plan; head back to the start\nAction: {self.recover}"
        return f"Thought: step {self.plan_pos + 1} of {len(self.plan)}\nAction: {self.plan[self.plan_pos]}"
