"""ConvexDA (Shen et al. 2023, "The Trickle-down Impact of Reward (In-)consistency on RLHF"):
augment reward-model training pairs, keeping only the augmentations that extrapolate.

Each training pair comes with candidate augmentations (e.g. the pair with words swapped for
synonyms, made by any function) and an embedding of the original and of every candidate. A
candidate lying inside the convex hull of the others is a convex combination of them: in
embedding space it interpolates what the model already sees, and ConvexDA drops it.
The candidates that are *vertices* of the hull of {original} ∪ {candidates} are the extreme,
extrapolating ones, and only they are added. What was checked of the paper here is its abstract
("enhance reward consistency through extrapolation during the RM training ... stage", "without
using extra training budget") and the method's name; its section on ConvexDA (how candidates are
made and embedded, and any cap on how many are kept) could not be read, so the candidates and
their embeddings are the caller's, and this module implements the convex-hull selection only.

The criterion, exactly: candidate p_i (of the group P = {p_0 = original, p_1, ..., p_k}) is kept iff
there is no λ ≥ 0 with Σ_j λ_j = 1 and Σ_{j ≠ i} λ_j p_j = p_i over the *distinct* points of P other
than p_i (a linear-programming feasibility test, exact in any dimension). Repeated candidates
(closer than ``tol`` × the group's diameter) count once: the first is tested, the copies dropped.
In d dimensions any d + 1 points in general position are all vertices, so with high-dimensional
embeddings pass ``dims``: the group is first projected onto its top ``dims`` principal
directions (centred SVD), where the hull is informative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linprog

from rewardlab.data.records import PreferencePair


def principal_projection(points: ArrayLike, dims: int) -> np.ndarray:
    """The rows of ``points`` centred and projected onto their top ``dims`` principal directions."""
    p = np.asarray(points, dtype=float)
    if dims < 1:
        raise ValueError(f"dims must be at least 1 (got {dims})")
    centred = p - p.mean(axis=0, keepdims=True)
    if dims >= p.shape[1]:
        return centred
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:dims].T


def in_convex_hull(point: np.ndarray, others: np.ndarray) -> bool:
    """Whether ``point`` is a convex combination of the rows of ``others`` (LP feasibility)."""
    if others.shape[0] == 0:
        return False
    n = others.shape[0]
    a_eq = np.vstack([others.T, np.ones((1, n))])
    b_eq = np.concatenate([point, [1.0]])
    result = linprog(np.zeros(n), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    return result.status == 0  # 0: a feasible λ found (HiGHS's own tolerances); 2: infeasible


def hull_vertices(points: ArrayLike, dims: int | None = None, tol: float = 1e-6) -> np.ndarray:
    """A boolean mask over the rows of ``points``: True where the row is a vertex of their convex hull,
    after an optional ``principal_projection``. Rows closer than ``tol`` times the group's diameter
    to an earlier row are copies of it: only the first can be a vertex (else two near-copies of a
    corner would each lie in the hull of the other and the corner would be lost)."""
    p = np.asarray(points, dtype=float)
    if p.ndim != 2 or not np.all(np.isfinite(p)):
        raise ValueError(f"points must be a finite (n, d) array (got shape {p.shape})")
    if dims is not None:
        p = principal_projection(p, dims)
    distances = np.linalg.norm(p[:, None, :] - p[None, :, :], axis=-1)
    radius = tol * (distances.max() if len(p) else 0.0)
    distinct = np.zeros(len(p), dtype=bool)
    for i in range(len(p)):
        distinct[i] = not np.any(distances[i, distinct] <= radius)
    mask = np.zeros(len(p), dtype=bool)
    for i in np.flatnonzero(distinct):
        others = p[distinct & (np.arange(len(p)) != i)]
        mask[i] = not in_convex_hull(p[i], others)
    return mask


@dataclass
class ConvexDAOutput:
    """``pairs``: the originals followed by the kept augmentations; ``kept[i]``: the indices, into
    ``augmentations[i]``, of the candidates kept for pair i."""

    pairs: list[PreferencePair]
    kept: list[list[int]]


def convex_da(
    pairs: Sequence[PreferencePair],
    augmentations: Sequence[Sequence[PreferencePair]],
    embeddings: Sequence[ArrayLike],
    dims: int | None = None,
    tol: float = 1e-6,
) -> ConvexDAOutput:
    """Training pairs plus the augmentations ConvexDA keeps (module docstring).

    ``augmentations[i]`` are pair i's k_i candidates; ``embeddings[i]`` is a (1 + k_i, d) array:
    row 0 the original pair's embedding, row 1 + j that of ``augmentations[i][j]`` (embed a pair as
    you like, e.g. the prompt with its chosen reply). A candidate is kept iff its row is a vertex
    of the convex hull of all 1 + k_i rows (projected to ``dims`` principal directions when given).
    """
    if not len(pairs) == len(augmentations) == len(embeddings):
        raise ValueError(
            f"need one list of augmentations and one embedding array per pair "
            f"(got {len(pairs)} pairs, {len(augmentations)} augmentation lists, {len(embeddings)} arrays)"
        )
    added: list[PreferencePair] = []
    kept: list[list[int]] = []
    for i, (candidates, group) in enumerate(zip(augmentations, embeddings, strict=True)):
        e = np.asarray(group, dtype=float)
        if e.ndim != 2 or e.shape[0] != 1 + len(candidates):
            raise ValueError(
                f"pair {i}: embeddings need 1 + {len(candidates)} rows (the original, then each "
                f"augmentation), got shape {e.shape}"
            )
        if not candidates:
            kept.append([])
            continue
        vertex = hull_vertices(e, dims, tol)
        chosen = [j for j in range(len(candidates)) if vertex[1 + j]]
        kept.append(chosen)
        added.extend(candidates[j] for j in chosen)
    return ConvexDAOutput(list(pairs) + added, kept)
