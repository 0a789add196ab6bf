"""Partial fine-tuning: train only the top blocks of the backbone, and the head.

Back-propagation stops at the lowest weight that needs a gradient. Freezing the embeddings and the
lower blocks therefore skips their backward pass (about two thirds of their cost) and the
activations it would keep, so a step costs roughly ``1 + 2·k/n`` forward passes instead of 3 for
``k`` trained blocks of ``n``. The gradients of the trained weights are exactly those of full
fine-tuning at the same weights (the frozen part only supplies their inputs); what changes is that
the frozen weights stay at their pretrained values, which trades some fit for speed
(`benchmarks/RESULTS.md` measures both).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel


def blocks(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The backbone's stack of transformer blocks (BERT's ``encoder.layer``, Llama's ``layers``...)."""
    count = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise ValueError(f"{type(model).__name__}: no stack of {count} transformer blocks found")


def train_top_blocks(model: PreTrainedModel, count: int) -> int:
    """Freeze every weight registered before the top ``count`` blocks (embeddings, lower blocks);
    return how many weights still train. Weights registered after the first trained block (the
    trained blocks, final norm, pooler, head) keep training."""
    stack = blocks(model)
    if not 1 <= count <= len(stack):
        raise ValueError(f"model.train_layers must be between 1 and {len(stack)} for this backbone (got {count})")
    first = next(stack[len(stack) - count].parameters())
    for weight in model.parameters():
        if weight is first:
            break
        weight.requires_grad_(False)
    return sum(w.numel() for w in model.parameters() if w.requires_grad)
