"""LoRA adapters for policy training (``peft``), and the plain model a run saves from them.

LoRA (Hu et al. 2021) freezes each pretrained weight W₀ and learns a low-rank update,
``h = W₀x + (α/r)·B·A·x`` with A (r × k), B (d × r) and B = 0 at the start, so the adapted model
starts equal to its base. Only A and B are trained: the optimiser keeps moments for a few percent
of the weights, and the base itself, run with the adapters switched off, is the DPO reference,
so no second copy of the model is held.

A run saves the merged model (W₀ + (α/r)·B·A in every adapted layer) as a plain causal LM, which
loads with ``AutoModelForCausalLM`` and needs no ``peft``.
"""

from __future__ import annotations

import copy
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class LoraSettings:
    enabled: bool = False
    """Train LoRA adapters instead of every weight; the saved policy is the merged model."""
    r: int = 16
    """Rank of each update B·A."""
    alpha: float = 32.0
    """Scale: the update is (alpha / r)·B·A."""
    target_modules: str = "all-linear"
    """Comma-separated module names (q_proj,v_proj,...) or all-linear (every linear layer but the output head)."""

    def problems(self) -> list[str]:
        found = []
        if self.r < 1:
            found.append(f"r must be >= 1 (got {self.r})")
        if not self.alpha > 0:
            found.append(f"alpha must be > 0 (got {self.alpha})")
        if not self.target_modules.strip():
            found.append("target_modules must name at least one module, or be all-linear")
        return found


def add_lora(model: torch.nn.Module, settings: LoraSettings) -> torch.nn.Module:
    """``model`` wrapped with fresh adapters (B = 0, so its outputs are unchanged); the base is frozen."""
    from peft import LoraConfig, get_peft_model

    names = settings.target_modules.strip()
    targets: str | list[str] = names if names == "all-linear" else [n.strip() for n in names.split(",") if n.strip()]
    config = LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM"
    )
    try:
        return get_peft_model(model, config)
    except ValueError as e:  # peft names the target modules it could not find
        raise ValueError(f"lora.target_modules: {e}") from None


def is_lora(model: torch.nn.Module) -> bool:
    """True for a ``peft`` model (without importing peft when it is not in use)."""
    return type(model).__module__.startswith("peft.")


def adapters_off(model: torch.nn.Module) -> AbstractContextManager[Any]:
    """Run a LoRA model as its base (the reference); a no-op for any other model."""
    return model.disable_adapter() if is_lora(model) else nullcontext()


def merged_and_base(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Two plain causal LMs from a trained LoRA model: the merged policy and the untouched base.

    The merge works on a copy; the base is ``model`` with the adapter layers removed (its weights
    were never changed), so ``model`` itself must not be used afterwards.
    """
    merged = copy.deepcopy(model).merge_and_unload()
    base = model.unload()
    return merged, base
