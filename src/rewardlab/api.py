"""The Python entry point to training, mirroring ``rewardlab train``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rewardlab.runs.config import flat_options
from rewardlab.runs.overrides import dotted_overrides
from rewardlab.training.config import TrainConfig, load_config
from rewardlab.training.trainer import TrainResult
from rewardlab.training.trainer import train as run_training


def train(
    config: TrainConfig | str | Path | None = None,
    *,
    data: str | None = None,
    backbone: str | None = None,
    output_dir: str | Path | None = None,
    objective: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    **overrides: Any,
) -> TrainResult:
    """Train a reward model and evaluate it on the held-out split.

    ``config`` is a ``TrainConfig`` or a YAML file; keyword overrides use the config's dotted
    names, e.g. ``train(data="pairs.jsonl", epochs=1, **{"optim.lr": 1e-5})``, or nested dicts,
    ``train(model={"max_length": 64})``.
    """
    shortcuts = {"data.path": data, "model.backbone": backbone, "output_dir": output_dir, "objective.name": objective}
    values = {k: str(v) if isinstance(v, Path) else v for k, v in shortcuts.items() if v is not None}
    values |= dotted_overrides(TrainConfig, overrides)
    if isinstance(config, TrainConfig):
        resolved = load_config(None, flat_options(config) | values)
    else:
        resolved = load_config(config, values)
    return run_training(resolved, resume=resume, overwrite=overwrite)
