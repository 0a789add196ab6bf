"""Log-probabilities of replies given their prompts under a causal LM, for preference pairs.

Chosen and rejected share their prompt, and in a causal decoder a token only sees the tokens
before it, so one row ``prompt + chosen + rejected`` reads the prompt once and gives both
replies' log-probabilities exactly, provided the rejected reply cannot see the chosen one (a
4-D mask) and its position ids restart right after the prompt (as in
:mod:`rewardlab.models.shared_prefix`, which does the same for reward heads). The first token of
each reply is predicted from the prompt's last position, so both read their first log-probability
there. Several pairs may share a row (``max_row_tokens``): the mask is block-diagonal and the
position ids restart for each pair, so rows need almost no padding.

Logits are only computed where a reply token is predicted (the model's ``logits_to_keep``), which
spares the (tokens × vocabulary) logits of the prompt. :func:`plain_pair_logps` is the
straightforward two-sequence computation, kept as the reference the packed one is tested against.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PairTokens:
    """Token ids of each pair's prompt and of its two replies (the reply ends with its eos token)."""

    prompts: list[list[int]]
    chosen: list[list[int]]
    rejected: list[list[int]]

    def __post_init__(self) -> None:
        if not len(self.prompts) == len(self.chosen) == len(self.rejected):
            raise ValueError(
                f"prompts, chosen and rejected must have one entry per pair "
                f"(got {len(self.prompts)}, {len(self.chosen)}, {len(self.rejected)})"
            )
        for name, seqs in (("prompt", self.prompts), ("chosen", self.chosen), ("rejected", self.rejected)):
            empty = [i for i, seq in enumerate(seqs) if not seq]
            if empty:
                raise ValueError(
                    f"pair {empty[0]}: the {name} has no tokens (each reply's first token is predicted from the "
                    "prompt's last one, so prompts and replies need at least one token; a chat template's "
                    "assistant header is enough of a prompt)"
                )

    def __len__(self) -> int:
        return len(self.prompts)

    def select(self, indices: Sequence[int]) -> PairTokens:
        return PairTokens(
            [self.prompts[i] for i in indices], [self.chosen[i] for i in indices], [self.rejected[i] for i in indices]
        )


@dataclass(frozen=True)
class PairLogps:
    """Per-pair summed log-probabilities (B,) and per-token ones (B, T), right-padded with zeros."""

    chosen_logps: Tensor
    rejected_logps: Tensor
    chosen_token_logps: Tensor
    rejected_token_logps: Tensor
    chosen_token_mask: Tensor
    rejected_token_mask: Tensor

    @property
    def chosen_lengths(self) -> Tensor:
        return self.chosen_token_mask.sum(-1).to(self.chosen_logps.dtype)

    @property
    def rejected_lengths(self) -> Tensor:
        return self.rejected_token_mask.sum(-1).to(self.rejected_logps.dtype)

    def batch_fields(self, prefix: str = "") -> dict[str, Tensor]:
        """The fields a policy loss reads (:mod:`rewardlab.policy.registry`); ``prefix="reference_"``
        names them as the reference model's (masks and lengths are the same for both models and keep
        their names)."""
        return {
            f"{prefix}chosen_logps": self.chosen_logps,
            f"{prefix}rejected_logps": self.rejected_logps,
            f"{prefix}chosen_token_logps": self.chosen_token_logps,
            f"{prefix}rejected_token_logps": self.rejected_token_logps,
            "chosen_token_mask": self.chosen_token_mask,
            "rejected_token_mask": self.rejected_token_mask,
            "chosen_lengths": self.chosen_lengths,
            "rejected_lengths": self.rejected_lengths,
        }


@dataclass(frozen=True)
class PackedPreferences:
    """Rows of packed pairs, and where each reply token's log-probability is read.

    ``keep`` (R, W) marks the positions whose logits are needed. ``*_index`` (B, L) index the kept
    positions in row-major order, ``*_targets`` (B, L) are the reply tokens predicted there, and
    ``*_mask`` (B, L) marks real reply tokens.
    """

    input_ids: Tensor
    position_ids: Tensor
    attention_mask: Tensor
    keep: Tensor
    chosen_index: Tensor
    chosen_targets: Tensor
    chosen_mask: Tensor
    rejected_index: Tensor
    rejected_targets: Tensor
    rejected_mask: Tensor
    real_tokens: int


def assign_rows(lengths: Sequence[int], max_row_tokens: int | None) -> list[list[int]]:
    """Pairs per row under a token budget, by first-fit decreasing (longest pair first, into the
    first row with room), which keeps rows nearly full and so the padding small.

    ``None`` puts each pair in its own row; a pair longer than the budget gets a row to itself.
    The order of rows and of pairs within them does not change any result.
    """
    if max_row_tokens is None:
        return [[i] for i in range(len(lengths))]
    if max_row_tokens < 1:
        raise ValueError(f"max_row_tokens must be >= 1 or None (got {max_row_tokens})")
    rows: list[list[int]] = []
    used: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, u in enumerate(used) if u + lengths[i] <= max_row_tokens), None)
        if row is None:
            rows.append([i])
            used.append(lengths[i])
        else:
            rows[row].append(i)
            used[row] += lengths[i]
    return rows


def pack_preferences(tokens: PairTokens, pad_id: int, max_row_tokens: int | None = None) -> PackedPreferences:
    """Pack each pair as ``prompt + chosen + rejected`` into rows (see the module docstring)."""
    lengths = [len(p) + len(c) + len(r) for p, c, r in zip(tokens.prompts, tokens.chosen, tokens.rejected, strict=True)]
    rows = assign_rows(lengths, max_row_tokens)
    width = max(sum(lengths[i] for i in row) for row in rows)
    n_rows = len(rows)
    input_ids = torch.full((n_rows, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((n_rows, width), dtype=torch.long)
    mask = torch.zeros((n_rows, 1, width, width), dtype=torch.bool)
    keep = torch.zeros((n_rows, width), dtype=torch.bool)
    chosen_at: list[tuple[int, list[int]]] = [(0, [])] * len(tokens)
    rejected_at: list[tuple[int, list[int]]] = [(0, [])] * len(tokens)
    for r_idx, row in enumerate(rows):
        offset = 0
        for i in row:
            prompt, chosen, rejected = tokens.prompts[i], tokens.chosen[i], tokens.rejected[i]
            p, c, r = len(prompt), len(chosen), len(rejected)
            span = slice(offset, offset + p + c + r)
            input_ids[r_idx, span] = torch.tensor(prompt + chosen + rejected)
            position_ids[r_idx, span] = torch.tensor([*range(p + c), *range(p, p + r)])
            block = torch.ones((p + c + r, p + c + r), dtype=torch.bool).tril()
            block[p + c :, p : p + c] = False  # the rejected reply does not see the chosen one
            mask[r_idx, 0, span, span] = block
            last_prompt = offset + p - 1
            chosen_pos = [last_prompt + k for k in range(c)]
            rejected_pos = [last_prompt] + [offset + p + c + k - 1 for k in range(1, r)]
            keep[r_idx, chosen_pos + rejected_pos] = True
            chosen_at[i] = (r_idx, chosen_pos)
            rejected_at[i] = (r_idx, rejected_pos)
            offset += p + c + r
        mask[r_idx, 0, offset:, 0] = True  # padding queries attend somewhere, so softmax stays finite
    flat = (keep.flatten().cumsum(0) - 1).view(n_rows, width)  # index of each kept position among all kept ones

    def gather(at: list[tuple[int, list[int]]], replies: list[list[int]]) -> tuple[Tensor, Tensor, Tensor]:
        longest = max(len(reply) for reply in replies)
        index = torch.zeros((len(replies), longest), dtype=torch.long)
        targets = torch.zeros((len(replies), longest), dtype=torch.long)
        real = torch.zeros((len(replies), longest), dtype=torch.bool)
        for i, ((r_idx, positions), reply) in enumerate(zip(at, replies, strict=True)):
            index[i, : len(reply)] = flat[r_idx, positions]
            targets[i, : len(reply)] = torch.tensor(reply)
            real[i, : len(reply)] = True
        return index, targets, real

    chosen_index, chosen_targets, chosen_mask = gather(chosen_at, tokens.chosen)
    rejected_index, rejected_targets, rejected_mask = gather(rejected_at, tokens.rejected)
    return PackedPreferences(
        input_ids,
        position_ids,
        mask,
        keep,
        chosen_index,
        chosen_targets,
        chosen_mask,
        rejected_index,
        rejected_targets,
        rejected_mask,
        sum(lengths),
    )


def packed_reply_logps(model: torch.nn.Module, packed: PackedPreferences) -> Tensor:
    """The next-token log-softmax (fp32, whatever the model's dtype) at every kept position of the
    packed rows, (kept positions, vocabulary): one forward pass. Needs an attention implementation
    that accepts an arbitrary 4-D mask (``sdpa`` or ``eager``)."""
    device = next(model.parameters()).device
    kwargs = {}
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        kwargs["logits_to_keep"] = packed.keep.to(device)
    logits = model(
        input_ids=packed.input_ids.to(device),
        position_ids=packed.position_ids.to(device),
        attention_mask=model_attention_mask(model, packed.attention_mask.to(device)),
        use_cache=False,
        **kwargs,
    ).logits
    n_kept = int(packed.keep.sum())
    if logits.dim() == 3 and logits.shape[:2] == packed.input_ids.shape:
        logits = logits[packed.keep.to(device)]  # the model computed every position's logits
    elif not (logits.dim() == 2 and logits.shape[0] == n_kept):
        raise RuntimeError(f"unexpected logits shape {tuple(logits.shape)} from {type(model).__name__}")
    return logits.float().log_softmax(-1)


def packed_pair_logps(model: torch.nn.Module, packed: PackedPreferences) -> PairLogps:
    """Both replies' log-probabilities for every pair, from one forward pass over the packed rows."""
    device = next(model.parameters()).device
    logps = packed_reply_logps(model, packed)

    def read(index: Tensor, targets: Tensor, real: Tensor) -> tuple[Tensor, Tensor]:
        index, targets, real = index.to(device), targets.to(device), real.to(device)
        token_logps = torch.where(real, logps[index, targets], 0.0)
        return token_logps.sum(-1), token_logps

    chosen, chosen_tokens = read(packed.chosen_index, packed.chosen_targets, packed.chosen_mask)
    rejected, rejected_tokens = read(packed.rejected_index, packed.rejected_targets, packed.rejected_mask)
    return PairLogps(
        chosen, rejected, chosen_tokens, rejected_tokens, packed.chosen_mask.to(device), packed.rejected_mask.to(device)
    )


def model_attention_mask(model: torch.nn.Module, mask: Tensor) -> Tensor:
    """A boolean 4-D mask in the form the model's attention implementation reads.

    ``sdpa`` takes it as is; ``eager`` adds the mask to the attention logits, so it needs 0 where a
    key is visible and the dtype's minimum elsewhere. Kernels that cannot take an arbitrary mask
    (flash attention) are refused.
    """
    implementation = getattr(model.config, "_attn_implementation", None) or "eager"
    if implementation == "sdpa":
        return mask
    if implementation == "eager":
        dtype = next(model.parameters()).dtype
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)
    raise ValueError(
        f"packed pairs need an attention implementation that takes a 4-D mask, 'sdpa' or 'eager' "
        f"(the model uses {implementation!r}); load it with attn_implementation='sdpa', or use plain_pair_logps"
    )


def reply_logps(
    model: torch.nn.Module, prompts: Sequence[Sequence[int]], replies: Sequence[Sequence[int]], pad_id: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Summed (B,) and per-token (B, L) log-probabilities of each reply given its prompt, with the
    token mask (B, L), from right-padded ``prompt + reply`` rows: the plain computation."""
    device = next(model.parameters()).device
    rows = [list(p) + list(r) for p, r in zip(prompts, replies, strict=True)]
    width = max(map(len, rows))
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    longest = max(map(len, replies))
    positions = torch.zeros((len(rows), longest), dtype=torch.long)
    targets = torch.zeros((len(rows), longest), dtype=torch.long)
    real = torch.zeros((len(rows), longest), dtype=torch.bool)
    for i, (prompt, reply) in enumerate(zip(prompts, replies, strict=True)):
        input_ids[i, : len(rows[i])] = torch.tensor(rows[i])
        attention_mask[i, : len(rows[i])] = 1
        positions[i, : len(reply)] = torch.arange(len(prompt) - 1, len(prompt) + len(reply) - 1)
        targets[i, : len(reply)] = torch.tensor(list(reply))
        real[i, : len(reply)] = True
    logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False).logits
    logps = logits.float().log_softmax(-1)
    rows_index = torch.arange(len(rows), device=device)[:, None]
    real = real.to(device)
    token_logps = torch.where(real, logps[rows_index, positions.to(device), targets.to(device)], 0.0)
    return token_logps.sum(-1), token_logps, real


def plain_pair_logps(model: torch.nn.Module, tokens: PairTokens, pad_id: int) -> PairLogps:
    """The same quantities as :func:`packed_pair_logps`, from one ``prompt + reply`` row per reply."""
    n = len(tokens)
    sums, token_logps, real = reply_logps(model, tokens.prompts * 2, tokens.chosen + tokens.rejected, pad_id)
    width_c, width_r = max(map(len, tokens.chosen)), max(map(len, tokens.rejected))
    return PairLogps(
        sums[:n],
        sums[n:],
        token_logps[:n, :width_c],
        token_logps[n:, :width_r],
        real[:n, :width_c],
        real[n:, :width_r],
    )


def pair_logps(model: torch.nn.Module, tokens: PairTokens, pad_id: int, max_row_tokens: int | None = None) -> PairLogps:
    """Packed log-probabilities of both replies of every pair (the computation trainers use)."""
    return packed_pair_logps(model, pack_preferences(tokens, pad_id, max_row_tokens))
