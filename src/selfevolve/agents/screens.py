"""A PhoneSim or WebSim observation drawn as a screen (a PNG for the report: a person would rather look at
a screen than read its widget list): a phone frame or a browser window, one row per widget, buttons
and links boxed, fields shown with what was typed."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

ROW = re.compile(r"^\s+\[(?P<id>[^\]]+)\] (?P<kind>\w+): ?(?P<label>.*)$")
COLOURS = {"button": "#dbe9ff", "link": "#e8f4e8", "item": "#f4f4f4", "field": "#ffffff", "text": None}


def render(observation: str, path: Path, device: str = "phone") -> Path:
    """Draw the observation's task, screen name and widgets; returns the PNG's path."""
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path
