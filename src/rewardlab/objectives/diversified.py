"""MORE: Bradley-Terry over several preference sources, each source's loss weighted so that no
source's gradient dominates the shared reward (Zeng et al. 2023, "On Diversified Preferences of Large
Language Model Alignment").

The paper's claim (abstract): mixing datasets whose annotators prefer different things hurts the
reward model's calibration on the preferences they share; weighting the sources' losses by MORE's
multi-objective weights improves it. Only the abstract is in ``papers/``; the algorithm below follows
the authors' code (github.com/dunzeng/MORE, ``trainer.py`` ``compute_lambda_noresampling`` and
``more_ranking_loss``, ``utils.py`` ``gradient_normalizer``, ``min_norm_solvers.py``), rewritten here:

1. per source t in the batch, g_t = ∂L_t/∂w, the gradient of its mean Bradley-Terry loss with respect
   to the linear reward head w, computed on the (detached) features the head reads;
2. each g_t normalised (``normalize="l2"``, the paper's setting; ``"loss"``, ``"none"``);
3. λ = argmin_{λ ∈ simplex} ‖Σ_t λ_t ĝ_t‖² (MGDA's min-norm point, Sener & Koltun 2018, Frank-Wolfe);
4. pair i of source s(i) weighted K·λ_{s(i)} (K sources in the batch), so uniform λ is plain BT.

Departures from the reference code: its momentum ḡ_t ← (1−α)ḡ_t + α·g_t (α = 0.99, so 1 % memory) is
left out, a pure function keeping no state between batches; its two-source solver clips λ to
[0.001, 0.999], here λ is exact in [0, 1]; λ is computed per forward pass, as the reference code does
per device batch (so the trainer gives an objective that reads ``source`` the whole step in one pass,
whatever ``micro_batch_tokens`` says).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rewardlab.objectives.bradley_terry import bradley_terry_loss
from rewardlab.objectives.registry import ObjectiveOutput, register_objective

NORMALIZATIONS = ("l2", "loss", "none")


def min_norm_weights(grads: Tensor, iterations: int = 250, tolerance: float = 1e-6) -> Tensor:
    """λ on the simplex minimising ‖Σ_t λ_t g_t‖² for the rows g_t of ``grads`` (K, H): the MGDA
    direction, a common descent direction of every source's loss (Sener & Koltun 2018, eq. 3, solved
    by Frank-Wolfe from the best two-row point, their Algorithm 2). Two rows have the closed form
    λ_1 = clip((g₂·g₂ − g₁·g₂) / ‖g₁ − g₂‖², 0, 1)."""
    k = grads.shape[0]
    gram = (grads @ grads.T).double()
    weights = _best_pair(gram) if k > 1 else torch.ones(1, dtype=torch.float64)
    for _ in range(iterations if k > 2 else 0):
        corner = int(torch.argmin(gram @ weights))
        step = -weights.clone()
        step[corner] += 1.0  # towards the vertex e_corner
        curvature = step @ gram @ step
        if curvature <= 0:
            break
        gamma = float((-(step @ gram @ weights) / curvature).clamp(0.0, 1.0))
        weights = weights + gamma * step
        if gamma * float(step.abs().sum()) < tolerance:
            break
    return weights.to(grads.dtype)


def _best_pair(gram: Tensor) -> Tensor:
    """The min-norm point over the segments between two rows (the reference solver's start, exact for
    two rows): on [g_i, g_j], λ_i = clip((g_j·g_j − g_i·g_j) / ‖g_i − g_j‖², 0, 1)."""
    k = gram.shape[0]
    best, weights = None, torch.zeros(k, dtype=torch.float64)
    for i in range(k):
        for j in range(i + 1, k):
            span = gram[i, i] + gram[j, j] - 2 * gram[i, j]
            share = ((gram[j, j] - gram[i, j]) / span).clamp(0.0, 1.0) if span > 0 else torch.tensor(0.5)
            norm = share**2 * gram[i, i] + 2 * share * (1 - share) * gram[i, j] + (1 - share) ** 2 * gram[j, j]
            if best is None or norm < best:
                best = norm
                weights = torch.zeros(k, dtype=torch.float64)
                weights[i], weights[j] = share, 1 - share
    return weights


def source_weights(
    gaps: Tensor, targets: Tensor, feature_gap: Tensor, source: Tensor, losses: Tensor, normalize: str = "l2"
) -> tuple[Tensor, Tensor]:
    """MORE's per-pair weights K·λ_{s(i)}, and λ per source present (sorted by source index).

    For the linear head r = w·φ + b the gradient of pair i's loss is (σ(d_i) − y_i)·(φ_c − φ_r)_i,
    d_i the reward gap and y_i its target, so g_t is the mean of that over source t's pairs.
    """
    present = torch.unique(source)
    slope = torch.sigmoid(gaps) - targets
    grads, mean_losses = [], []
    for t in present:
        mask = source == t
        grads.append((slope[mask, None] * feature_gap[mask]).mean(0))
        mean_losses.append(losses[mask].mean())
    g = torch.stack(grads).double()
    if normalize == "l2":
        norms = g.norm(dim=1)
        g = g / torch.where(norms > 0, norms, torch.ones_like(norms))[:, None]
    elif normalize == "loss":  # the reference's "loss": divide by (L_t + 1) / Σ(L + 1)
        shifted = torch.stack(mean_losses).double() + 1
        g = g / (shifted / shifted.sum())[:, None]
    lam = min_norm_weights(g).to(gaps.dtype)
    per_source = torch.zeros(int(source.max()) + 1, dtype=gaps.dtype, device=gaps.device)
    per_source[present] = lam * len(present)
    return per_source[source], lam


@register_objective("more")
def more_loss(
    chosen: Tensor,
    rejected: Tensor,
    margin: Tensor | None = None,
    tie: Tensor | None = None,
    source: Tensor | None = None,
    feature_gap: Tensor | None = None,
    normalize: str = "l2",
) -> ObjectiveOutput:
    """Bradley-Terry with each source's pairs weighted by MORE's min-norm λ (Zeng et al. 2023):
    loss_i = K·λ_{s(i)}·(−log σ(r_c − r_r − m)).

    ``source`` (B,) is each pair's source index and ``feature_gap`` (B, H) the head's input features
    φ(chosen) − φ(rejected), which the trainer supplies in training; without them (validation, one
    source) the weights are 1 and this is ``bradley_terry``.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)} (got {normalize!r})")
    base = bradley_terry_loss(chosen, rejected, margin=margin, tie=tie)
    metrics = dict(base.metrics)
    if source is None or feature_gap is None or torch.unique(source).numel() < 2:
        return ObjectiveOutput(base.losses, metrics)
    gaps = (chosen - rejected).detach()
    if margin is not None:
        gaps = gaps - margin
    targets = torch.ones_like(gaps) if tie is None else torch.where(tie, 0.5, 1.0).to(gaps.dtype)
    weights, _ = source_weights(gaps, targets, feature_gap.to(gaps), source, base.losses.detach(), normalize)
    metrics["source_weight"] = weights
    return ObjectiveOutput(base.losses * weights, metrics)
