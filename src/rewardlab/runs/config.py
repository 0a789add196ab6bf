"""Run configuration: nested dataclasses, read from YAML, overridden by ``key.sub=value``.

Every problem is collected and reported at once, so a user fixes a config in one go. A run's config
class derives from :class:`RunConfig` and lists its problems in ``problems()``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rewardlab.atomic import write_text_atomic


class ConfigError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class Checked:
    """Settings that say what is wrong with them: ``problems()`` gives one message per problem (empty
    when all is well), ``check()`` raises them all at once. Every config class of rewardlab has these two."""

    def problems(self) -> list[str]:
        raise NotImplementedError

    def not_positive_integers(self, *names: str) -> list[str]:
        """One problem for each of the fields ``names`` that is not an integer of at least 1."""
        values = {name: getattr(self, name) for name in names}
        return [
            f"{name} must be a positive integer (got {value!r})"
            for name, value in values.items()
            if not isinstance(value, int) or value < 1
        ]

    def check(self) -> None:
        """Raise :class:`ConfigError` with every problem, if there is any."""
        if found := self.problems():
            raise ConfigError(found)


class RunConfig(Checked):
    """What every run's configuration offers: checks, and saving beside the run."""

    def save(self, path: str | Path) -> None:
        """The resolved config as YAML: saved beside a run, it can be read back with ``--config``."""
        write_text_atomic(path, yaml.safe_dump(dataclasses.asdict(self), sort_keys=False))


C = TypeVar("C", bound=RunConfig)


def load_run_config(config: C, path: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()) -> C:
    """``config`` (usually the defaults), then the YAML file, then overrides (``key.sub=value`` strings
    or a mapping of dotted keys); checked, with every problem, of reading or of values, at once."""
    problems = apply_config(config, path, overrides)
    problems += config.problems()
    if problems:
        raise ConfigError(problems)
    return config


def apply_config(root: Any, path: str | Path | None, overrides: Sequence[str] | Mapping[str, Any] = ()) -> list[str]:
    """Apply a YAML file, then overrides, to the nested config dataclass ``root``; the problems found."""
    problems: list[str] = []
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            return [f"{path}: cannot read the config: {e}"]
        if not isinstance(raw, dict):
            return [f"{path}: the config must be a mapping of keys to values"]
        problems += _apply_mapping(root, raw, prefix="", source=str(path))
    if not isinstance(overrides, Mapping):
        overrides, bad = parse_overrides(overrides)
        problems += bad
    for key, value in overrides.items():
        problems += _set(root, key, value, source="override")
    return problems


def parse_overrides(items: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """``["optim.lr=1e-5", "epochs=1"]`` → values (read as YAML scalars) and any malformed items."""
    values, problems = {}, []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"override {item!r} is not key=value (e.g. optim.lr=1e-5)")
            continue
        try:
            values[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            values[key.strip()] = value
    return values, problems


def flat_options(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"optim.lr": 1e-5, "objective.args": {...}, ...}``: every leaf of a nested config dataclass
    under its dotted key; free-form dict options stay one value."""
    flat: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            flat |= flat_options(value, f"{prefix}{f.name}.")
        else:
            flat[f"{prefix}{f.name}"] = value
    return flat


def _apply_mapping(target: Any, raw: dict, prefix: str, source: str) -> list[str]:
    problems = []
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and dataclasses.is_dataclass(getattr(target, str(key), None)):
            problems += _apply_mapping(getattr(target, key), value, f"{name}.", source)
        else:
            problems += _set(target, str(key), value, source, full_name=name)
    return problems


def _set(root: Any, dotted: str, value: Any, source: str, full_name: str | None = None) -> list[str]:
    """Set ``a.b.c`` on nested dataclasses, checking the value against the field's type."""
    full_name = full_name or dotted
    *parents, leaf = dotted.split(".")
    target = root
    for part in parents:
        child = getattr(target, part, None)
        if isinstance(child, dict):  # free-form options, e.g. objective.args.label_smoothing
            child[leaf] = value
            return []
        if not dataclasses.is_dataclass(child):
            return [f"{source}: unknown key {full_name!r}"]
        target = child
    fields = {f.name: f for f in dataclasses.fields(target)}
    if leaf not in fields:
        return [f"{source}: unknown key {full_name!r} (known here: {', '.join(fields)})"]
    hint = typing.get_type_hints(type(target))[leaf]
    ok, converted = _coerce(value, hint)
    if not ok:
        return [f"{source}: {full_name} = {value!r} is not a valid {_type_name(hint)}"]
    setattr(target, leaf, converted)
    return []


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        return (type(None) in options), None
    for option in options:
        origin = typing.get_origin(option) or option
        if origin is bool and isinstance(value, bool):
            return True, value
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return True, value
        if origin is float and isinstance(value, int | float | str) and not isinstance(value, bool):
            try:  # YAML reads 1e-5 (no dot) as a string
                return True, float(value)
            except ValueError:
                continue
        if origin is str and isinstance(value, str | int | float) and not isinstance(value, bool):
            return True, str(value)
        if origin is dict and isinstance(value, dict):
            return True, dict(value)
        if origin is list and isinstance(value, list):  # e.g. data.sources: checked by the config's problems()
            return True, list(value)
    return False, None


def _type_name(hint: Any) -> str:
    return " or ".join(getattr(t, "__name__", str(t)) for t in typing.get_args(hint) or (hint,))
