"""A PhoneSim or WebSim observation drawn as a screen (a PNG for the report: a person would rather look at
a screen than read its widget list): a phone frame or a browser window, one row per widget, buttons
and links boxed, fields shown with what was typed; and an episode replayed screen by screen, each
captioned with the action the agent took on it, for the run's HTML report."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

ROW = re.compile(r"^\s+\[(?P<id>[^\]]+)\] (?P<kind>\w+): ?(?P<label>.*)$")
EXAMPLE = "example-"  # how the report tells an episode's screens from the plots
COLOURS = {"button": "#dbe9ff", "link": "#e8f4e8", "item": "#f4f4f4", "field": "#ffffff", "text": None}


def render(observation: str, path: Path, device: str = "phone", caption: str = "") -> Path:
    """Draw the observation's task, screen name and widgets, and the caption under them; returns the PNG's
    path."""
    lines = observation.split("\n")
    header = [line for line in lines if not ROW.match(line)]
    rows = [ROW.match(line).groupdict() for line in lines if ROW.match(line)]
    width, height = (3.2, 6.0) if device == "phone" else (7.0, 4.6)
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((0.02, 0.02), 0.96, 0.96, boxstyle="round,pad=0.01,rounding_size=0.05",
                                fc="#fafafa", ec="#333333", lw=2))
    y, step = 0.93, min(0.06, 0.8 / max(1, len(rows) + len(header)))
    for line in header:
        ax.text(0.07, y, line, fontsize=7, weight="bold", va="center", wrap=True)
        y -= step
    for row in rows:
        label = row["label"] if row["kind"] != "field" else f"[ {row['label'] or ' '} ]"
        colour = COLOURS.get(row["kind"])
        if colour:
            ax.add_patch(FancyBboxPatch((0.07, y - step * 0.4), 0.86, step * 0.8, boxstyle="round,pad=0.005",
                                        fc=colour, ec="#999999", lw=0.6))
        ax.text(0.09, y, label[:60], fontsize=7, va="center")
        ax.text(0.91, y, row["id"], fontsize=5, color="#777777", va="center", ha="right")
        y -= step
    if caption:
        ax.text(0.5, -0.03, caption, fontsize=7, ha="center", va="top", style="italic", wrap=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def replay(env, task_id: int, actions: list[str], native: Callable[[str], str | None]
           ) -> tuple[list[tuple[str, str]], bool]:
    """Each screen of an episode with the action taken on it, then the last screen (action ""), and whether
    the task was done: the recorded actions played again on `env` from the start of task `task_id` (the
    environments are deterministic given the task). `native` maps the agent's words to the environment's."""
    env.reset(task_id)
    pages, done = [], False
    for action in actions:
        pages.append((env.observe(), action))
        done |= env.step(native(action) or "invalid")[1] >= 1.0
    return [*pages, (env.observe(), "")], done


def draw_episode(pages: list[tuple[str, str]], done: bool, about: str, plot_dir: Path, name: str, device: str,
                 limit: int = 12) -> list[Path]:
    """The pages of `replay` as PNGs named example-NAME-SS.png (the report shows these as the episode), in
    order: the first `limit` screens and the last one, which says whether the task (`about`) was done."""
    verdict = f"{'task done' if done else 'task not done'} ({about})"
    shown = [*enumerate(pages)][:limit] + ([(len(pages) - 1, pages[-1])] if len(pages) > limit else [])
    return [render(screen, plot_dir / f"{EXAMPLE}{name}-{n:02d}.png", device,
                   f"step {n + 1}: {action}" if action else f"after {n} actions: {verdict}")
            for n, (screen, action) in shown]
