"""Learning a linear reward r = φ·w from segment preferences under a chosen preference model, and judging it
by how well its optimal policy does on the true reward (Knox et al. 2022, sec. 5).

The loss is the Bradley-Terry negative log-likelihood of the labels (``objectives.bradley_terry``, a tie as
the soft label 1/2) with the pair's scores from the preference model, plus an L2 penalty λ‖w‖²:

    L(w) = mean_i −[y_i log σ(Δ_i) + (1 − y_i) log σ(−Δ_i)] + λ‖w‖²,   Δ_i = (score_a − score_b)/τ.

Why the penalty: with labels that a linear reward can separate perfectly (common with few pairs) the
likelihood alone keeps growing as w is scaled up, and w diverges along its direction; λ‖w‖² (a Gaussian
prior, MAP) keeps the scale finite. A positive rescaling of w leaves the optimal policy unchanged, so it
costs nothing in what is measured. It does not resolve the partial-return model's other ambiguity (a shift
that the labels cannot see, see ``test_control_preference_models``): it picks the smallest-norm reward
among those the labels cannot tell apart, which is why that model can learn a reward with the wrong policy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rewardlab.atomic import write_text_atomic
from rewardlab.control.mdp import TabularMDP, greedy_policy, normalized_return
from rewardlab.control.preference_models import get_preference_model, optimal_values, segment_batch
from rewardlab.control.segments import SegmentPreference
from rewardlab.data.records import DataError
from rewardlab.objectives.bradley_terry import bradley_terry_loss
from rewardlab.progress import progress_bar


def preference_loss(
    mdp: TabularMDP,
    weights: torch.Tensor,
    batch_scores: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 1.0,
    l2: float = 0.0,
) -> torch.Tensor:
    """L(w) above from the pairs' scores (N, 2) and labels P(a ≻ b) in {0, 1/2, 1}."""
    a, b = batch_scores[:, 0] / temperature, batch_scores[:, 1] / temperature
    a_won = labels >= 0.5
    chosen, rejected = torch.where(a_won, a, b), torch.where(a_won, b, a)
    losses = bradley_terry_loss(chosen, rejected, tie=labels == 0.5).losses
    return losses.mean() + l2 * (weights**2).sum()


def learn_linear_reward(
    mdp: TabularMDP,
    preferences: Sequence[SegmentPreference],
    model: str = "partial_return",
    steps: int = 300,
    lr: float = 0.1,
    l2: float = 1e-3,
    temperature: float = 1.0,
    init: np.ndarray | None = None,
    progress: bool = False,
) -> np.ndarray:
    """The weights w (F,) that minimise L(w) by ``steps`` full-batch Adam steps from ``init`` (zeros).

    ``temperature`` only rescales w (the learned reward's policy does not depend on it); the regret model
    re-solves the MDP at every step (``optimal_values``) and differentiates through the solution."""
    if steps < 1 or lr <= 0 or l2 < 0 or temperature <= 0:
        raise ValueError(f"need steps ≥ 1, lr > 0, l2 ≥ 0, temperature > 0 (got {steps}, {lr}, {l2}, {temperature})")
    score = get_preference_model(model).score
    batch = segment_batch(mdp, preferences)
    features = torch.as_tensor(mdp.features, dtype=torch.float64)
    start = np.zeros(mdp.n_features) if init is None else np.asarray(init, dtype=float)
    w = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([w], lr=lr)
    with progress_bar(progress, f"learn reward ({model})", steps) as advance:
        for _ in range(steps):
            scores = score(mdp, features @ w, batch.states, batch.actions, batch.mask)
            loss = preference_loss(mdp, w, scores, batch.labels, temperature, l2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            advance(loss=f"{loss.item():.4f}")
    return w.detach().numpy().copy()


def greedy_normalized_return(mdp: TabularMDP, learned: np.ndarray, true_weights: np.ndarray) -> float:
    """``normalized_return`` under the true weights of the greedy policy of the learned reward φ·w: 1 when it
    is optimal for the true reward, 0 when it is no better than acting at random (Knox et al.'s measure)."""
    _, Q = optimal_values(mdp, torch.as_tensor(mdp.reward(learned), dtype=torch.float64))
    return normalized_return(mdp, greedy_policy(Q), np.asarray(true_weights, dtype=float))


def save_linear_reward(path: str | Path, mdp: TabularMDP, weights: np.ndarray, **about: object) -> Path:
    """Write a learned linear reward as JSON (atomically): its weights by feature name, and ``about`` (how it
    was learned), so that a policy can later be trained on it without the preferences."""
    row = {"kind": "linear", "weights": dict(zip(mdp.feature_names, map(float, weights), strict=True)), **about}
    write_text_atomic(path, json.dumps(row, indent=2) + "\n")
    return Path(path)


def load_linear_reward(path: str | Path, mdp: TabularMDP) -> np.ndarray:
    """The weights of a reward written by ``save_linear_reward``, in ``mdp``'s feature order; a file that is no
    such reward, or names other features than ``mdp``'s, is refused naming the field."""
    where = str(path)
    try:
        row = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(where, f"is not JSON ({error.msg}, line {error.lineno})") from None
    weights = row.get("weights") if isinstance(row, dict) else None
    if not isinstance(weights, dict) or row.get("kind") != "linear":
        raise DataError(where, "is no linear reward (expected kind: linear and weights by feature)", "weights")
    if set(weights) != set(mdp.feature_names):
        raise DataError(
            where, f"names {sorted(weights)}; the environment's features are {list(mdp.feature_names)}", "weights"
        )
    bad = [k for k, v in weights.items() if isinstance(v, bool) or not isinstance(v, int | float)]
    if bad:
        raise DataError(where, f"holds a non-number for {bad[0]}", "weights")
    return np.array([float(weights[name]) for name in mdp.feature_names])
