"""rewardlab's decoder training attention equals transformers' eager attention, forward and backward."""

from __future__ import annotations

import pytest
import torch
from transformers.models.llama.modeling_llama import eager_attention_forward

from rewardlab.models.attention import grouped_attention


@pytest.mark.parametrize("mask_kind", ["boolean", "additive", "none"])
def test_grouped_attention_equals_eager_attention_with_shared_key_value_heads(mask_kind):
    """6 query heads over 2 key/value heads, a causal mask with padded keys: outputs and gradients
    of every input match transformers' eager attention (which copies the shared heads) in fp32."""
    torch.manual_seed(0)
    rows, heads, groups, length, dim = 2, 6, 2, 7, 8
    inputs = [torch.randn(rows, h, length, dim, requires_grad=True) for h in (heads, groups, groups)]
    allowed = torch.ones(length, length, dtype=torch.bool).tril().repeat(rows, 1, 1, 1)
    allowed[1, 0, :, 5:] = False  # the second row's last two keys are padding
    allowed[1, 0, 5:, 0] = True  # and its padding queries attend somewhere
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    mask = {"boolean": allowed, "additive": additive, "none": None}[mask_kind]
    module = torch.nn.Module()
    module.num_key_value_groups = heads // groups
    weights = torch.randn(rows, length, heads, dim)

    results = []
    eager_mask = None if mask is None else additive
    for attention, its_mask in ((grouped_attention, mask), (eager_attention_forward, eager_mask)):
        output, _ = attention(module, *inputs, its_mask, scaling=dim**-0.5)
        (output * weights).sum().backward()
        results.append((output.detach(), [x.grad.clone() for x in inputs]))
        for x in inputs:
            x.grad = None
    (ours, our_grads), (eager, eager_grads) = results
    assert ours.shape == (rows, length, heads, dim)
    assert torch.allclose(ours, eager, atol=1e-6)
    for mine, theirs in zip(our_grads, eager_grads, strict=True):
        assert theirs.abs().max() > 0 and torch.allclose(mine, theirs, atol=1e-5)
