"""The typed interface between a recipe and the commands: run, report, eval, export, compare.

A recipe module ends with `RECIPE = Recipe(...)`; `cli.py` and `report.py` know recipes only
through it (and the registry in `selfevolve.recipes`), never by name. Optional capabilities are
None where a recipe does not have them, and the commands say which recipes do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def no_name(cfg: Any) -> str:
    return ""


@dataclass(frozen=True)
class Recipe:
    Config: type
    """The recipe's config dataclass (defaults, docs, checks)."""
    run: Callable[..., dict]
    """run(cfg, store, progress) -> summary: a new run, or the rest of one (resume)."""
    headline: Callable[[dict], str]
    """One sentence of a finished run's result."""
    plots: Callable[[dict, Path], list[Path]]
    """plots(summary, plot_dir) -> PNG paths for the report."""
    run_name: Callable[[Any], str] = no_name
    """What the default run directory is named after besides recipe and seed (the task, the env)."""
    table: Callable[[dict], Any] | None = None
    """A Rich table printed after a run."""
    evaluate: Callable[..., tuple[str, dict[str, float]]] | None = None
    """`eval DIR`: evaluate(store, cfg, **options) -> (title, {column: value})."""
    evaluate_file: Callable[..., dict] | None = None
    """`eval DIR --file F`: evaluate_file(store, cfg, problems, strategy, n) -> {"metrics", "verdicts"}."""
    export: Callable[..., Path] | None = None
    """`export DIR --hf OUT`: export(store, cfg, out, overwrite) -> OUT, a Hugging Face model directory."""
    compare: Callable[[dict], tuple[dict[str, str], list[float]]] | None = None
    """`compare`: compare(summary) -> (one table row, a learning curve)."""
    policy: Callable[[Any], Any] | None = None
    """policy(cfg) -> the run's language model as its config builds it (a pretrained base, LoRA
    adapters) with its tokenizer: `serve` and the LM interface load the last round into it."""
    name: str = ""
    doc: str = ""
