"""Recipe configs: one dataclass per recipe, loaded from TOML plus `--set key=value` overrides.

The dataclass is the single schema: its defaults, field docstrings (shown by `selfevolve
list`), types (used to parse overrides) and `__post_init__` checks (ranges) live together.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import tomllib
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from selfevolve.errors import ConfigError

C = TypeVar("C")


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Turn a TOML value or an override string into the field's declared type."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        (item,) = set(typing.get_args(annotation)) - {Ellipsis}
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return origin(_coerce(name, v, item) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, str):
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise ConfigError(f"{name}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        if annotation is int and value != int(value):
            raise ConfigError(f"{name}: expected a whole number, got {value!r}")
        return annotation(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected text, got {value!r}")
        return value
    raise TypeError(f"unsupported config field type {annotation!r} for {name}")


def build_config(cls: type[C], values: dict[str, Any]) -> C:
    """Instantiate `cls` from raw values; unknown keys and bad types raise ConfigError. A `preset` names
    a set of values from the class's PRESETS that the given values override."""
    presets = getattr(cls, "PRESETS", {})
    if presets and "preset" in values:
        if values["preset"] not in presets:
            raise ConfigError(f"preset must be one of {', '.join(presets)}, got {values['preset']!r}")
        values = {**presets[values["preset"]], **values}
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]!r}; valid keys: {', '.join(sorted(fields))}")
    kwargs = {k: _coerce(k, v, hints[k]) for k, v in values.items()}
    for name in ("seed", *(k for k in kwargs if k.endswith("_seed"))):
        if isinstance(kwargs.get(name), int) and kwargs[name] < 0:  # numpy and torch seeds are unsigned
            raise ConfigError(f"{name} must be >= 0, got {kwargs[name]}")
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def check_min(cfg: Any, minimum: int, *names: str) -> None:
    """Raise ValueError naming the first of `names` whose value is below `minimum` (for __post_init__)."""
    for name in names:
        if getattr(cfg, name) < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {getattr(cfg, name)}")


def check_some_of(cfg: Any, name: str, choices: tuple[str, ...]) -> None:
    """Raise ValueError unless the value of `name` is a non-empty tuple of distinct names from `choices`."""
    value = getattr(cfg, name)
    if not value or set(value) - set(choices) or len(set(value)) != len(value):
        raise ValueError(f"{name} must be distinct names from {', '.join(choices)}, got {value}")


def check_one_of(cfg: Any, name: str, choices: tuple[str, ...]) -> None:
    """Raise ValueError unless the value of `name` is one of `choices` (for __post_init__)."""
    if getattr(cfg, name) not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {getattr(cfg, name)!r}")


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def load_config(cls: type[C], file: Path | None = None, overrides: list[str] = ()) -> C:
    values: dict[str, Any] = {}
    if file is not None:
        try:
            values = tomllib.loads(Path(file).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {file} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {file} is not valid TOML: {err}") from None
    values.update(parse_overrides(list(overrides)))
    return build_config(cls, values)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return {f.name: (list(v) if isinstance(v := getattr(cfg, f.name), tuple) else v)
            for f in dataclasses.fields(cfg) if f.init}


def config_to_toml(cfg: Any) -> str:
    return tomli_w.dumps(config_to_dict(cfg))


def field_docs(cls: type) -> dict[str, str]:
    """The one-line docstring under each field, read from the class source (base classes first)."""
    docs: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        body = ast.parse(inspect.getsource(klass)).body[0].body  # type: ignore[attr-defined]
        for node, after in zip(body, body[1:], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = after.value.value.strip()  # type: ignore[union-attr]
    return docs


__all__ = ["build_config", "check_min", "config_to_dict", "config_to_toml", "field_docs", "load_config",
           "parse_overrides"]
