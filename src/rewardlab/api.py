"""The Python entry point to training, mirroring ``rewardlab train``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlab.runs.config import flat_options, load_run_config
from rewardlab.runs.overrides import dotted_overrides
from rewardlab.runs.recipes import apply_recipe
from rewardlab.runs.sources import data_overrides
from rewardlab.training.config import TrainConfig, load_config
from rewardlab.training.cv import CVResult
from rewardlab.training.cv import cross_validate as run_cross_validation
from rewardlab.training.trainer import TrainResult
from rewardlab.training.trainer import train as run_training


def train(
    config: TrainConfig | str | Path | None = None,
    *,
    data: str | Sequence[str] | None = None,
    backbone: str | None = None,
    output_dir: str | Path | None = None,
    objective: str | None = None,
    recipe: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    **overrides: Any,
) -> TrainResult:
    """Train a reward model and evaluate it on the held-out split.

    ``config`` is a ``TrainConfig`` or a YAML file; keyword overrides use the config's dotted
    names, e.g. ``train(data="pairs.jsonl", epochs=1, **{"optim.lr": 1e-5})``, or nested dicts,
    ``train(model={"max_length": 64})``. ``data`` may list several sources (``["a.jsonl@0.5",
    "b.jsonl"]``, as ``--data`` does); ``recipe`` starts from a packaged config (``runs/recipes``),
    below ``config`` and the overrides.
    """
    shortcuts = {"model.backbone": backbone, "output_dir": output_dir, "objective.name": objective}
    values = {k: str(v) if isinstance(v, Path) else v for k, v in shortcuts.items() if v is not None}
    values |= data_overrides([data] if isinstance(data, str) else list(data or []))
    values |= dotted_overrides(TrainConfig, overrides)
    if isinstance(config, TrainConfig):
        resolved = load_run_config(apply_recipe(TrainConfig(), recipe), None, flat_options(config) | values)
    else:
        resolved = load_run_config(apply_recipe(TrainConfig(), recipe), config, values)
    return run_training(resolved, resume=resume, overwrite=overwrite)


def cross_validate(
    config: TrainConfig | str | Path | None = None,
    *,
    folds: int = 5,
    data: str | None = None,
    backbone: str | None = None,
    output_dir: str | Path = "runs/cv",
    objective: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    keep_models: bool = False,
    **overrides: Any,
) -> CVResult:
    """``rewardlab cv``: a k-fold cross-validated accuracy of the recipe ``train`` would run with the
    same arguments, each fold in ``output_dir/fold-i``, the report in ``output_dir/cv.md``."""
    shortcuts = {"data.path": data, "model.backbone": backbone, "output_dir": output_dir, "objective.name": objective}
    values = {k: str(v) if isinstance(v, Path) else v for k, v in shortcuts.items() if v is not None}
    values |= dotted_overrides(TrainConfig, overrides)
    if isinstance(config, TrainConfig):
        resolved = load_config(None, flat_options(config) | values)
    else:
        resolved = load_config(config, values)
    return run_cross_validation(resolved, folds, resume=resume, overwrite=overwrite, keep_models=keep_models)
