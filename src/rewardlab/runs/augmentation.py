"""Pairs added to a run's training split only: MAPL's multi-level pairs and ConvexDA's hull vertices.

MAPL (Sun et al. 2025, ``data.multi_level=true``; abstract and a third-party summary only, see
``data/multi_level.py``): inter-sample pairs (two requests in one prompt) follow their originals,
and intra-sample pairs (one reply under a prompt whose instructions it satisfies and one whose it
violates) are added as pairs with a ``rejected_prompt``. Built from the training split alone, so no
held-out reply or prompt is quoted in training.

ConvexDA on a run's training split (``data.convex_da=true``): make candidates, embed, keep the hull.

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
from rewardlab.data.multi_level import intra_sample_pairs, with_inter_sample_pairs
from rewardlab.data.records import PreferencePair
from rewardlab.data.synonyms import synonym_candidates

Embed = Callable[[Sequence, Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class MultiLevelSettings:
    """``data.multi_level_*``: which MAPL pairs are added, their loss weights (the paper's λ), the seed."""

    inter: bool = True
    intra: bool = True
    inter_weight: float = 1.0
    intra_weight: float = 1.0
    max_instructions: int = 3
    seed: int = 0


def multi_level_training_pairs(
    pairs: list[PreferencePair], settings: MultiLevelSettings, say: Callable[[str], None] = print
) -> list[PreferencePair]:
    """The training pairs with their inter-sample pairs after each, then the intra-sample pairs, said aloud."""
    mixed = with_inter_sample_pairs(pairs, settings.seed, settings.inter_weight) if settings.inter else list(pairs)
    intra = (
        intra_sample_pairs(pairs, settings.seed, settings.max_instructions, settings.intra_weight)
        if settings.intra
        else []
    )
    say(
        f"multi-level (MAPL): {len(mixed) - len(pairs)} inter-sample and {len(intra)} intra-sample pairs "
        f"added to {len(pairs)} training pairs"
    )
    return mixed + [record.as_pair() for record in intra]


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
    """``convex_da_pairs`` with the settings' encoder (``models.embeddings.load_embedder``), said aloud.

    Pairs whose sides have different prompts (``rejected_prompt``, MAPL's intra-sample pairs) are kept
    as they are, after the rest: a pair's point embeds one prompt, and a rewrite would change one.
    """
    from rewardlab.models.embeddings import load_embedder

    one_prompt = [p for p in pairs if p.rejected_prompt is None]
    two_prompts = [p for p in pairs if p.rejected_prompt is not None]
    embedder = load_embedder(settings.encoder, progress=True)
    output, made = convex_da_pairs(one_prompt, settings, embedder)
    added = len(output.pairs) - len(one_prompt)
    kept = f"; {len(two_prompts)} pairs with a rejected_prompt not augmented" if two_prompts else ""
    say(
        f"ConvexDA: {made} synonym candidates for {len(one_prompt)} training pairs, kept {added} "
        f"(hull vertices in {settings.dims} principal directions, encoder {settings.encoder}){kept}"
    )
    return output.pairs + two_prompts
