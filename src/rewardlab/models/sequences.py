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
    short = [i for i, t in enumerate(texts) if len(t) <= _window(room)]
    bodies: list[list[int]] = [[] for _ in texts]
    if short:  # we cut, not the tokenizer
        encoded = tokenizer([texts[i] for i in short], add_special_tokens=False, verbose=False)["input_ids"]
        for i, body in zip(short, encoded, strict=True):
            bodies[i] = body
    for i in set(range(len(texts))) - set(short):
        bodies[i] = bounded_tokens(tokenizer, texts[i], room, keep="end")
    ids, truncated = [], []
    for body in bodies:
        truncated.append(len(body) > room)
        body = body[max(0, len(body) - room) :]
        ids.append([*prefix, *body, *suffix])
    return Encoded(ids, truncated)


MARGIN_TOKENS = 16
"""Tokens tokenised beyond those kept, between the cut and the first token kept."""
CHARS_PER_TOKEN = 16
"""Characters read per token wanted, at first: a token is rarely longer (a 50 MB reply is not read whole)."""


def _window(tokens: int) -> int:
    return (tokens + MARGIN_TOKENS) * CHARS_PER_TOKEN


def bounded_tokens(tokenizer: PreTrainedTokenizerBase, text: str, tokens: int, keep: str = "end") -> list[int]:
    """The token ids of ``text`` with at least its last (``keep="end"``) or first ``tokens`` ids exact,
    reading a bounded part of the text rather than all of it (a 50 MB reply once took 6.5 GB).

    The text is cut at a whitespace ``(tokens + 16) * 16`` characters from the kept end, and the cut
    piece used only if it gives 16 tokens more than wanted: pre-tokenisers split at whitespace and
    tokens do not merge across the split, so 16 tokens away from the cut the ids are those of the
    whole text. Otherwise (long words, dense scripts) the window grows fourfold, up to the whole text.
    """
    window = _window(tokens)
    while len(text) > window:
        piece = text[-window:] if keep == "end" else text[:window]
        if keep == "end":
            space = next((i for i, c in enumerate(piece) if c.isspace()), len(piece))
            piece = piece[space:]
        else:
            space = next((i for i in range(len(piece) - 1, -1, -1) if piece[i].isspace()), -1)
            piece = piece[: space + 1] if space >= 0 else ""
        ids = tokenizer(piece, add_special_tokens=False, verbose=False)["input_ids"]
        if len(ids) >= tokens + MARGIN_TOKENS:
            return ids
        window *= 4
    return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]


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


@dataclass(frozen=True)
class Tile:
    """Sequences scored together in one forward pass of fixed shape ``rows x width``."""

    indices: list[int]
    rows: int
    width: int


TILE_TOKENS = 2048
"""Tokens in one scoring pass. Filler rows fill every pass, so a small call wastes up to a pass per width;
on a CPU 2,048-token passes already run the matrix kernels at full speed (``benchmarks/RESULTS.md``)."""


def scoring_tiles(lengths: Sequence[int], tile_tokens: int = TILE_TOKENS, granularity: int = 32) -> list[Tile]:
    """Group sequences into forward passes whose shape depends only on each sequence's own length.

    A sequence of length n is padded to the width w = n rounded up to ``granularity``, and every
    pass at width w has exactly ``tile_tokens // w`` rows (unused rows are filler). Matrix kernels,
    above all bf16 ones, round differently for different shapes; with the shape fixed by the
    sequence alone, a text gets bit-identical scores whatever else is scored with it and in
    whatever order, which batching by count (RewardBench's ``batch_size``) cannot promise.
    Sorting by width keeps padding under ``granularity`` tokens per sequence.
    """
    by_width: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        by_width.setdefault(-(-n // granularity) * granularity, []).append(i)
    tiles = []
    for width in sorted(by_width, reverse=True):
        rows = max(1, tile_tokens // width)
        members = by_width[width]
        tiles += [Tile(members[k : k + rows], rows, width) for k in range(0, len(members), rows)]
    return tiles


def pad_tile(seqs: Sequence[Sequence[int]], tile: Tile, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` of shape ``tile.rows x tile.width``; filler rows see one pad token."""
    input_ids = torch.full((tile.rows, tile.width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((tile.rows, tile.width), dtype=torch.long)
    attention_mask[:, 0] = 1
    for row, seq in enumerate(seqs):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention_mask[row, : len(seq)] = 1
    return input_ids, attention_mask
