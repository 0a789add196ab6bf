"""Measures of a set of generations, not of one image: how far its features lie from a reference set's, how
diverse it is, how its classes are mixed. DRAGON optimises rewards of this kind (a set → one number), and
the evaluation reports them beside the mean per-image reward.

All take features [N, D] (an encoder's embeddings, a classifier's penultimate layer, or flattened pixels)
or class probabilities [N, K], and return a float.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def _matrix(features: Tensor, name: str, min_rows: int = 1) -> np.ndarray:
    if features.dim() != 2:
        raise ValueError(f"{name} must be a [N, D] matrix (got shape {tuple(features.shape)})")
    if features.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (got {features.shape[0]})")
    return features.detach().to(torch.float64).cpu().numpy()


def frechet_distance(features_a: Tensor, features_b: Tensor) -> float:
    """The Fréchet (2-Wasserstein) distance between Gaussians fitted to two feature sets, as FID (Heusel et
    al. 2017) and FAD (Kilgour et al. 2019) compute it:

        FD = ||μ_a - μ_b||² + Tr(Σ_a + Σ_b - 2(Σ_a Σ_b)^{1/2})

    Zero for identical sets; it compares means and covariances only, so it needs a few times more rows
    than feature dimensions to be stable.
    """
    from scipy.linalg import sqrtm

    a, b = _matrix(features_a, "features_a", 2), _matrix(features_b, "features_b", 2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets differ in width: {a.shape[1]} vs {b.shape[1]}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():  # singular product: nudge both covariances, as the FID reference code does
        offset = np.eye(cov_a.shape[0]) * 1e-6
        root = sqrtm((cov_a + offset) @ (cov_b + offset))
    root = np.real(root)
    distance = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))
    return max(distance, 0.0)


def vendi_score(features: Tensor) -> float:
    """The Vendi score (Friedman & Dieng 2023): the effective number of distinct items in a set,

        VS = exp(-Σ_i λ_i log λ_i),  λ = eigenvalues of K/n,  K_ij = cos(f_i, f_j)

    1 when every item is the same, n when all are mutually orthogonal. Rows of zeros are rejected (their
    cosine similarity is undefined).
    """
    x = _matrix(features, "features")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("vendi_score: a feature row is all zeros (cosine similarity is undefined)")
    unit = x / norms
    eigenvalues = np.linalg.eigvalsh(unit @ unit.T / x.shape[0])
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    return float(math.exp(-(eigenvalues * np.log(eigenvalues)).sum()))


def mean_pairwise_distance(features: Tensor) -> float:
    """The mean Euclidean distance between two different items of the set: a plain diversity measure that,
    unlike Vendi, grows with how far apart the items are, not only with how many directions they span."""
    x = features.detach().to(torch.float64)
    _matrix(x, "features", 2)
    n = x.shape[0]
    return float(torch.cdist(x, x).sum() / (n * (n - 1)))


def class_mix_distance(probabilities: Tensor, target_mix: Tensor | list[float], hard: bool = False) -> float:
    """Total variation between the set's class mix and ``target_mix``: ½·Σ_k |p̄_k - m_k|, where p̄ is the
    mean of the rows' class distributions (``hard``: the histogram of their most likely classes). 0 when
    the set has exactly the target mix, 1 when they share no class. DRAGON's distribution-to-distribution
    reward is its negative."""
    p = probabilities.detach().to(torch.float64)
    _matrix(p, "probabilities")
    target = torch.as_tensor(target_mix, dtype=torch.float64).flatten()
    if target.shape[0] != p.shape[1]:
        raise ValueError(f"target_mix has {target.shape[0]} classes but probabilities have {p.shape[1]}")
    if (target < 0).any() or not math.isclose(float(target.sum()), 1.0, abs_tol=1e-6):
        raise ValueError(f"target_mix must be non-negative and sum to 1 (got {target.tolist()})")
    if (p < 0).any() or not torch.allclose(p.sum(1), torch.ones(p.shape[0], dtype=torch.float64), atol=1e-4):
        raise ValueError("probabilities: each row must be a distribution (non-negative, summing to 1)")
    histogram = torch.bincount(p.argmax(1), minlength=p.shape[1]).to(torch.float64) / p.shape[0]
    mix = histogram if hard else p.mean(0)
    return float(0.5 * (mix - target).abs().sum())
