"""Reference log-probabilities, computed once per (dataset, reference model) and cached on disk.

The reference model is frozen, so its log-probabilities of the training replies never change:
computing them once before training removes a forward pass per step and the memory of a second
model. The cache file is keyed by a hash of the data's token ids and of the reference model's
class and weights, so a changed dataset, tokenisation or model misses it instead of silently
reusing stale numbers. It is written atomically (a temporary file and a rename): a killed run
never leaves a half-written file that a later run would read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors
from torch import Tensor

from rewardlab.atomic import write_bytes_atomic
from rewardlab.models.logprobs import PairLogps, PairTokens, pair_logps

CACHE_FORMAT = "rewardlab-reference-logps-1"
"""Part of every key: changing how log-probabilities are computed or stored must change it."""


@dataclass(frozen=True)
class ReferenceLogps:
    logps: PairLogps
    path: Path | None
    """The cache file (None when computed without a cache)."""
    from_cache: bool


def tokens_fingerprint(tokens: PairTokens) -> str:
    """SHA-256 of every pair's prompt, chosen and rejected token ids (lengths included, so no two
    different datasets share a byte stream)."""
    digest = hashlib.sha256()
    for seqs in zip(tokens.prompts, tokens.chosen, tokens.rejected, strict=True):
        for seq in seqs:
            digest.update(torch.tensor([len(seq), *seq], dtype=torch.int64).numpy().tobytes())
    return digest.hexdigest()


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of the model's class and of every weight and buffer (name, dtype, shape, bytes)."""
    digest = hashlib.sha256(type(model).__qualname__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(memoryview(raw.numpy()))
    return digest.hexdigest()


def cache_key(model: torch.nn.Module, tokens: PairTokens) -> str:
    joined = f"{CACHE_FORMAT}|{model_fingerprint(model)}|{tokens_fingerprint(tokens)}"
    return hashlib.sha256(joined.encode()).hexdigest()


def cached_reference_logps(
    model: torch.nn.Module,
    tokens: PairTokens,
    pad_id: int,
    cache_dir: str | Path | None,
    batch_pairs: int = 16,
    max_row_tokens: int | None = None,
) -> ReferenceLogps:
    """The reference model's log-probabilities of every pair, read from ``cache_dir`` when present.

    Computed under ``torch.no_grad()`` in eval mode (the model's mode is restored), ``batch_pairs``
    pairs per forward pass; the result lives on the CPU. ``cache_dir=None`` computes without caching.
    """
    if batch_pairs < 1:
        raise ValueError(f"batch_pairs must be >= 1 (got {batch_pairs})")
    if cache_dir is None:
        return ReferenceLogps(_compute(model, tokens, pad_id, batch_pairs, max_row_tokens), None, from_cache=False)
    key = cache_key(model, tokens)
    path = Path(cache_dir) / f"reference-logps-{key[:32]}.safetensors"
    cached = _read(path, key, len(tokens))
    if cached is not None:
        return ReferenceLogps(cached, path, from_cache=True)
    logps = _compute(model, tokens, pad_id, batch_pairs, max_row_tokens)
    write_bytes_atomic(path, save_safetensors(_flatten(logps), metadata={"key": key, "pairs": str(len(tokens))}))
    return ReferenceLogps(logps, path, from_cache=False)


def _compute(
    model: torch.nn.Module, tokens: PairTokens, pad_id: int, batch_pairs: int, max_row_tokens: int | None
) -> PairLogps:
    was_training = model.training
    model.eval()
    parts = []
    try:
        with torch.no_grad():
            for start in range(0, len(tokens), batch_pairs):
                batch = tokens.select(range(start, min(start + batch_pairs, len(tokens))))
                parts.append(_to_cpu(pair_logps(model, batch, pad_id, max_row_tokens)))
    finally:
        model.train(was_training)
    return _concatenate(parts)


def _to_cpu(logps: PairLogps) -> PairLogps:
    return PairLogps(*(getattr(logps, f).detach().cpu() for f in PairLogps.__dataclass_fields__))


def _concatenate(parts: list[PairLogps]) -> PairLogps:
    def cat(name: str, fill: float | bool) -> Tensor:
        tensors = [getattr(p, name) for p in parts]
        if tensors[0].dim() == 1:
            return torch.cat(tensors)
        width = max(t.shape[1] for t in tensors)
        return torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1]), value=fill) for t in tensors])

    return PairLogps(
        cat("chosen_logps", 0.0),
        cat("rejected_logps", 0.0),
        cat("chosen_token_logps", 0.0),
        cat("rejected_token_logps", 0.0),
        cat("chosen_token_mask", False),
        cat("rejected_token_mask", False),
    )


def _flatten(logps: PairLogps) -> dict[str, Tensor]:
    """Stored without padding: each side's real token log-probabilities, one after another."""
    return {
        "chosen_logps": logps.chosen_logps.float().contiguous(),
        "rejected_logps": logps.rejected_logps.float().contiguous(),
        "chosen_token_logps": logps.chosen_token_logps[logps.chosen_token_mask].float().contiguous(),
        "rejected_token_logps": logps.rejected_token_logps[logps.rejected_token_mask].float().contiguous(),
        "chosen_lengths": logps.chosen_token_mask.sum(-1).to(torch.int64),
        "rejected_lengths": logps.rejected_token_mask.sum(-1).to(torch.int64),
    }


def _unflatten(tensors: dict[str, Tensor]) -> PairLogps:
    def pad(flat: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        width = int(lengths.max()) if len(lengths) else 0
        mask = torch.arange(width)[None, :] < lengths[:, None]
        values = torch.zeros(mask.shape, dtype=flat.dtype)
        values[mask] = flat
        return values, mask

    chosen_tokens, chosen_mask = pad(tensors["chosen_token_logps"], tensors["chosen_lengths"])
    rejected_tokens, rejected_mask = pad(tensors["rejected_token_logps"], tensors["rejected_lengths"])
    return PairLogps(
        tensors["chosen_logps"], tensors["rejected_logps"], chosen_tokens, rejected_tokens, chosen_mask, rejected_mask
    )


def _read(path: Path, key: str, pairs: int) -> PairLogps | None:
    """The cached log-probabilities, or None when the file is absent or is not this key's."""
    if not path.is_file():
        return None
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("key") != key or metadata.get("pairs") != str(pairs):
                return None
            return _unflatten({name: f.get_tensor(name) for name in f.keys()})  # noqa: SIM118
    except (OSError, ValueError, KeyError, SafetensorError):
        return None  # unreadable: recompute and overwrite
