"""A web agent on WebSim, and the interface it acts through (AutoGLM's "intermediate interface" ablation).

    semantic   the page lists each element by kind and label ("link: kettle 5, 45 eur", "field reply: ");
               the agent names what it wants ("click kettle 5", "type reply lyon") and a grounder (a rule)
               maps the name to the element: the model plans, the rule points
    index      the page numbers its elements ("[3] link: kettle 5, 45 eur"); the agent answers with the
               number ("click 3", "type 5 lyon"), planning and pointing at once

Either way the prompt is the task, the page, the last few actions and "action: ", and the reply is one
action. Episodes of many tasks run in lockstep, one batched call per step; an episode ends when the site
commits (checkout, post, save), after `max_steps` actions, or when the site's own step limit is reached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from selfevolve.agents.app_env import Widget
from selfevolve.agents.env import parse_react
from selfevolve.agents.web import TEMPLATES, Web
from selfevolve.evolve.runner import object_rows
from selfevolve.models.lm import TransformerLM
from selfevolve.train.sft import Examples

INTERFACES = ("semantic", "index")
HISTORY = 3  # actions shown in the prompt
ACTION_CHARS = 24  # each cut to this many characters
CLICKABLE = ("link", "button")

# (prompts, temperature) -> one reply per prompt
Actor = Callable[[list[str], float], list[str]]


@dataclass(frozen=True)
class WebTask:
    difficulty: int
    task_id: int


def base_tasks(first: int, n: int) -> list[WebTask]:
    """Tasks of the base distribution: ids first .. first+n-1, difficulties 0, 1, 2 in turn."""
    return [WebTask(i % 3, i) for i in range(first, first + n)]


def name_of(e: Widget) -> str:
    """What the semantic interface calls an element: a field by its id's word, anything else by its label
    up to the first comma or count ("kettle 5", "cart", "kai")."""
    if e.kind == "field":
        return e.id.removeprefix("f-")
    return e.label.split(",")[0].split(" (")[0]


def observation(env: Web, interface: str, history: list[str]) -> str:
    lines = [f"task: {env.instruction}", f"page: {' / '.join(env.page)}"]
    if history:
        lines.append("done: " + ", ".join(a[:ACTION_CHARS] for a in history[-HISTORY:]))
    for n, e in enumerate(env.elements()):
        shown = f"{e.kind} {name_of(e)}: {e.label}" if e.kind == "field" else f"{e.kind}: {e.label}"
        lines.append(f"  [{n}] {shown}" if interface == "index" else f"  {shown}")
    return "\n".join(lines) + "\naction: "


def ground(env: Web, action: str, interface: str) -> str | None:
    """The site's own action (element ids) for an action in the interface's words; None when it names no
    element on the page or does not parse."""
    words = action.lower().split()
    if words == ["back"]:
        return "back"
    if len(words) < 2 or words[0] not in ("click", "type"):
        return None
    elements = env.elements()
    if interface == "index":
        n = int(words[1]) if words[1].isdigit() else -1
        target = elements[n] if 0 <= n < len(elements) else None
    else:
        wanted = " ".join(words[1:]) if words[0] == "click" else words[1]
        target = next((e for e in elements if name_of(e) == wanted), None)
    if target is None:
        return None
    if words[0] == "click":
        return f"click {target.id}" if target.kind in CLICKABLE else None
    return f"type {target.id} {' '.join(words[2:])}" if target.kind == "field" and len(words) > 2 else None


def in_words(env: Web, native: str, interface: str) -> str:
    """The interface's words for a site action (the scripted expert's, for demonstrations)."""
    words = native.split()
    if words[0] == "back":
        return "back"
    elements = env.elements()
    n, e = next((n, e) for n, e in enumerate(elements) if e.id == words[1])
    target = str(n) if interface == "index" else name_of(e)
    return " ".join([words[0], target, *words[2:]])


@dataclass
class WebEpisode:
    """One task played: every prompt and reply, the verifier's verdict, and the invalid actions."""

    task: WebTask
    template: str
    prompts: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    success: bool = False
    invalid: int = 0

    @property
    def steps(self) -> int:
        return len(self.actions)


def play(actor: Actor | None, tasks: list[WebTask], interface: str, max_steps: int, temperature: float = 0.0
         ) -> list[WebEpisode]:
    """Every task played to its end in lockstep; actor None is the scripted expert."""
    envs, episodes, history = [], [], []
    for t in tasks:
        env = Web(t.difficulty)
        env.reset(t.task_id)
        envs.append(env)
        episodes.append(WebEpisode(t, env.template))
        history.append([])
    live = list(range(len(tasks)))
    while live:
        prompts = [observation(envs[i], interface, history[i]) for i in live]
        replies = ([in_words(envs[i], parse_react(envs[i].expert())[1], interface) for i in live] if actor is None
                   else actor(prompts, temperature))
        still = []
        for i, prompt, reply in zip(live, prompts, replies, strict=True):
            action = parse_react(reply)[1]
            native = ground(envs[i], action, interface)
            _, reward, terminated, truncated, info = envs[i].step(native or "invalid")
            ep = episodes[i]
            ep.prompts.append(prompt)
            ep.actions.append(action)
            ep.invalid += not info["valid"]
            history[i].append(action)
            ep.success = reward >= 1.0
            if not (terminated or truncated or ep.steps >= max_steps):
                still.append(i)
        live = still
    return episodes


def outcome(episodes: list[WebEpisode]) -> dict:
    """Success over all episodes, on the training templates, and at each difficulty 0-2."""
    def mean(eps) -> float:
        return float(np.mean([ep.success for ep in eps])) if eps else float("nan")

    return {"success": mean(episodes), "seen_templates": mean([ep for ep in episodes if ep.template in TEMPLATES]),
            "by_difficulty": [mean([ep for ep in episodes if ep.task.difficulty == d]) for d in range(3)]}


def step_examples(tok, episodes: list[WebEpisode]) -> Examples:
    """Every action of the episodes as a (prompt, reply) training row."""
    return Examples.encode(tok, [p for ep in episodes for p in ep.prompts], [a for ep in episodes for a in ep.actions])


def step_table(episodes: list[WebEpisode], judged: list[bool], phases: list[int]) -> dict[str, list]:
    """One row per action, for Parquet: the episode's phase and task, the step, prompt and action, the
    verifier's verdict and the judgement the learner used."""
    rows = [(phase, ep.task.task_id, ep.task.difficulty, ep.template, n, prompt, action, ep.success, bool(y))
            for ep, y, phase in zip(episodes, judged, phases, strict=True)
            for n, (prompt, action) in enumerate(zip(ep.prompts, ep.actions, strict=True))]
    names = ("phase", "task_id", "difficulty", "template", "step", "prompt", "action", "success", "judged")
    return {name: [row[k] for row in rows] for k, name in enumerate(names)}


def draw_example(run_dir: Path, round_: int, interface: str) -> list[Path]:
    """One rollout of a round's samples (the first success of its last phase, else that phase's longest
    rollout) replayed on the site screen by screen into the run's plots (none before the round exists)."""
    from selfevolve.agents.screens import draw_episode, replay  # matplotlib: only for the report

    path = run_dir / "samples" / f"round-{round_:03d}.parquet"
    if not path.exists():
        return []
    rows = pq.read_table(path, columns=["phase", "task_id", "difficulty", "step", "action", "success"]).to_pylist()
    last = max(r["phase"] for r in rows)
    rows = [r for r in rows if r["phase"] == last]
    starts = [i for i, r in enumerate(rows) if r["step"] == 0] + [len(rows)]
    episodes = [rows[a:b] for a, b in zip(starts, starts[1:], strict=False)]
    ep = next((e for e in episodes if e[0]["success"]), max(episodes, key=len))
    env = Web(ep[0]["difficulty"])
    pages, done = replay(env, ep[0]["task_id"], [r["action"] for r in ep], lambda a: ground(env, a, interface))
    return draw_episode(pages, done, env.template, run_dir / "plots", f"round-{round_}", "web")


def lm_actor(lm, max_tokens: int) -> Actor:
    """An LM as the actor: one generation per prompt, the first line of the reply."""
    def act(prompts: list[str], temperature: float) -> list[str]:
        return [row[0].text.split("\n")[0] for row in lm.generate(prompts, temperature=temperature,
                                                                   max_tokens=max_tokens)]
    return act


@dataclass(frozen=True)
class Player:
    """Plays a chunk of tasks with a model as it stands, its sampling seeded by the chunk: picklable, so a
    Ray worker plays a chunk exactly as this process would."""

    model: object
    tok: object
    interface: str
    max_steps: int
    max_tokens: int
    temperature: float

    def __call__(self, tasks: list[WebTask], seed: int) -> np.ndarray:
        lm = TransformerLM(self.model, self.tok, seed=seed)
        return object_rows(play(lm_actor(lm, self.max_tokens), list(tasks), self.interface, self.max_steps,
                                self.temperature))
