"""ConvexDA on a run's training split (``data.convex_da=true``): make candidates, embed, keep the hull.

Shen et al. 2023 ("The Trickle-down Impact of Reward (In-)consistency on RLHF"; abstract checked
only): each training pair gets ``candidates`` synonym rewrites (``data.synonyms``), every pair and
candidate is embedded, and only the candidates that are vertices of the convex hull of their group
(``data.augment.convex_da``, in the group's top ``dims`` principal directions) join the training
pairs. Only the training split is augmented; validation and test are never touched, and a kept
candidate carries its original's split key as its group (``data.synonyms``).

A pair's point is [e(x, y⁺), e(x, y⁻)], its two (prompt, reply) sentence embeddings side by side
(``models.embeddings``), so a rewrite of either reply or of the prompt moves it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rewardlab.data.augment import ConvexDAOutput, convex_da
from rewardlab.data.records import PreferencePair
from rewardlab.data.synonyms import synonym_candidates

Embed = Callable[[Sequence, Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class ConvexDASettings:
    """``data.convex_da_*``: how many candidates a pair gets, the hull's dimension, the encoder, the seed."""

    candidates: int = 4
    dims: int = 2
    encoder: str = "minilm"
    seed: int = 0
    rate: float = 0.5


def convex_da_pairs(
    pairs: Sequence[PreferencePair], settings: ConvexDASettings, embed: Embed
) -> tuple[ConvexDAOutput, int]:
    """The pairs plus the candidates ConvexDA keeps, and how many candidates were made."""
    augmentations = [synonym_candidates(p, settings.candidates, seed=settings.seed, rate=settings.rate) for p in pairs]
    groups = [[p, *candidates] for p, candidates in zip(pairs, augmentations, strict=True)]
    flat = [q for group in groups for q in group]
    prompts = [q.prompt for q in flat]
    embedded = embed(prompts * 2, [q.chosen for q in flat] + [q.rejected for q in flat])
    points = np.concatenate([embedded[: len(flat)], embedded[len(flat) :]], axis=1)
    ends = np.cumsum([len(g) for g in groups])
    blocks = np.split(points, ends[:-1]) if len(groups) else []
    made = sum(len(a) for a in augmentations)
    return convex_da(pairs, augmentations, blocks, dims=settings.dims), made


def augment_training_pairs(
    pairs: list[PreferencePair], settings: ConvexDASettings, say: Callable[[str], None] = print
) -> list[PreferencePair]:
    """``convex_da_pairs`` with the settings' encoder (``models.embeddings.load_embedder``), said aloud."""
    from rewardlab.models.embeddings import load_embedder

    embedder = load_embedder(settings.encoder, progress=True)
    output, made = convex_da_pairs(pairs, settings, embedder)
    added = len(output.pairs) - len(pairs)
    say(
        f"ConvexDA: {made} synonym candidates for {len(pairs)} training pairs, kept {added} "
        f"(hull vertices in {settings.dims} principal directions, encoder {settings.encoder})"
    )
    return output.pairs
