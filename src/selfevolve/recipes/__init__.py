"""Recipe registry: each recipe module has a `Config` dataclass and `run(cfg, store, progress)`."""

from __future__ import annotations

from types import ModuleType

from selfevolve.errors import ConfigError
from selfevolve.recipes import length_gen

RECIPES: dict[str, ModuleType] = {"length-gen": length_gen}


def get_recipe(name: str) -> ModuleType:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; valid recipes: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]
