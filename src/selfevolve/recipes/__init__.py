"""Recipe registry.

Each recipe module has a `Config` dataclass, `run(cfg, store, progress) -> summary`,
`headline(summary) -> str` and `plots(summary, plot_dir) -> [png paths]` for the report, and
optionally `table(summary)`, a Rich table the CLI prints at the end of a run.
"""

from __future__ import annotations

from types import ModuleType

from selfevolve.errors import ConfigError
from selfevolve.recipes import deep_ga, gp, length_gen

RECIPES: dict[str, ModuleType] = {"deep-ga": deep_ga, "gp": gp, "length-gen": length_gen}


def get_recipe(name: str) -> ModuleType:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; valid recipes: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]
