"""Overrides given as nested dicts, as Python users write them: ``train(model={"max_length": 64})``.

Config loading takes dotted keys (``model.max_length``); this turns a nested mapping into them the way
a YAML file is read: a dict under a key that names a nested config section is opened up, a dict
under any other key (a free-form option such as ``objective.args``) stays one value and replaces it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any


def dotted_overrides(config_type: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"model": {"max_length": 64}, "optim.lr": 1e-5}`` → ``{"model.max_length": 64, "optim.lr": 1e-5}``
    for the config dataclass ``config_type``; keys it does not know pass through, for loading to report."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        section = _section_type(config_type, key)
        if section is not None and isinstance(value, Mapping):
            flat |= {f"{key}.{k}": v for k, v in dotted_overrides(section, value).items()}
        else:
            flat[key] = value
    return flat


def _section_type(config_type: type, dotted: str) -> type | None:
    """The dataclass a dotted key names inside ``config_type``, or None where it names no section."""
    current: Any = config_type
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(current):
            return None
        names = {f.name for f in dataclasses.fields(current)}
        if part not in names:
            return None
        current = typing.get_type_hints(current)[part]
    return current if isinstance(current, type) and dataclasses.is_dataclass(current) else None
