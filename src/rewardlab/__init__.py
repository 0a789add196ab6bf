"""rewardlab: learn, measure and use reward models from human preference data.

Importing the package is cheap and changes nothing process-wide: its names load on first use
(PEP 562), so ``import rewardlab`` costs no torch import, and a program that only imports it keeps
its own environment and malloc settings. Runs apply rewardlab's CPU settings themselves
(:func:`tune_cpu`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and editors; at run time the names load on first use
    from rewardlab.api import cross_validate, train
    from rewardlab.data import PreferencePair, load_preferences
    from rewardlab.evaluate.run import compare_data, evaluate_data
    from rewardlab.evaluate.score_file import score_file
    from rewardlab.models.reward_model import RewardModel
    from rewardlab.training.config import TrainConfig
    from rewardlab.tuning import tune_cpu

_LAZY = {
    "PreferencePair": "rewardlab.data",
    "RewardModel": "rewardlab.models.reward_model",
    "TrainConfig": "rewardlab.training.config",
    "compare_data": "rewardlab.evaluate.run",
    "cross_validate": "rewardlab.api",
    "evaluate_data": "rewardlab.evaluate.run",
    "load_preferences": "rewardlab.data",
    "score_file": "rewardlab.evaluate.score_file",
    "train": "rewardlab.api",
    "tune_cpu": "rewardlab.tuning",
}
__all__ = [
    "PreferencePair",
    "RewardModel",
    "TrainConfig",
    "compare_data",
    "cross_validate",
    "evaluate_data",
    "load_preferences",
    "score_file",
    "train",
    "tune_cpu",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'rewardlab' has no attribute {name!r}")
    globals()[name] = value  # later look-ups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})


def _version() -> str:
    """The installed distribution's version; in a source tree not installed, the pyproject's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rewardlab")
    except PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0+unknown"
