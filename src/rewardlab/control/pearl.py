"""PEARL: label a target task's segment pairs from another task's preferences, then learn a reward that
tolerates the noise of those labels (Liu, Du, Bai, Lyu & Li, "PEARL: Zero-shot Cross-task Preference
Alignment and Robust Reward Learning for Robotic Manipulation", ICML 2024).

Two parts, as in the paper:

- **Cross-task Preference Alignment (CPA).** The two tasks' segments live in different spaces (other
  states, other layouts), so they cannot be compared directly; their *internal geometry* can. A
  Gromov-Wasserstein plan (Mémoli 2011; Peyré, Cuturi & Solomon 2016) between the source and the target
  segments, computed from each task's own segment-to-segment distances, says which source segments play
  the part of each target segment, and a target pair's label is the plan-weighted mean of the labels of
  the source pairs it corresponds to (``transfer_labels``).
- **Robust Reward Learning (RRL).** The reward of a step is a Gaussian, r(s, a) ~ N(μ(s, a), σ²(s, a));
  Bradley-Terry is applied to reparameterised samples of the segment returns, and a KL term towards
  N(0, 1) keeps σ from collapsing (``robust_bt_loss``). A step whose reward the labels disagree about can
  keep a wide σ, which flattens the likelihood of the pairs it appears in instead of bending μ to fit them.

Written from the paper's description (its full text was not at hand offline): the transfer rule and the
Gaussian reward are as its abstract states them; the KL-to-N(0, 1) form of the σ regulariser, the
restriction of the transfer sum to labelled source pairs, and the segment embedding are this module's
choices, documented where they are made.

In the tabular MDPs of ``rewardlab.control.mdp`` a segment is embedded by its summed transition features
Σ_t φ(s_t, a_t) (``segment_features``): two segments at distance 0 have the same partial return under every
linear reward, which is the geometry that preferences over partial returns see. The embedding only enters
through within-task distances, so relabelling a task's states, or permuting its feature columns, leaves
the plan unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.control.mdp import TabularMDP
from rewardlab.control.preference_models import discounts, segment_batch
from rewardlab.control.segments import Segment, SegmentPreference

# ---------------------------------------------------------------------------------------------------------
# Cross-task preference alignment


def segment_features(mdp: TabularMDP, segment: Segment) -> np.ndarray:
    """φ(s_t, a_t) of each step of a tabular segment, shape (T, F); states and actions must be indices
    of ``mdp`` (a clear error otherwise, not an IndexError deep in numpy)."""
    states, actions = np.asarray(segment.observations), np.asarray(segment.actions)
    if states.dtype.kind not in "iu" or actions.dtype.kind not in "iu":
        raise ValueError("a tabular segment needs integer states and actions")
    if states.min() < 0 or states.max() >= mdp.n_states or actions.min() < 0 or actions.max() >= mdp.n_actions:
        raise ValueError(
            f"segment has states {states.min()}..{states.max()} and actions {actions.min()}..{actions.max()}; "
            f"the MDP has {mdp.n_states} states and {mdp.n_actions} actions"
        )
    return mdp.features[states[:-1], actions]


def distance_matrix(embeddings: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Euclidean distances between the rows of ``embeddings`` (n, d); with ``normalize`` divided by their
    largest value, so that two tasks whose segments differ in scale (longer segments, bigger feature
    counts) still compare shape to shape."""
    x = np.asarray(embeddings, dtype=float)
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))
    top = d.max()
    return d / top if normalize and top > 0 else d


def gromov_wasserstein_plan(source: np.ndarray, target: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
    """The plan T (m, n) between m source and n target items, uniform marginals, that solves

        min_T Σ_{i,k,j,l} (C^X_{ik} − C^Y_{jl})² T_{ij} T_{kl}     (PEARL's CPA; Mémoli 2011)

    from the within-task distance matrices ``source`` = C^X (m, m) and ``target`` = C^Y (n, n).
    ``epsilon`` = 0 uses POT's conditional-gradient solver (``ot.gromov.gromov_wasserstein``: a local
    optimum, a permutation when m = n and the distances are distinct); ``epsilon`` > 0 adds the entropy
    term −ε·H(T) (Peyré et al. 2016), which spreads each target segment's mass over the source segments
    that look alike, so more target pairs meet a labelled source pair."""
    import ot

    source, target = np.asarray(source, dtype=float), np.asarray(target, dtype=float)
    for name, c in (("source", source), ("target", target)):
        if c.ndim != 2 or c.shape[0] != c.shape[1]:
            raise ValueError(f"{name} must be a square distance matrix (got shape {c.shape})")
    p, q = ot.unif(source.shape[0]), ot.unif(target.shape[0])
    if epsilon > 0:
        plan = np.asarray(ot.gromov.entropic_gromov_wasserstein(source, target, p, q, "square_loss", epsilon=epsilon))
    else:
        plan = np.asarray(ot.gromov.gromov_wasserstein(source, target, p, q, "square_loss"))
    if not np.all(np.isfinite(plan)):
        raise ValueError(f"the Gromov-Wasserstein solver did not converge (epsilon {epsilon}); use a larger epsilon")
    return plan


def transfer_labels(
    plan: np.ndarray,
    source_pairs: Sequence[tuple[int, int]],
    source_labels: Sequence[float],
    target_pairs: Sequence[tuple[int, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """Each target pair's soft label P(u ≻ v) and the plan mass behind it (its weight).

    With T̂_{iu} = T_{iu} / Σ_i' T_{i'u} (the source segments that target segment u corresponds to) and the
    labelled source pairs (a_p, b_p, y_p), counted in both orders (y for a_p ≻ b_p, 1 − y for b_p ≻ a_p):

        w_uv = Σ_p T̂_{a_p u} T̂_{b_p v} + T̂_{b_p u} T̂_{a_p v}
        ŷ_uv = [Σ_p T̂_{a_p u} T̂_{b_p v} · y_p + T̂_{b_p u} T̂_{a_p v} · (1 − y_p)] / w_uv

    This is PEARL's transfer rule, ŷ(σ^Y_u, σ^Y_v) = Σ_{i,k} T̂_{iu} T̂_{kv} y(σ^X_i, σ^X_k) ("the weighted sum
    of source task preference labels with the correspondence as weights"), with the sum restricted to the
    source pairs that carry a label and renormalised by their mass. A target pair no labelled
    source pair reaches (w_uv = 0) gets ŷ = 1/2 and weight 0: no evidence either way."""
    plan = np.asarray(plan, dtype=float)
    mass = plan.sum(axis=0, keepdims=True)
    T = np.divide(plan, mass, out=np.zeros_like(plan), where=mass > 0)
    a, b = np.asarray(source_pairs, dtype=int).reshape(-1, 2).T
    y = np.asarray(source_labels, dtype=float)
    if y.shape != a.shape:
        raise ValueError(f"{len(y)} source labels for {len(a)} source pairs")
    u, v = np.asarray(target_pairs, dtype=int).reshape(-1, 2).T
    forward = T[a][:, u] * T[b][:, v]  # (P, N): source pair p read as (u, v)
    backward = T[b][:, u] * T[a][:, v]
    weight = forward.sum(0) + backward.sum(0)
    numerator = y @ forward + (1.0 - y) @ backward
    label = np.divide(numerator, weight, out=np.full_like(weight, 0.5), where=weight > 1e-12)
    return label, weight


def _distinct(segments: Sequence[Segment]) -> tuple[list[Segment], list[int]]:
    """The distinct segments in order of first appearance, and each input's position among them."""
    index: dict[Segment, int] = {}
    positions = [index.setdefault(s, len(index)) for s in segments]
    return list(index), positions


@dataclass(frozen=True)
class TransferOutput:
    """Target pairs with transferred labels. ``SegmentPreference`` holds a hard judgement only, so the soft
    label travels beside it: ``preferences[k].preferred`` is the rounded ``labels[k]`` ("equal" at 1/2),
    ``weights[k]`` the plan mass behind it (0: no source evidence) and ``plan`` the GW plan between the
    distinct source segments and the distinct target segments, in order of first appearance."""

    preferences: list[SegmentPreference]
    labels: np.ndarray
    weights: np.ndarray
    plan: np.ndarray

    def pairs(self) -> list[tuple[SegmentPreference, float]]:
        return list(zip(self.preferences, self.labels.tolist(), strict=True))


def transfer_preferences(
    source: Sequence[SegmentPreference],
    source_mdp: TabularMDP,
    target_pairs: Sequence[tuple[Segment, Segment]],
    target_mdp: TabularMDP,
    epsilon: float = 0.0,
    task: str | None = None,
) -> TransferOutput:
    """PEARL's CPA end to end: embed each task's distinct segments by their summed features
    (``segment_features``), align them with a Gromov-Wasserstein plan on the within-task distances, and label
    ``target_pairs`` from the ``source`` judgements (``transfer_labels``). ``task`` names the target task
    on the returned judgements."""
    if not source:
        raise ValueError("no source preferences to transfer")
    if not target_pairs:
        raise ValueError("no target pairs to label")
    src_segments, src_pos = _distinct([s for p in source for s in (p.a, p.b)])
    tgt_segments, tgt_pos = _distinct([s for pair in target_pairs for s in pair])
    src_emb = np.stack([segment_features(source_mdp, s).sum(0) for s in src_segments])
    tgt_emb = np.stack([segment_features(target_mdp, s).sum(0) for s in tgt_segments])
    plan = gromov_wasserstein_plan(distance_matrix(src_emb), distance_matrix(tgt_emb), epsilon)
    labels, weights = transfer_labels(
        plan,
        list(zip(src_pos[0::2], src_pos[1::2], strict=True)),
        [p.label for p in source],
        list(zip(tgt_pos[0::2], tgt_pos[1::2], strict=True)),
    )
    preferences = [
        SegmentPreference(a, b, "a" if y > 0.5 else "b" if y < 0.5 else "equal", task)
        for (a, b), y in zip(target_pairs, labels, strict=True)
    ]
    return TransferOutput(preferences, labels, weights, plan)


# ---------------------------------------------------------------------------------------------------------
# Robust reward learning


def robust_bt_loss(
    mean_a: Tensor,
    std_a: Tensor,
    mean_b: Tensor,
    std_b: Tensor,
    label: Tensor,
    noise_a: Tensor,
    noise_b: Tensor,
    kl_coef: float = 0.0,
    step_weights_a: Tensor | None = None,
    step_weights_b: Tensor | None = None,
) -> Tensor:
    """Per-pair loss of PEARL's robust reward learning (RRL), for segments a and b of T steps.

    ``mean_*``, ``std_*`` (N, T) are μ and σ of each step's reward, ``noise_*`` (K, N, T) standard normal
    draws, ``label`` (N,) the soft label y = P(a ≻ b), ``step_weights_*`` (N, T) the weight g_t of each step
    in the return (γ^t on real steps and 0 on padding, as ``preference_models.partial_return`` scores; all
    ones by default). With the reparameterised returns R̃ = Σ_t g_t·(μ_t + σ_t·ε_t) and d = R̃_a − R̃_b:

        loss = (1/K)·Σ_k −[y·log σ(d_k) + (1 − y)·log σ(−d_k)]
               + β·(1/n)·Σ_{real steps t of a and b} KL(N(μ_t, σ_t²) ‖ N(0, 1)),
        KL = ½(μ² + σ² − 1) − log σ,

    n the number of real steps (g_t > 0) of the two segments. With σ = 0 and β = 0 it is Bradley-Terry on
    the mean returns (Christiano et al. 2017, with a soft label). Steps with σ = 0 (transitions out of an
    absorbing state, which carry no reward) are left out of the KL term, whose −log σ is infinite there."""
    g_a = torch.ones_like(mean_a) if step_weights_a is None else step_weights_a
    g_b = torch.ones_like(mean_b) if step_weights_b is None else step_weights_b
    d = (g_a * (mean_a + std_a * noise_a)).sum(-1) - (g_b * (mean_b + std_b * noise_b)).sum(-1)  # (K, N)
    ce = -(label * F.logsigmoid(d) + (1 - label) * F.logsigmoid(-d)).mean(0)
    if not kl_coef:
        return ce
    steps = (g_a > 0).sum(-1) + (g_b > 0).sum(-1)
    kl = _kl_to_standard(mean_a, std_a, g_a > 0) + _kl_to_standard(mean_b, std_b, g_b > 0)
    return ce + kl_coef * kl / steps.clamp(min=1)


def _kl_to_standard(mean: Tensor, std: Tensor, real: Tensor) -> Tensor:
    counted = (std > 0) & real
    safe = torch.where(counted, std, torch.ones_like(std))
    kl = 0.5 * (mean**2 + safe**2 - 1) - torch.log(safe)
    return torch.where(counted, kl, torch.zeros_like(kl)).sum(-1)


@dataclass(frozen=True)
class RobustReward:
    """A learned linear Gaussian reward: μ(s, a) = φ·``weights``, log σ(s, a) = φ·``log_std_weights`` +
    ``log_std_bias`` (σ = 0 on transitions with φ = 0, out of absorbing states). ``weights`` is what a
    policy should be evaluated with (PEARL acts on the mean reward); σ says how unsure the labels left it."""

    weights: np.ndarray
    log_std_weights: np.ndarray
    log_std_bias: float
    final_loss: float

    def std(self, mdp: TabularMDP) -> np.ndarray:
        live = np.abs(mdp.features).sum(-1) > 0
        return np.where(live, np.exp(mdp.features @ self.log_std_weights + self.log_std_bias), 0.0)


def fit_robust_reward(
    mdp: TabularMDP,
    preferences: Sequence[SegmentPreference],
    labels: Sequence[float] | None = None,
    *,
    gaussian: bool = True,
    kl_coef: float = 0.1,
    samples: int = 8,
    steps: int = 300,
    lr: float = 0.05,
    seed: int = 0,
) -> RobustReward:
    """Fit PEARL's robust reward (``robust_bt_loss``) on segment pairs of ``mdp`` by full-batch Adam.

    ``labels`` are soft labels P(a ≻ b) (transferred ones), one a pair; None takes each judgement's own.
    ``gaussian`` = False fits plain Bradley-Terry on partial returns (σ ≡ 0, no KL), the baseline the paper
    compares against, with the same optimiser (``reward_learning.learn_linear_reward`` is the library's
    plain learner, for hard labels). Returns are discounted partial returns, Σ_t γ^t r_t, as the simulated
    labels of ``preference_models`` score them. Model: linear in the MDP's features for both μ and log σ,
    since the true reward is linear in them; ``samples`` = K draws of the returns each step, fixed by ``seed``."""
    batch = segment_batch(mdp, preferences)  # checks indices, feasibility and equal lengths, naming the record
    y = batch.labels.numpy() if labels is None else np.asarray(labels, dtype=float)
    if y.shape != (len(preferences),) or np.any((y < 0) | (y > 1)):
        raise ValueError(f"labels must be {len(preferences)} probabilities in [0, 1] (got shape {y.shape})")
    features = torch.as_tensor(mdp.features, dtype=torch.float64)
    phi = features[batch.states[..., :-1], batch.actions]  # (N, 2, L, F)
    g = discounts(batch.mask, mdp.gamma)  # (N, 2, L)
    live = (phi.abs().sum(-1) > 0) & (batch.mask > 0)
    label = torch.as_tensor(y, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    w = torch.zeros(mdp.n_features, dtype=torch.float64, requires_grad=True)
    w_std = torch.zeros(mdp.n_features, dtype=torch.float64, requires_grad=True)
    b_std = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([w, w_std, b_std] if gaussian else [w], lr=lr)
    no_noise = torch.zeros((1, *phi.shape[:1], phi.shape[2]), dtype=torch.float64)

    def loss_now() -> Tensor:
        mean = phi @ w
        if gaussian:
            std = torch.where(live, torch.exp(phi @ w_std + b_std), 0.0)
            noise = torch.randn((2, samples, *no_noise.shape[1:]), generator=generator, dtype=torch.float64)
        else:
            std, noise = torch.zeros_like(mean), torch.stack([no_noise, no_noise])
        losses = robust_bt_loss(
            mean[:, 0],
            std[:, 0],
            mean[:, 1],
            std[:, 1],
            label,
            noise[0],
            noise[1],
            kl_coef if gaussian else 0.0,
            g[:, 0],
            g[:, 1],
        )
        return losses.mean()

    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_now()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = float(loss_now())
    return RobustReward(w.detach().numpy().copy(), w_std.detach().numpy().copy(), float(b_std.detach()), final)
