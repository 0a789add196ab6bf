"""Experiment trackers (``report_to``) through accelerate's tracker classes.

A run names them in one config key, ``report_to`` (``none``, or one or more of tensorboard, wandb,
mlflow and trackio, comma-separated); each needs its own package, so a missing one is a config problem
naming the extra to install, found before any work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TRACKERS = ("tensorboard", "wandb", "mlflow", "trackio")
"""The trackers ``report_to`` may name; each is also the name of the pip extra that installs it."""


def tracker_names(report_to: str) -> list[str]:
    """``"tensorboard, wandb"`` → ``["tensorboard", "wandb"]``; ``none`` or empty → ``[]``."""
    names = [name.strip().lower() for name in report_to.split(",")]
    return list(dict.fromkeys(name for name in names if name and name != "none"))


def available_trackers() -> set[str]:
    """The trackers whose package is installed, as accelerate finds them."""
    from accelerate.tracking import get_available_trackers

    return {str(tracker) for tracker in get_available_trackers()}


def report_to_problems(report_to: str) -> list[str]:
    """One line per unknown or uninstalled tracker."""
    names = tracker_names(report_to)
    unknown = [name for name in names if name not in TRACKERS]
    problems = [f"report_to: unknown tracker {name!r} (choose none or {', '.join(TRACKERS)})" for name in unknown]
    wanted = [name for name in names if name in TRACKERS]
    if wanted:
        installed = available_trackers()
        problems += [
            f"report_to={name} needs the {name} package: pip install 'rewardlab[{name}]'"
            for name in wanted
            if name not in installed
        ]
    return problems


def start_trackers(names: Sequence[str], folder: Path, project: str, options: Mapping[str, Any]) -> list[Any]:
    """Started accelerate trackers, one per name, with the run's options recorded as hyperparameters;
    those that write files write them under ``folder/<tracker>`` (``folder/tensorboard/<project>``)."""
    if not names:
        return []
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, filter_trackers

    trackers = []
    for name in filter_trackers(list(names), logging_dir=folder):
        cls = LOGGER_TYPE_TO_CLASS[str(name)]
        tracker = cls(project, folder / str(name)) if cls.requires_logging_directory else cls(project)
        tracker.start()
        tracker.store_init_configuration(hyperparameters(options))
        trackers.append(tracker)
    return trackers


def hyperparameters(options: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """Options as trackers take them: plain scalars, anything else (None, a dict of loss options) as text."""
    return {k: v if isinstance(v, bool | int | float | str) else str(v) for k, v in options.items()}
