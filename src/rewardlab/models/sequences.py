"""Token sequences: left truncation that keeps special tokens, and padding into a batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Encoded:
    """Token ids per text, and which texts lost tokens to ``max_length``."""

    ids: list[list[int]]
    truncated: list[bool]


def encode_texts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, add_special_tokens: bool
) -> Encoded:
    """Tokenise ``texts``, dropping tokens from the left when a text is longer than ``max_length``.

    The end of a conversation (the reply being judged) is what a reward model must see, so the
    oldest turns go first. Special tokens ([CLS]/[SEP], BOS) are added after cutting, so they
    survive; a chat template's own markers are part of the text and are cut like words.
    """
    prefix, suffix = special_tokens_around(tokenizer) if add_special_tokens else ([], [])
    room = max_length - len(prefix) - len(suffix)
    if room < 1:
        raise ValueError(f"max_length {max_length} leaves no room for text after special tokens")
    bodies = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    ids, truncated = [], []
    for body in bodies:
        truncated.append(len(body) > room)
        body = body[max(0, len(body) - room) :]
        ids.append([*prefix, *body, *suffix])
    return Encoded(ids, truncated)


def special_tokens_around(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after one text (e.g. [CLS] ... [SEP], or BOS ...).

    Read off by tokenising a probe word with and without special tokens, which works for any
    tokenizer without knowing its post-processor.
    """
    bare = tokenizer("reward", add_special_tokens=False)["input_ids"]
    full = tokenizer("reward", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise ValueError(f"cannot tell where {type(tokenizer).__name__} puts its special tokens")


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence; returns ``(input_ids, attention_mask)``."""
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention_mask[row, : len(seq)] = 1
    return input_ids, attention_mask


def length_sorted_batches(lengths: Sequence[int], max_batch: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first.

    Sorting by length means each batch pads to nearly its own length, so little work is spent
    on padding; ``max_tokens`` caps ``batch size x longest length`` to bound memory.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        if current and (len(current) >= max_batch or (max_tokens and width * (len(current) + 1) > max_tokens)):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
