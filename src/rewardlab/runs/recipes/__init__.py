"""Named recipes: packaged YAML configs a run starts from (``rewardlab train --recipe NAME``).

A recipe is an ordinary config file shipped in this folder, its first line a ``# `` comment that
describes it in one line. It is applied on top of the defaults and below ``--config`` and the
overrides, so ``--recipe general epochs=2`` is the general recipe with two epochs.

A recipe may ship its measured cross-validated accuracy beside it, ``NAME.cv.json`` (written by
``benchmarks/ship_recipe_estimate.py`` from a ``rewardlab cv`` folder): the estimate, how it was
measured, and the config it was measured with. A run whose settings are that config's gets the
estimate in its report beside its own single held-out split (``recipe_estimate``); change a setting
and the estimate no longer applies, so it is not shown.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from rewardlab.runs.config import ConfigError, apply_config

C = TypeVar("C")


def recipes_folder() -> Path:
    """Where the packaged recipes lie."""
    return Path(str(resources.files("rewardlab.runs.recipes")))


def recipe_names() -> list[str]:
    """The packaged recipes, by name (each ``NAME.yaml``)."""
    return sorted(path.stem for path in recipes_folder().glob("*.yaml"))


def recipe_path(name: str) -> Path:
    """The YAML file of recipe ``name``; an unknown name fails with the known ones listed."""
    path = recipes_folder() / f"{name}.yaml"
    if name not in recipe_names():
        raise ValueError(f"unknown recipe {name!r} (known: {', '.join(recipe_names())})")
    return path


def recipe_description(name: str) -> str:
    """The recipe's one-line description: its first line, a ``# `` comment."""
    first = recipe_path(name).read_text(encoding="utf-8").partition("\n")[0]
    return first.removeprefix("#").strip()


def apply_recipe(config: C, name: str | None) -> C:
    """``config`` (usually the defaults) with recipe ``name`` applied; unchanged for None."""
    if name is None:
        return config
    if problems := apply_config(config, recipe_path(name)):
        raise ConfigError(problems)
    return config


ESTIMATE_SUFFIX = ".cv.json"
NOT_SETTINGS = frozenset(
    {"output_dir", "progress", "num_threads", "report_to", "tensorboard", "log_every", "save_every"}
)
"""Top-level config keys that say where and how a run reports, not what it trains: ignored when a
run's config is matched against a recipe's measured one."""


def comparable_settings(config: Any) -> dict[str, Any]:
    """A config (dataclass or the dict of one) without the keys of ``NOT_SETTINGS``."""
    values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return {k: v for k, v in values.items() if k not in NOT_SETTINGS}


def recipe_estimate(config: Any) -> dict[str, Any] | None:
    """The shipped cross-validated estimate (``NAME.cv.json``) whose measured config has ``config``'s
    settings, with the recipe's ``name`` added; None when no recipe's estimate applies."""
    settings = comparable_settings(config)
    for path in sorted(recipes_folder().glob(f"*{ESTIMATE_SUFFIX}")):
        estimate = json.loads(path.read_text(encoding="utf-8"))
        if comparable_settings(estimate["config"]) == settings:
            return {"recipe": path.name.removesuffix(ESTIMATE_SUFFIX), **estimate}
    return None
