"""Peer review (Two Minds Better Than One: Collaborative Reward Modeling, from the abstract).

Noisy preferences are hard to fit, and a reward model trained on them memorises them anyway, so a
model is a poor judge of its own training pairs. Collaborative Reward Modeling keeps two models that
each filter the data the other learns from. Offline, as here: the pairs are split into two halves by
a seeded hash of their content (the same pair always lands in the same half), model A is trained on
half 0 and model B on half 1, and each pair is judged by the model that did NOT see it,

    judge margin of pair i = d_B(i) if half(i) = 0 else d_A(i)

``judge="self"`` gives the single-model self-filtering baseline (each pair judged by the model that
trained on it) that the paper compares peer review against.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from rewardlab.data.records import PreferencePair
from rewardlab.data.split import content_key

JUDGES = ("peer", "self")


def peer_halves(pairs: Sequence[PreferencePair], seed: int = 0) -> np.ndarray:
    """0 or 1 per pair: which model trains on it (a seeded hash of its ``id`` or its content)."""
    keys = [p.id if p.id is not None else content_key(p) for p in pairs]
    return np.array([hashlib.sha256(f"{seed}:{k}".encode()).digest()[0] & 1 for k in keys], dtype=np.int64)


def judge_margins(
    margins: np.ndarray | Sequence[Sequence[float]], halves: np.ndarray, judge: str = "peer"
) -> np.ndarray:
    """Each pair's margin from its judge: (2, P) margins of models A (trained on half 0) and B (half 1)."""
    d = np.asarray(margins, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != 2 or d.shape[1] != len(halves):
        raise ValueError(f"peer review needs the margins of exactly two models on every pair (got {d.shape})")
    if judge not in JUDGES:
        raise ValueError(f"judge must be one of {', '.join(JUDGES)} (got {judge!r})")
    own = np.asarray(halves)
    judge_index = 1 - own if judge == "peer" else own
    return d[judge_index, np.arange(d.shape[1])]
