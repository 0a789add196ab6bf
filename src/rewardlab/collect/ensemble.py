"""An ensemble of linear Bradley-Terry reward heads on frozen-encoder features, for active selection.

Member m is a linear reward r_m(x) = w_m·φ(x) on the frozen features φ (``features.py``), so

    P_m(a ≻ b) = σ(w_m·(φ(a) − φ(b)))

and w_m is fitted on a bootstrap resample of the labelled pairs (c_i: how often pair i was drawn):

    w_m = argmin_w  Σ_i c_i [ −t_i log σ(w·d_i) − (1 − t_i) log σ(−w·d_i) ]  +  λ‖w‖²

with d_i = φ(a_i) − φ(b_i) and t_i the soft target (1 for "a better", the label's strength for a
graded one, ½ for a tie). λ is the weight of a Gaussian prior, fixed however many labels there are,
so with few labels the prior dominates and the members stay close to 0 (unsure), and with many the
data do. The spread of the members is the uncertainty of the reward (Coste et al. 2023, "Reward
Model Ensembles Help Mitigate Overoptimization": ensembles of reward models; bootstrap resampling as
in the bootstrapped DQN and Lakshminarayanan et al. 2017). Each fit is the convex problem the linear
probe solves (``training.probe.fit_linear_bt``, L-BFGS): a soft target t is the pair (d, weight t)
plus the pair (−d, weight 1 − t).

A second posterior (``posterior="laplace"``): the Laplace approximation of Bayesian logistic
regression (MacKay 1992, "The Evidence Framework Applied to Classification Networks"; Bishop 2006,
"Pattern Recognition and Machine Learning", §4.5; neither is in the shared abstracts, the formulas are
the textbook ones). One fit on all the labels gives the MAP w* of the objective above (every c_i = 1);
the posterior is approximated by the Gaussian N(w*, H⁻¹) with H that objective's Hessian at w*,

    H = Σ_i σ(w*·d_i) σ(−w*·d_i) d_i d_iᵀ + 2λ I

(a soft target leaves H as it is: the pairs (d, t) and (−d, 1 − t) have the same curvature), and the
members are ``members`` draws w_m = w* + L⁻ᵀ z_m, z_m ~ N(0, I), H = L Lᵀ. One L-BFGS fit and one
Cholesky factor instead of ``members`` fits, so many members are cheap, and their spread is the
posterior's own, not the resampling noise of five bootstrap fits.

Linear heads on a frozen encoder fit in well under a second, so the ensemble can be refitted every
few labels while annotators work; a fine-tuned reward model (``rewardlab train``) is what the
collected labels are for afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from scipy.linalg import solve_triangular

from rewardlab.training.probe import fit_linear_bt

POSTERIORS = ("bootstrap", "laplace")


@dataclass
class FeatureEnsemble:
    """``members`` linear Bradley-Terry heads, each fitted on its own bootstrap resample (``seed``), or
    drawn from the Laplace posterior (``posterior="laplace"``)."""

    members: int = 5
    l2: float = 1.0
    """λ of the module docstring (on the summed loss)."""
    seed: int = 0
    posterior: Literal["bootstrap", "laplace"] = "bootstrap"
    weights: np.ndarray | None = field(default=None, repr=False)
    """(members, features) once fitted."""

    def __post_init__(self) -> None:
        if self.members < 1:
            raise ValueError(f"members must be at least 1, got {self.members}")
        if not (np.isfinite(self.l2) and self.l2 > 0):
            raise ValueError(f"l2 must be a positive number, got {self.l2}")
        if self.posterior not in POSTERIORS:
            raise ValueError(f"posterior must be one of {', '.join(POSTERIORS)}, got {self.posterior!r}")

    def fit(self, diffs: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None) -> FeatureEnsemble:
        """Fit every member on a bootstrap resample of the pairs (rows of ``diffs`` = φ(a) − φ(b),
        ``targets`` = P(a ≻ b) labelled, in [0, 1]); ``weights`` (one ≥ 0 a pair, default 1) multiply
        each pair's loss, e.g. the importance weights of ``acquisition.lure_weights``."""
        diffs = np.asarray(diffs, dtype=np.float64)
        targets = np.asarray(targets, dtype=np.float64)
        if diffs.ndim != 2 or len(diffs) != len(targets) or not len(diffs):
            raise ValueError(
                f"need (pairs, features) differences and one target a pair, got {diffs.shape} and {targets.shape}"
            )
        if not np.all((targets >= 0) & (targets <= 1)):
            raise ValueError("targets must be probabilities in [0, 1]")
        scale = np.ones(len(diffs)) if weights is None else np.asarray(weights, dtype=np.float64)
        if scale.shape != targets.shape or not np.all(np.isfinite(scale) & (scale >= 0)):
            raise ValueError(f"weights must be one finite number >= 0 a pair, got shape {scale.shape}")
        rng = np.random.default_rng(self.seed)
        both = torch.from_numpy(np.concatenate([diffs, -diffs]))
        if self.posterior == "laplace":
            self.weights = self._laplace(diffs, targets, scale, both, rng)
            return self
        rows = []
        for _ in range(self.members):
            counts = np.bincount(rng.integers(0, len(diffs), len(diffs)), minlength=len(diffs)).astype(np.float64)
            if weights is not None:
                counts = counts * scale
            pair_weights = torch.from_numpy(np.concatenate([counts * targets, counts * (1 - targets)]))
            total = float(pair_weights.sum())
            if total <= 0:  # cannot happen with targets in [0, 1]; kept so a fit never divides by 0
                rows.append(np.zeros(diffs.shape[1]))
                continue
            # fit_linear_bt minimises the weighted mean loss + l2‖w‖², so the summed loss's λ is λ / Σ weights
            rows.append(fit_linear_bt(both, pair_weights, self.l2 / total).double().numpy())
        self.weights = np.stack(rows)
        return self

    def _laplace(
        self,
        diffs: np.ndarray,
        targets: np.ndarray,
        scale: np.ndarray,
        both: torch.Tensor,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """``members`` draws from N(w*, H⁻¹) of the module docstring, (members, features), each pair's
        loss (and so its curvature) multiplied by ``scale``."""
        pair_weights = torch.from_numpy(np.concatenate([scale * targets, scale * (1 - targets)]))
        w_map = fit_linear_bt(both, pair_weights, self.l2 / max(float(scale.sum()), 1e-12)).double().numpy()
        gaps = diffs @ w_map
        tail = np.exp(-np.abs(gaps))
        curvature = scale * tail / (1 + tail) ** 2  # σ(g) σ(−g), without overflow
        hessian = (diffs * curvature[:, None]).T @ diffs + 2 * self.l2 * np.eye(diffs.shape[1])
        lower = np.linalg.cholesky(hessian)
        draws = solve_triangular(lower.T, rng.standard_normal((diffs.shape[1], self.members)), lower=False)
        return w_map[None, :] + draws.T

    def rewards(self, features: np.ndarray) -> np.ndarray:
        """Each member's reward w_m·φ of each row of ``features``, (members, rows)."""
        if self.weights is None:
            raise ValueError("the ensemble is not fitted yet")
        return self.weights @ np.asarray(features, dtype=np.float64).T

    def predict(self, diffs: np.ndarray) -> np.ndarray:
        """P_m(a ≻ b) = σ(w_m·(φ(a) − φ(b))) for each member and pair (rows of ``diffs``), (members, pairs)."""
        return 1.0 / (1.0 + np.exp(-self.rewards(diffs)))
