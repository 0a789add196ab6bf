"""How far to trust a reward gap as a probability: calibration of Bradley-Terry preferences.

A reward model trained with the Bradley-Terry loss claims that the chosen reply is preferred with
probability p = σ(r_c − r_r) (Bradley & Terry 1952; Ouyang et al. 2022, eq. 1). Accuracy only
checks the sign of the gap; calibration checks its size: of the pairs given p ≈ 0.8, about 80 %
should be ordered right. Zeng et al. ("On Diversified Preferences of Large Language Model
Alignment") find that a reward model's calibration error tracks how well a policy aligned with it
turns out, and propose it as an evaluation metric.

Labels: 1 when the reply passed as ``chosen`` was preferred, 0 when ``rejected`` was. Evaluated
preference data always lists the preferred reply first, so ``labels=None`` means all ones.
Bradley-Terry is symmetric (swapping the replies maps p to 1 − p and the label to 1 − label), so
every metric here gives the same value whichever way round a pair is listed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar
from scipy.special import expit

# ``fit_temperature`` searches T within these factors of the validation gaps' root mean square, so
# the search adapts to the reward scale (an untrained head gives gaps of 1e-4, a trained one of 10).
TEMPERATURE_RANGE = (1e-3, 1e3)


@dataclass
class CalibrationOutput:
    """Calibration of σ((r_c − r_r) / T) on ``n`` pairs; ``temperature`` is 1 for the raw rewards."""

    temperature: float
    ece: float
    brier: float
    nll: float
    bins: int
    n: int


def reward_gaps(chosen: ArrayLike, rejected: ArrayLike) -> np.ndarray:
    chosen, rejected = np.asarray(chosen, dtype=float), np.asarray(rejected, dtype=float)
    if chosen.shape != rejected.shape or chosen.ndim != 1:
        raise ValueError(
            f"need one chosen and one rejected reward per pair (got shapes {chosen.shape} and {rejected.shape})"
        )
    return chosen - rejected


def _labels(labels: ArrayLike | None, n: int) -> np.ndarray:
    if labels is None:
        return np.ones(n)
    labels = np.asarray(labels, dtype=float)
    if labels.shape != (n,) or not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError(
            f"labels must hold one 0 or 1 per pair (1 = the chosen reply was preferred); got shape {labels.shape} "
            f"for {n} pairs and values {sorted(set(labels.ravel().tolist()))[:5]}"
        )
    return labels


def preference_probabilities(chosen: ArrayLike, rejected: ArrayLike, temperature: float = 1.0) -> np.ndarray:
    """P(chosen preferred) = σ((r_c − r_r) / T), the Bradley-Terry model with temperature T."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (got {temperature})")
    return expit(reward_gaps(chosen, rejected) / temperature)


def expected_calibration_error(probabilities: ArrayLike, labels: ArrayLike | None = None, bins: int = 10) -> float:
    """Top-label ECE over equal-width confidence bins (Naeini et al. 2015; Guo et al. 2017, sec. 2).

        ECE = Σ_b (|B_b| / n) · |acc(B_b) − conf(B_b)|

    Each pair is judged on the reply the model favours: confidence max(p, 1 − p), correct when that
    reply was the preferred one (1/2 when p = 1/2 exactly, as in ``pairwise_correct``). Confidence
    lies in [1/2, 1], cut into ``bins`` equal-width bins (the last one closed). Why not bin p against
    the label directly: evaluation data lists the preferred reply first, so every label is 1 and
    that ECE would be 1 − mean(p) on any model, calibrated or not; the top-label form is the same
    whichever way round pairs are listed. Empty bins contribute nothing.
    """
    p = np.asarray(probabilities, dtype=float)
    if p.size == 0:
        return float("nan")
    if bins < 1:
        raise ValueError(f"bins must be at least 1 (got {bins})")
    y = _labels(labels, p.size)
    confidence = np.maximum(p, 1 - p)
    correct = np.where(p == 0.5, 0.5, ((p > 0.5) == (y == 1)).astype(float))
    index = np.minimum(((confidence - 0.5) * 2 * bins).astype(int), bins - 1)
    # (|B_b| / n) · |acc − conf| = |Σ_b correct − Σ_b confidence| / n
    gap = np.abs(np.bincount(index, correct, bins) - np.bincount(index, confidence, bins))
    return float(gap.sum() / p.size)


@dataclass(frozen=True)
class ReliabilityBins:
    """Per confidence bin: lower edge, mean confidence, fraction ordered right, and pair count.

    Bins without pairs have NaN confidence and accuracy and a count of 0.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    def ece(self) -> float:
        """Σ_b (|B_b| / n) · |acc(B_b) − conf(B_b)|, the expected calibration error of these bins."""
        filled = self.count > 0
        weights = self.count[filled] / self.count.sum()
        return float(np.sum(weights * np.abs(self.accuracy[filled] - self.confidence[filled])))


def reliability_bins(
    chosen: ArrayLike, rejected: ArrayLike, *, temperature: float = 1.0, bins: int = 10
) -> ReliabilityBins:
    """The top-label reliability diagram of σ((r_c − r_r) / T) (Guo et al. 2017, sec. 2).

    Confidence max(p, 1 − p) lies in [1/2, 1], cut into ``bins`` equal-width bins (the last one
    closed); a pair counts as right when the favoured reply is the chosen one, 1/2 when p = 1/2,
    exactly as in ``expected_calibration_error``, so ``ece()`` of these bins is that ECE.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1 (got {bins})")
    p = preference_probabilities(chosen, rejected, temperature)
    confidence = np.maximum(p, 1 - p)
    correct = np.where(p == 0.5, 0.5, (p > 0.5).astype(float))
    index = np.minimum(((confidence - 0.5) * 2 * bins).astype(int), bins - 1)
    count = np.bincount(index, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, confidence, bins) / count
        accuracy = np.bincount(index, correct, bins) / count
    return ReliabilityBins(0.5 + np.arange(bins) / (2 * bins), mean_confidence, accuracy, count.astype(int))


def brier_score(probabilities: ArrayLike, labels: ArrayLike | None = None) -> float:
    """Mean squared error of the probabilities against the 0/1 labels (Brier 1950).

    A proper scoring rule: it rewards sharpness as well as calibration. Always answering 1/2
    scores exactly 0.25, the bar a useful model must beat.
    """
    p = np.asarray(probabilities, dtype=float)
    if p.size == 0:
        return float("nan")
    return float(np.mean((p - _labels(labels, p.size)) ** 2))


def preference_nll(gaps: ArrayLike, temperature: float = 1.0, labels: ArrayLike | None = None) -> float:
    """Mean negative log-likelihood of the labels under σ(gap / T): mean log(1 + exp(−s · gap / T)), s = 2y − 1.

    The Bradley-Terry training loss at T = 1, written with logaddexp so huge gaps do not overflow.
    """
    gaps = np.asarray(gaps, dtype=float)
    if gaps.size == 0:
        return float("nan")
    sign = 2 * _labels(labels, gaps.size) - 1
    return float(np.mean(np.logaddexp(0.0, -sign * gaps / temperature)))


def fit_temperature(chosen: ArrayLike, rejected: ArrayLike, labels: ArrayLike | None = None) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising the NLL of σ((r_c − r_r) / T).

    One parameter, fitted on validation pairs, never on the pairs it is then judged on. Dividing
    every gap by the same T keeps every pair's order, so accuracy is unchanged; only confidence
    moves. The NLL is convex in 1/T, hence unimodal in log T, and a bounded 1-D search (Brent) on
    log T finds it, within ``TEMPERATURE_RANGE`` times the root mean square gap g_rms. When the
    model orders every validation pair right, the NLL keeps falling as T → 0 and the fit stops at
    the lower bound, 1e-3 · g_rms: use more validation pairs.
    """
    gaps = reward_gaps(chosen, rejected)
    y = _labels(labels, gaps.size)
    if not np.any(gaps != 0):
        raise ValueError(
            f"cannot fit a temperature: all {gaps.size} validation pairs have a reward gap of 0 "
            "(no pairs, or a model that gives every reply the same reward)"
        )
    scale = float(np.sqrt(np.mean(gaps**2)))
    fit = minimize_scalar(
        lambda log_t: preference_nll(gaps / scale, float(np.exp(log_t)), y),
        bounds=tuple(np.log(TEMPERATURE_RANGE)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(fit.x)) * scale


def calibration_metrics(
    chosen: ArrayLike,
    rejected: ArrayLike,
    *,
    temperature: float = 1.0,
    labels: ArrayLike | None = None,
    bins: int = 10,
) -> CalibrationOutput:
    """ECE, Brier score and NLL of σ((r_c − r_r) / T) on these pairs."""
    gaps = reward_gaps(chosen, rejected)
    p = preference_probabilities(chosen, rejected, temperature)
    return CalibrationOutput(
        temperature=float(temperature),
        ece=expected_calibration_error(p, labels, bins),
        brier=brier_score(p, labels),
        nll=preference_nll(gaps, temperature, labels),
        bins=bins,
        n=int(gaps.size),
    )


def temperature_scaled(
    chosen: ArrayLike,
    rejected: ArrayLike,
    validation_chosen: ArrayLike,
    validation_rejected: ArrayLike,
    *,
    labels: ArrayLike | None = None,
    validation_labels: ArrayLike | None = None,
    bins: int = 10,
) -> CalibrationOutput:
    """Fit T on the validation pairs, then measure calibration on these pairs at that T."""
    temperature = fit_temperature(validation_chosen, validation_rejected, validation_labels)
    return calibration_metrics(chosen, rejected, temperature=temperature, labels=labels, bins=bins)
