"""Which weight files a model folder holds: rewardlab loads safetensors and refuses pickled weights.

A pickled checkpoint (``pytorch_model.bin``, ``*.pt``...) runs code when it is unpickled; torch's
``weights_only`` default stops the known tricks, but a model folder is often downloaded from a
stranger, so rewardlab never unpickles one at all. Every loader checks the folder with
:func:`require_safetensors` before transformers opens it, and passes ``use_safetensors=True``
besides, so a refused folder is told apart from a missing one and the user reads how to convert it.
"""

from __future__ import annotations

from pathlib import Path

PICKLED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
"""File endings of pickled tensors (torch.save and the pickle module)."""


class PickledWeightsError(ValueError):
    """A model folder whose weights are pickled, with the command that converts them."""


def pickled_files(folder: Path) -> list[str]:
    """Names of the pickled files in ``folder`` (weights and their shard indexes), sorted."""
    return sorted(
        p.name for p in folder.iterdir() if p.name.endswith(PICKLED_SUFFIXES) or p.name.endswith(".bin.index.json")
    )


SAFETENSORS_FILES = ("model.safetensors", "model.safetensors.index.json")
"""What transformers reads with ``use_safetensors=True`` (whole, or sharded with an index)."""


def require_safetensors(folder: str | Path, shown: str | None = None, auto_class: str = "AutoModelForCausalLM") -> Path:
    """``folder``, once sure its weights are safetensors; ``shown`` is how the user named it.

    transformers prefers ``model.safetensors`` to ``pytorch_model.bin`` when both are there, so a
    folder holding both is accepted. Nothing is opened: only file names are read.
    """
    folder = Path(folder)
    name = shown or str(folder)
    if not folder.is_dir() or any((folder / f).is_file() for f in SAFETENSORS_FILES):
        return folder  # not a folder: the loader says so; safetensors present: only they are read
    pickled = pickled_files(folder)
    if not pickled:
        raise PickledWeightsError(f"{name} holds no model.safetensors; rewardlab loads only safetensors weights")
    raise PickledWeightsError(
        f"{name} holds pickled weights ({', '.join(pickled)}); rewardlab loads only safetensors: convert with "
        f"`python -c \"from transformers import {auto_class} as M; M.from_pretrained('{name}')"
        ".save_pretrained('OUT', safe_serialization=True)\"` in an environment you trust"
    )
