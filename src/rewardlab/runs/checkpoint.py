"""Resumable training state in safetensors and JSON: nothing is unpickled on resume.

A checkpoint holds the model weights, the AdamW moments, the scheduler's position (when there is
a scheduler), the torch random state, the step and any small JSON ``extra`` the trainer needs; the
data order is a pure function of (seed, epoch), so the step alone says where in the data to
continue. Weights that share memory (a causal LM's tied input and output embeddings) are stored once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from rewardlab.atomic import atomic_directory


@dataclass
class TrainState:
    step: int = 0
    best_value: float | None = None
    best_step: int | None = None


def save_checkpoint(
    path: Path, model: torch.nn.Module, optimizer, scheduler, state: TrainState, extra: dict[str, Any] | None = None
) -> None:
    tensors: dict[str, torch.Tensor] = {}
    opt = optimizer.state_dict()
    for index, slots in opt["state"].items():
        for key, value in slots.items():
            tensors[f"{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    meta: dict[str, Any] = {
        "train_state": vars(state),
        "param_groups": opt["param_groups"],
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "extra": extra or {},
    }
    with atomic_directory(path) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        save_file(tensors, tmp / "optimizer.safetensors")
        save_file({"torch_cpu": torch.get_rng_state()}, tmp / "rng.safetensors")
        (tmp / "state.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")


def load_checkpoint(path: Path, model: torch.nn.Module | None, optimizer, scheduler) -> TrainState:
    """Load a checkpoint into ``model`` (None: leave the weights to the caller), the optimiser and the scheduler."""
    meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
    if model is not None:
        load_model(model, str(path / "model.safetensors"), strict=True)
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in load_file(path / "optimizer.safetensors").items():
        index, key = name.split(".", 1)
        slots.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
    if scheduler is not None:
        scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(load_file(path / "rng.safetensors")["torch_cpu"])
    return TrainState(**meta["train_state"])


def checkpoint_extra(path: Path) -> dict[str, Any]:
    """The ``extra`` a checkpoint was saved with (empty for checkpoints written without one)."""
    return json.loads((path / "state.json").read_text(encoding="utf-8")).get("extra", {})


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint was saved at."""
    return int(json.loads((path / "state.json").read_text(encoding="utf-8"))["train_state"]["step"])
