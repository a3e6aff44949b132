"""Recipe registry: each module here is one method and ends with `RECIPE = Recipe(...)` (see
`selfevolve.recipe`); commands find recipes through this registry alone."""

from __future__ import annotations

import dataclasses
import importlib

from selfevolve.errors import ConfigError
from selfevolve.recipe import Recipe

# imported on first use: a command pays only for the recipe it runs (gp needs no torch, say)
RECIPES: dict[str, str] = {"agentevol": "agentevol", "auto-evolve": "auto_evolve", "bstar": "bstar",
                           "deep-ga": "deep_ga", "dpo": "dpo", "evolve-program": "evolve_program",
                           "finmem": "finmem", "genome": "genome", "gp": "gp", "graph-reasoning": "graph_reasoning",
                           "grpo": "grpo", "homeostatic": "homeostatic", "length-gen": "length_gen",
                           "long-memory": "long_memory", "longpo": "longpo", "mobile-agent-e": "mobile_agent_e",
                           "mobilesteward": "mobilesteward",
                           "mstar": "mstar", "pasta": "pasta",
                           "priming": "priming", "psec": "psec", "r1t1": "r1t1", "rstar": "rstar", "score": "score",
                           "self": "self_refine", "star": "star", "symbolic": "symbolic", "upo": "upo",
                           "webrl": "webrl"}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; valid recipes: {', '.join(sorted(RECIPES))}")
    module = importlib.import_module(f"selfevolve.recipes.{RECIPES[name]}")
    return dataclasses.replace(module.RECIPE, name=name, doc=(module.__doc__ or "").strip())


def with_capability(capability: str) -> list[str]:
    """The recipes that have an optional capability (evaluate_file, export, compare, ...)."""
    return [name for name in sorted(RECIPES) if getattr(get_recipe(name), capability) is not None]
