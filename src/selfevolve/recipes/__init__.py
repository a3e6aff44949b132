"""Recipe registry.

Each recipe module has a `Config` dataclass, `run(cfg, store, progress) -> summary`,
`headline(summary) -> str` and `plots(summary, plot_dir) -> [png paths]` for the report, and
optionally `table(summary)`, a Rich table the CLI prints at the end of a run.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from selfevolve.errors import ConfigError

# imported on first use: a command pays only for the recipe it runs (gp needs no torch, say)
RECIPES: dict[str, str] = {"agentevol": "agentevol", "bstar": "bstar", "deep-ga": "deep_ga", "dpo": "dpo",
                           "finmem": "finmem", "genome": "genome", "gp": "gp", "length-gen": "length_gen",
                           "rstar": "rstar", "star": "star", "upo": "upo"}


def get_recipe(name: str) -> ModuleType:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; valid recipes: {', '.join(sorted(RECIPES))}")
    return importlib.import_module(f"selfevolve.recipes.{RECIPES[name]}")
