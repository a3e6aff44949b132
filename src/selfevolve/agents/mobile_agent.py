"""A Mobile-Agent-E style agent on PhoneSim: an operator acts on the screen, a notetaker carries what the
task needs between apps, and a long-term memory of tips and shortcuts, learned from the agent's own
episodes, shapes what it does.

    operator     one call per decision (any LM, or the scripted expert): the prompt is the task, the
                 notes and the screen; the reply "Action: ..." names one atomic action, a list entry by
                 its text ("tap kai", not "tap t-3")
    grounder     maps an entry named by its text to the widget's id on the current screen (a rule, as
                 Mobile-Agent-E's perceptor is a tool): the model plans, the rule points
    notetaker    going home, it keeps the text of the screen it left ("ana: i moved to 12 oak street"),
                 so a prompt that shows one screen still holds what was read in another app
    shortcuts    an action that begins a kept shortcut on its precondition screen runs the shortcut: its
                 actions one after another, as far as the first action bound its parameters, stopping at
                 the first invalid one; the decision counts once
    tips         a tip about a verb that keeps failing on a screen is kept with a guard: there, an action
                 with that verb that the screen shows cannot work (an id it does not show, a verb the
                 phone lacks) goes back to the operator, sampled, up to `resamples` times

The notetaker and the guards are rules: a tiny operator cannot write notes or read tips in words
(Mobile-Agent-E's roles are LLM prompts), so the words are kept for people and the rules act on them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from selfevolve.agents.env import parse_react
from selfevolve.agents.experience import Shortcut, mine_shortcuts, recurring_failures, tip
from selfevolve.agents.phone import APPS, Phone
from selfevolve.evolve.runner import object_rows
from selfevolve.models.lm import TransformerLM
from selfevolve.store import atomic_write

VERBS = {"open", "tap", "type", "swipe", "back", "home"}
SCREENS = {"home", *APPS}

# (prompts, the environments they show, temperature) -> one action per prompt
Operator = Callable[[list[str], list[Phone], float], list[str]]


@dataclass
class Memory:
    """What the agent keeps across tasks: shortcuts by name, tips in words, and the (screen, verb)
    guards the tips stand for."""

    shortcuts: dict[str, Shortcut] = field(default_factory=dict)
    tips: list[str] = field(default_factory=list)
    guards: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"shortcuts": [asdict(s) for s in self.shortcuts.values()], "tips": self.tips,
                           "guards": self.guards}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Memory:
        data = json.loads(text)
        shortcuts = [Shortcut(s["name"], tuple(s["params"]), s["precondition"], tuple(s["actions"]))
                     for s in data["shortcuts"]]
        return cls({s.name: s for s in shortcuts}, data["tips"], [tuple(g) for g in data["guards"]])

    def learn(self, played: list[Played], new: int, use_tips: bool, use_shortcuts: bool, min_support: int,
              min_failures: int, min_confidence: float = 0.9) -> None:
        """The reflectors after a batch of tasks: tips and guards from every invalid action so far, at
        most `new` new shortcuts mined from every successful episode so far (each one that its first action
        calls: it follows that action at least `min_confidence` of the times)."""
        if use_tips:
            recurring = recurring_failures([f for p in played for f in p.failures], min_failures)
            self.guards = [key for key, _, _ in recurring]
            self.tips = [tip(key, n, examples) for key, n, examples in recurring]
        if use_shortcuts:
            mined = mine_shortcuts([p.steps for p in played if p.success], self.shortcuts, VERBS, SCREENS,
                                   min_support, lengths=(2, 3, 4), min_confidence=min_confidence)
            self.shortcuts.update((s.name, s) for s in mined[:new])


@dataclass
class Played:
    """One episode: every executed (screen, action), the operator's decisions as (prompt, action),
    the invalid actions, and counts."""

    task_id: int
    template: str
    steps: list[tuple[str, str]] = field(default_factory=list)
    decisions: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    shortcut_runs: int = 0
    resampled: int = 0
    success: bool = False


def prompt_of(env: Phone, notes: str) -> str:
    """The task, the notes and the screen, one widget a line as "[id] label" (the observation without its
    indentation and widget kinds: a fifth shorter, which a character-level operator pays for every step)."""
    task, screen, *_ = env.observe().split("\n")
    return "\n".join([task, f"notes: {notes}", screen, *(f"[{w.id}] {w.label}" for w in env.widgets())]) + "\n"


def screen_text(env: Phone) -> str:
    """The text widgets of the current screen, each with the screen's subject ("ben: phone 555-1234")."""
    subject = env.screen[1] if len(env.screen) > 1 else env.screen[0]
    texts = [w.label for w in env.widgets() if w.kind == "text"]
    return "; ".join(t if t.startswith(f"{subject}:") else f"{subject}: {t}" for t in texts)


def name_of(label: str) -> str:
    """What a list entry is called: its label up to a colon or comma ("kai: see you at 9:15" -> "kai")."""
    return label.split(":")[0].split(",")[0]


def describe(env: Phone, action: str) -> str:
    """An action as the operator says it: a tap of a list entry by the entry's name."""
    words = action.split()
    entries = {w.id: name_of(w.label) for w in env.widgets() if w.kind == "item"}
    return f"tap {entries[words[1]]}" if words[:1] == ["tap"] and len(words) == 2 and words[1] in entries else action


def ground(env: Phone, action: str) -> str:
    """An action as the phone takes it: a list entry named by its text becomes its id on this screen."""
    words = action.split()
    if words[:1] != ["tap"] or len(words) < 2 or words[1] in {w.id for w in env.widgets()}:
        return action
    named = [w.id for w in env.widgets() if w.kind == "item" and name_of(w.label) == " ".join(words[1:])]
    return f"tap {named[0]}" if named else action


def keep_example(run_dir: Path, variant: str, episodes: list, difficulty: int) -> None:
    """The first successful episode of a variant's stream (else its longest), as the report's example: its
    task and the actions it executed, to replay on the phone (`draw_example`)."""
    ep = next((e for e in episodes if e.success), max(episodes, key=lambda e: len(e.steps)))
    example = {"task_id": ep.task_id, "difficulty": difficulty, "template": ep.template, "success": ep.success,
               "actions": [a for _, a in ep.steps]}
    atomic_write(run_dir / "episodes" / f"{variant}.json", json.dumps(example))


def draw_example(run_dir: Path, variant: str) -> list[Path]:
    """The example `keep_example` wrote, replayed on the phone screen by screen into the run's plots (none
    before it exists)."""
    from selfevolve.agents.screens import draw_episode, replay  # matplotlib: only for the report

    path = run_dir / "episodes" / f"{variant}.json"
    if not path.exists():
        return []
    ex = json.loads(path.read_text())
    env = Phone(ex["difficulty"])
    return draw_episode(*replay(env, ex["task_id"], ex["actions"], lambda a: ground(env, a)), ex["template"],
                        run_dir / "plots", variant, "phone")


def can_work(env: Phone, action: str) -> bool:
    """Whether the screen allows the (grounded) action: a known verb, and an id the screen shows."""
    words = action.split()
    if not words or words[0] not in VERBS:
        return False
    if words[0] in ("tap", "type"):
        return len(words) >= (2 if words[0] == "tap" else 3) and words[1] in {w.id for w in env.widgets()}
    return True


def bind(shortcut: Shortcut, action: str) -> list[str] | None:
    """The shortcut's actions if `action` is its first one, with the parameters that action binds, up
    to the first action that needs one it does not bind; None if it does not begin the shortcut. A
    parameter is never an id (no dash): `tap {p1}` taps an entry by its name, not b-search."""
    pattern, seen = "", set()
    for piece in re.split(r"(\{\w+\})", shortcut.actions[0]):
        name = piece[1:-1] if piece.startswith("{") else None
        pattern += (f"(?P={name})" if name in seen else f"(?P<{name}>[^\\s-]+)") if name else re.escape(piece)
        seen |= {name} if name else set()
    match = re.fullmatch(pattern, action)
    if match is None:
        return None
    values, out = match.groupdict(), []
    for a in shortcut.actions:
        if set(re.findall(r"\{(\w+)\}", a)) - values.keys():
            break
        out.append(re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], a))
    return out if len(out) >= 2 else None


def play(operator: Operator, task_ids: list[int], difficulty: int, memory: Memory, resamples: int = 3,
         temperature: float = 1.0) -> list[Played]:
    """Every task in lockstep (one operator call per decision for all), with the memory as it stands."""
    envs = [Phone(difficulty) for _ in task_ids]
    played = [Played(t, "") for t in task_ids]
    for env, p, t in zip(envs, played, task_ids, strict=True):
        env.reset(t)
        p.template = env.template
    notes = [""] * len(envs)
    live = list(range(len(envs)))
    while live:
        prompts = [prompt_of(envs[i], notes[i]) for i in live]
        actions = operator(prompts, [envs[i] for i in live], 0.0)
        for _ in range(resamples):  # the guards: only on screens and verbs a tip names
            bad = [k for k, i in enumerate(live) if not can_work(envs[i], ground(envs[i], actions[k]))
                   and (envs[i].screen[0], (actions[k].split() or [""])[0]) in memory.guards]
            if not bad:
                break
            again = operator([prompts[k] for k in bad], [envs[live[k]] for k in bad], temperature)
            for k, action in zip(bad, again, strict=True):
                actions[k] = action
                played[live[k]].resampled += 1
        for k, i in enumerate(live):
            env, p = envs[i], played[i]
            p.decisions.append((prompts[k], actions[k]))
            run = next(filter(None, (bind(s, actions[k]) for s in memory.shortcuts.values()
                                     if s.precondition == env.screen[0])), None)
            p.shortcut_runs += run is not None
            for action in run or [actions[k]]:
                screen, text = env.screen[0], screen_text(env)
                _, reward, *_, info = env.step(ground(env, action))
                p.steps.append((screen, action))
                p.success |= reward >= 1.0
                if not info["valid"]:
                    p.failures.append((screen, action))
                    break
                if action.split() == ["home"] and text:
                    notes[i] = text
                if env.done:
                    break
        live = [i for i in live if not envs[i].done]
    return played


def expert(prompts: list[str], envs: list[Phone], temperature: float) -> list[str]:
    """The scripted expert as an operator: it reads the environment, not the prompt."""
    return [describe(env, parse_react(env.expert())[1]) for env in envs]


def lm_operator(lm, max_tokens: int) -> Operator:
    """An LM as the operator: its reply's action (ReAct form, or a bare line)."""
    def propose(prompts: list[str], envs: list[Phone], temperature: float) -> list[str]:
        replies = lm.generate(prompts, temperature=temperature, max_tokens=max_tokens)
        return [parse_react(reply.text)[1] for (reply,) in replies]
    return propose


@dataclass(frozen=True)
class Player:
    """Plays a chunk of task ids with the operator's model and the memory as they stand, its sampling
    seeded by the chunk: picklable, so a Ray worker plays a chunk exactly as this process would."""

    model: object
    tok: object
    difficulty: int
    memory: Memory
    resamples: int
    temperature: float
    max_tokens: int

    def __call__(self, task_ids: list[int], seed: int) -> np.ndarray:
        operator = lm_operator(TransformerLM(self.model, self.tok, seed=seed), self.max_tokens)
        return object_rows(play(operator, [int(t) for t in task_ids], self.difficulty, self.memory, self.resamples,
                                self.temperature))
