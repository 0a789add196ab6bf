"""Decoder attention for training on CPUs: matrix products, one kept copy of the probabilities.

PyTorch's fused CPU attention has a fast forward but, with a mask such as the packed pairs', a slow
backward: on SmolLM2's shapes eager matrix products run forward and backward about 1.4x faster
(``benchmarks/attention.py``). transformers' eager attention, though, copies each key and value
head for every query head that shares it (grouped-query attention) and keeps the probabilities
twice for the backward, the fp32 softmax and its bf16 cast: SmolLM2's training peak passed TRL's.
Here the query heads that share a key/value head are stacked into one product, and the softmax
runs in the compute dtype (PyTorch computes a bf16 softmax in fp32 and rounds its output once, as
the eager cast does), so one bf16 copy of the probabilities is kept. Registered with transformers
under ``NAME``; encoders keep transformers' eager attention, which already keeps one copy.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.masking_utils import eager_mask

NAME = "rewardlab_grouped"


def grouped_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """softmax(q kᵀ · scaling + mask) v, for query (batch, heads, L, d) and key, value (batch, kv heads, S, d).

    ``attention_mask`` (batch, 1, L, S) is additive (transformers' eager mask) or boolean (True:
    attend). Returns (batch, L, heads, d), as transformers' attention functions do.
    """
    batch, heads, length, dim = query.shape
    groups, keys = key.shape[1], key.shape[2]
    share = heads // groups  # query heads per key/value head, stacked as rows of one product
    scores = torch.matmul(query.reshape(batch, groups, share * length, dim), key.transpose(2, 3))
    scores = scores.view(batch, groups, share, length, keys) * scaling
    if attention_mask is not None:
        mask = attention_mask[:, :, None, :, :keys]
        lowest = torch.finfo(scores.dtype).min
        scores = scores.masked_fill(~mask, lowest) if mask.dtype == torch.bool else scores + mask
    probabilities = torch.softmax(scores, dim=-1)
    if dropout > 0.0 and module.training:
        probabilities = torch.nn.functional.dropout(probabilities, p=dropout)
    output = torch.matmul(probabilities.view(batch, groups, share * length, keys), value)
    return output.view(batch, heads, length, dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, grouped_attention)
AttentionMaskInterface.register(NAME, eager_mask)
