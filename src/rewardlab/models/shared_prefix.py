"""Score both replies of a pair in one causal pass that reads their shared prompt once.

Chosen and rejected share the whole conversation but the last reply (in HH-RLHF 35 % of all
tokens are such a shared prefix). In a causal decoder a token only sees the tokens before it, so
the prompt's hidden states are the same whichever reply follows: one row ``prompt + chosen +
rejected`` with a mask that hides the chosen reply from the rejected one, and position ids that
restart the rejected reply right after the prompt, gives exactly the two separate rewards.

The prefix is found on the two token sequences, not taken from the records, so a pair whose sides
have different prompts (``PreferencePair.rejected_prompt``) packs exactly too: the row reads once
only the tokens both sequences start with (the prompts' common start, or nothing), and each side
keeps the rest of its own prompt before its reply.

This is not exact for bidirectional encoders (BERT, MiniLM): there every prompt token attends to
the reply, so the prompt's states differ between the two sides and must be computed twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PackedPairs:
    """One row per pair: ``input_ids`` (right-padded), ``position_ids``, a boolean 4-D attention mask
    (row, 1, query, key), and the positions of the last token of each reply (where rewards are read)."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    chosen_last: torch.Tensor
    rejected_last: torch.Tensor
    real_tokens: int


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def split_pair(chosen: Sequence[int], rejected: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """(shared prefix, chosen suffix, rejected suffix), each suffix at least one token long.

    The prefix is found on token ids, so it is exact whatever the tokenizer does at the boundary.
    One token is always left to each reply: its last token is where the reward is read.
    """
    shared = min(common_prefix_length(chosen, rejected), len(chosen) - 1, len(rejected) - 1)
    return list(chosen[:shared]), list(chosen[shared:]), list(rejected[shared:])


def pack_pairs(chosen: Sequence[Sequence[int]], rejected: Sequence[Sequence[int]], pad_id: int) -> PackedPairs:
    """Pack each (chosen, rejected) token pair into ``prefix + chosen suffix + rejected suffix``."""
    rows, positions, spans = [], [], []
    for c, r in zip(chosen, rejected, strict=True):
        prefix, c_tail, r_tail = split_pair(c, r)
        p = len(prefix)
        rows.append(prefix + c_tail + r_tail)
        positions.append(list(range(p + len(c_tail))) + list(range(p, p + len(r_tail))))
        spans.append((p, len(c_tail), len(r_tail)))
    width = max(len(row) for row in rows)
    n = len(rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, 1, width, width), dtype=torch.bool)
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    for i, (row, pos, (p, c, r)) in enumerate(zip(rows, positions, spans, strict=True)):
        length = p + c + r
        input_ids[i, :length] = torch.tensor(row)
        position_ids[i, :length] = torch.tensor(pos)
        block = causal[:length, :length].clone()
        block[p + c :, p : p + c] = False  # the rejected reply does not see the chosen one
        mask[i, 0, :length, :length] = block
        mask[i, 0, length:, 0] = True  # padding rows attend somewhere, so softmax stays finite
    chosen_last = torch.tensor([p + c - 1 for p, c, _ in spans])
    rejected_last = torch.tensor([p + c + r - 1 for p, c, r in spans])
    return PackedPairs(input_ids, position_ids, mask, chosen_last, rejected_last, sum(map(len, rows)))


def packed_pair_rewards(model: torch.nn.Module, packed: PackedPairs) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards of chosen and rejected from one pass of a ``*ForSequenceClassification`` decoder.

    Runs the backbone on the packed rows and applies the classification head (``score``) at the
    last token of each reply, which is what the model's own forward does for a single sequence.
    """
    weight = next(model.parameters())
    device = weight.device
    mask = packed.attention_mask.to(device)
    if model.config._attn_implementation == "eager":  # eager attention adds the mask to the logits
        mask = torch.zeros(mask.shape, dtype=weight.dtype, device=device).masked_fill_(
            ~mask, torch.finfo(weight.dtype).min
        )
    hidden = model.base_model(
        input_ids=packed.input_ids.to(device),
        position_ids=packed.position_ids.to(device),
        attention_mask=mask,
    ).last_hidden_state
    rows = torch.arange(hidden.shape[0], device=device)
    chosen = model.score(hidden[rows, packed.chosen_last.to(device)]).squeeze(-1).float()
    rejected = model.score(hidden[rows, packed.rejected_last.to(device)]).squeeze(-1).float()
    return chosen, rejected
