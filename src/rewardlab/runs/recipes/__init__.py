"""Named recipes: packaged YAML configs a run starts from (``rewardlab train --recipe NAME``).

A recipe is an ordinary config file shipped in this folder, its first line a ``# `` comment that
describes it in one line. It is applied on top of the defaults and below ``--config`` and the
overrides, so ``--recipe general epochs=2`` is the general recipe with two epochs.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TypeVar

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
