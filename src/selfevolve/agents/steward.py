"""A MobileSteward-style agent on PhoneSim: a steward splits a cross-app instruction into app subtasks
joined by the information one passes to the next, staff agents carry out one subtask each inside their
app, and two memories grow from the successes.

    steward     instruction -> plan, "messages: find the address in ana's last message; taxi: book a taxi
                to {1}" ({1} is the answer of the subtask before); it opens each subtask's app (home, open
                APP), hands the staff its subtask with the answer filled in, and when a subtask fails (no
                answer, the staff's steps run out, the plan ends with nothing committed) it reflects by
                sampling a new plan, up to `replans` times
    staff       subtask + its app's screen -> one action (entries named by their text, grounded by the
                rule of mobile_agent.py), or "answer TEXT" to end a find subtask with what it read
    guidelines  task-guideline memory: an instruction's shape (its people, products and events made
                slots) -> the plan that succeeded on it; a planned task of that shape uses it
    expertise   staff-expertise memory: for each app, the subtask shapes it completed; the steward gives a
                subtask to the one app whose expertise holds its shape when the plan named another

One LM can play both roles (the prompts differ); `expert_plan` and `staff_demos` are the scripted
demonstrations both are cloned from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from selfevolve.agents.env import parse_react
from selfevolve.agents.mobile_agent import describe, ground
from selfevolve.agents.phone import APPS, EVENTS, NAMES, PRODUCTS, Phone

ENTITY = re.compile(r"\b(" + "|".join(sorted(NAMES + EVENTS + PRODUCTS, key=len, reverse=True)) + r")\b")
FIND = {"taxi": ("messages", "find the address in {a}'s last message"),
        "phone": ("contacts", "find the phone number of {b}"),
        "time": ("messages", "find the time in {a}'s last message"),
        "place": ("calendar", "find the place of the {event}"),
        "forward": ("messages", "find {a}'s last message")}
USE = {"taxi": ("taxi", "book a taxi to {{1}}"), "phone": ("contacts", "send {a} the message {{1}}"),
       "time": ("notes", "make a note {{1}}"), "place": ("contacts", "send {a} the message {{1}}"),
       "forward": ("contacts", "send {b} the message {{1}}"), "buy": ("shop", "buy a {product}")}


def expert_plan(env: Phone) -> str:
    """The plan that does the task: a find subtask and a use subtask (a buy is one subtask)."""
    steps = ([FIND[env.template]] if env.template in FIND else []) + [USE[env.template]]
    return "; ".join(f"{app}: {text.format(**env.goal)}" for app, text in steps)


def parse_plan(text: str) -> list[tuple[str, str]]:
    """[(app, subtask)], or [] when a piece names no app or has no subtask."""
    pieces = [p.partition(":") for p in text.strip().split(";")]
    plan = [(app.strip(), task.strip()) for app, _, task in pieces]
    return plan if plan and all(app in APPS and task for app, task in plan) else []


def answer_of(env: Phone) -> str:
    """What the find subtask reads: the value its use subtask needs."""
    g, last = env.goal, env.last(env.goal["a"])
    return {"taxi": lambda: env._address_in(last), "phone": lambda: env.contacts[g["b"]]["phone"],
            "time": lambda: env._time_in(last), "place": lambda: env._event(g["event"])["place"],
            "forward": lambda: last}[env.template]()


def steward_prompt(instruction: str) -> str:
    return f"instruction: {instruction}\nplan: "


def staff_prompt(env: Phone, task: str) -> str:
    """The subtask and the app's screen, one widget a line: never the whole instruction."""
    screen = env.observe().split("\n")[1]
    return "\n".join([f"task: {task}", screen, *(f"[{w.id}] {w.label}" for w in env.widgets())]) + "\n"


def staff_demos(task_ids: list[int], difficulty: int) -> list[tuple[str, str]]:
    """The scripted staff's (prompt, action) on each subtask of the expert's plan: the phone's own
    solution cut where it opens an app, a find subtask ended by its answer."""
    env, out = Phone(difficulty), []
    for task_id in task_ids:
        env.reset(task_id)
        solution = [a for a in env.solution() if a != "home"]
        starts = [i for i, a in enumerate(solution) if a.startswith("open ")] + [len(solution)]
        plan = parse_plan(expert_plan(env))
        for k, (app, task) in enumerate(plan):
            task = task.replace("{1}", answer_of(env)) if k else task
            if not env.at_home():
                env.step("home")
            env.step(f"open {app}")
            for action in solution[starts[k] + 1:starts[k + 1]]:
                out.append((staff_prompt(env, task), describe(env, action)))
                env.step(action)
            if k < len(plan) - 1:
                out.append((staff_prompt(env, task), f"answer {answer_of(env)}"))
    return out


def shape(text: str, values: list[str] | None = None) -> tuple[str, list[str]]:
    """The text with its people, products and events made slots <1>, <2>, ... in order of first appearance
    (or as numbered by `values`), and the values."""
    values = list(values or [])
    for v in ENTITY.findall(text):
        values += [] if v in values else [v]
    return ENTITY.sub(lambda m: f"<{values.index(m.group(1)) + 1}>", text), values


def unshape(text: str, values: list[str]) -> str:
    return re.sub(r"<(\d+)>", lambda m: values[int(m.group(1)) - 1] if int(m.group(1)) <= len(values) else m.group(0),
                  text)


@dataclass
class StewardMemory:
    guidelines: dict[str, str] = field(default_factory=dict)
    expertise: dict[str, list[str]] = field(default_factory=dict)

    def guideline(self, instruction: str) -> str | None:
        key, values = shape(instruction)
        return unshape(self.guidelines[key], values) if key in self.guidelines else None

    def assign(self, plan: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], int]:
        """The plan with each subtask given to the one app whose expertise holds its shape; how many moved."""
        out, moved = [], 0
        for app, task in plan:
            key = shape(task)[0]
            holders = [a for a, shapes in self.expertise.items() if key in shapes]
            new = holders[0] if len(holders) == 1 and app not in holders else app
            out.append((new, task))
            moved += new != app
        return out, moved

    def learn(self, instruction: str, plan: list[tuple[str, str]]) -> None:
        key, values = shape(instruction)
        self.guidelines.setdefault(key, shape("; ".join(f"{a}: {t}" for a, t in plan), values)[0])
        for app, task in plan:
            known, task_key = self.expertise.setdefault(app, []), shape(task)[0]
            known += [] if task_key in known else [task_key]

    def to_json(self) -> str:
        return json.dumps({"guidelines": self.guidelines, "expertise": self.expertise}, indent=1)


@dataclass
class Episode:
    """One task: the plans tried, every executed (screen, action), staff decisions, and counts."""

    task_id: int
    template: str
    instruction: str
    expert: str  # the expert's plan, for reporting how often the steward's first plan is it
    plans: list[str] = field(default_factory=list)
    steps: list[tuple[str, str]] = field(default_factory=list)
    decisions: list[tuple[str, str]] = field(default_factory=list)
    invalid: int = 0
    guided: bool = False
    reassigned: int = 0
    success: bool = False
    plan: list[tuple[str, str]] = field(default_factory=list)
    subtask: int = 0
    answer: str = ""
    sub_steps: int = 0


def play(lm, task_ids: list[int], difficulty: int, memory: StewardMemory | None, replans: int = 2,
         max_sub_steps: int = 10, temperature: float = 1.0, max_tokens: int = 48) -> list[Episode]:
    """Every task in lockstep: one batched steward call per round of planning, one batched staff call per
    step, with the memories as they stand (None: without them); `remember` grows them afterwards."""
    envs = [Phone(difficulty) for _ in task_ids]
    eps = []
    for env, t in zip(envs, task_ids, strict=True):
        env.reset(t)
        eps.append(Episode(t, env.template, env.instruction, expert_plan(env)))

    def plan(rows: list[int], temp: float) -> None:
        texts = {i: memory.guideline(eps[i].instruction) for i in rows} if memory and temp == 0 else {}
        texts = {i: t for i, t in texts.items() if t is not None}
        ask = [i for i in rows if i not in texts]
        if ask:
            replies = lm.generate([steward_prompt(eps[i].instruction) for i in ask], temperature=temp,
                                  max_tokens=2 * max_tokens)
            texts.update({i: r.text.strip().split("\n")[0] for i, (r,) in zip(ask, replies, strict=True)})
        for i in rows:
            ep = eps[i]
            ep.guided |= i not in ask
            ep.plan, ep.subtask, ep.answer, ep.sub_steps = parse_plan(texts[i]), 0, "", 0
            if memory and i in ask:
                ep.plan, moved = memory.assign(ep.plan)
                ep.reassigned += moved
            ep.plans.append(texts[i])

    def step(i: int, action: str) -> None:
        env, ep = envs[i], eps[i]
        screen = env.screen[0]
        _, reward, *_, info = env.step(ground(env, action))
        ep.steps.append((screen, action))
        ep.invalid += not info["valid"]
        ep.success |= reward >= 1.0

    def start(i: int) -> bool:
        """Open the current subtask's app; False when there is none to open (the plan failed)."""
        ep = eps[i]
        if ep.subtask >= len(ep.plan) or (ep.subtask and not ep.answer):
            return False
        for action in ([] if envs[i].at_home() else ["home"]) + [f"open {ep.plan[ep.subtask][0]}"]:
            if not envs[i].done:
                step(i, action)
        ep.sub_steps = 0
        return True

    live = list(range(len(envs)))
    plan(live, 0.0)
    pending = list(live)  # tasks whose current subtask's app is still to be opened
    while live:
        failed = [i for i in pending if not envs[i].done and not start(i)]
        reflect = [i for i in failed if len(eps[i].plans) <= replans]
        if reflect:
            plan(reflect, temperature)
        live = [i for i in live if not envs[i].done and (i not in failed or i in reflect)]
        pending = reflect
        acting = [i for i in live if i not in pending]
        if not acting:
            continue
        prompts = [staff_prompt(envs[i], _filled(eps[i])) for i in acting]
        replies = lm.generate(prompts, temperature=0.0, max_tokens=max_tokens)
        for i, q, (r,) in zip(acting, prompts, replies, strict=True):
            ep, action = eps[i], parse_react(r.text)[1]
            ep.decisions.append((q, action))
            ep.sub_steps += 1
            if action.startswith("answer "):
                ep.answer, ep.subtask = action.removeprefix("answer ").strip(), ep.subtask + 1
                pending.append(i)
                continue
            step(i, action)
            if not envs[i].done and ep.sub_steps >= max_sub_steps:
                ep.subtask = len(ep.plan)  # the staff's steps ran out: the subtask failed
                pending.append(i)
        live = [i for i in live if not envs[i].done]
    return eps


def remember(memory: StewardMemory, episodes: list[Episode]) -> None:
    """Grow the memories from the successes, in order."""
    for ep in episodes:
        if ep.success:
            memory.learn(ep.instruction, ep.plan)


def _filled(ep: Episode) -> str:
    return ep.plan[ep.subtask][1].replace("{1}", ep.answer)
