"""Is reward model A better than B on the same pairs? Paired tests: pure functions over correctness arrays.

Two models scored on the same pairs are not independent samples: most pairs are easy or hard for
both. Comparing their two accuracy intervals wastes that pairing (the intervals overlap long after
the difference is clear), so the difference is tested pair by pair instead, twice:

- McNemar's exact test looks only at the pairs where the models disagree;
- a paired bootstrap resamples pairs (both models' outcomes together) for an interval on the
  accuracy difference, ties in score included at half credit.

A verdict names a winner only when both agree, so neither the exclusion of half-right pairs from
McNemar nor the bootstrap's approximation can decide alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binomtest

from rewardlab.evaluate.metrics import bootstrap_ci

NO_DIFFERENCE = "no significant difference at the {level:g} % level"


@dataclass
class PairedComparison:
    """Outcome of comparing two models on the same ``n`` pairs.

    ``a_only``: A right and B wrong; ``b_only``: B right and A wrong (the discordant pairs McNemar
    uses); ``half_right``: pairs where at least one model gave both replies exactly the same reward
    (correctness 1/2), counted in the accuracies and the bootstrap but not in McNemar.
    """

    n: int
    accuracy_a: float
    accuracy_b: float
    difference: float
    ci_low: float
    ci_high: float
    both_right: int
    both_wrong: int
    a_only: int
    b_only: int
    half_right: int
    mcnemar_p: float
    verdict: str
    alpha: float


def mcnemar_exact_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of ``a_only`` out of the discordant pairs.

    Under the null hypothesis that both models are equally accurate, each discordant pair is as
    likely to favour A as B, so with ``n = a_only + b_only``, ``K ~ Binomial(n, 1/2)`` and
    (McNemar 1947; the exact conditional form, Fagerland, Lydersen & Laake 2013)

        p = min(1, 2 · P(K ≤ min(a_only, b_only))) = min(1, 2 · Σ_{i ≤ k} C(n, i) / 2^n).

    Exact, not the chi-squared approximation, because the discordant count is often small.
    Example: 10 against 2 gives 2 · (1 + 12 + 66) / 4096 = 158 / 4096 = 0.0386.
    No discordant pairs: p = 1 (nothing tells the models apart). Computed by ``scipy.stats.binomtest``.
    """
    if a_only < 0 or b_only < 0:
        raise ValueError(f"discordant counts must be non-negative (got {a_only} and {b_only})")
    if a_only + b_only == 0:
        return 1.0
    return float(binomtest(min(a_only, b_only), a_only + b_only, 0.5).pvalue)  # two-sided, symmetric at ½


def _check_correctness(correct_a: ArrayLike, correct_b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"paired comparison needs one correctness value per pair from each model on the same pairs "
            f"(got shapes {a.shape} and {b.shape}); score both models on the same list of pairs"
        )
    if a.size == 0:
        raise ValueError("no pairs to compare")
    allowed = np.isin(a, (0.0, 0.5, 1.0)) & np.isin(b, (0.0, 0.5, 1.0))
    if not allowed.all():
        bad = float(np.concatenate([a, b])[~np.concatenate([allowed, allowed])][0])
        raise ValueError(
            f"correctness values must be 0, 0.5 or 1 (got {bad}); compute them with metrics.pairwise_correct"
        )
    return a, b


def verdict(
    mcnemar_p: float, ci_low: float, ci_high: float, alpha: float = 0.05, names: tuple[str, str] = ("A", "B")
) -> str:
    """Name the better model only when McNemar (p < alpha) and the interval (excluding 0) agree."""
    if mcnemar_p < alpha and ci_low > 0:
        return f"{names[0]} is better"
    if mcnemar_p < alpha and ci_high < 0:
        return f"{names[1]} is better"
    return NO_DIFFERENCE.format(level=100 * alpha)


def compare_paired(
    correct_a: ArrayLike,
    correct_b: ArrayLike,
    *,
    alpha: float = 0.05,
    resamples: int = 2000,
    seed: int = 0,
    names: tuple[str, str] = ("A", "B"),
) -> PairedComparison:
    """Compare two models' per-pair correctness (1, 1/2 or 0 from ``pairwise_correct``) on the same pairs.

    The interval is a percentile bootstrap of the mean of ``correct_a − correct_b``: resampling
    the per-pair differences resamples whole pairs, which keeps each pair's two outcomes together
    (the paired bootstrap; Efron & Tibshirani 1993, ch. 13). Its confidence is ``1 − alpha``, the
    same level as the test.
    """
    a, b = _check_correctness(correct_a, correct_b)
    half = (a == 0.5) | (b == 0.5)
    a_only, b_only = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    p = mcnemar_exact_p(a_only, b_only)
    low, high = bootstrap_ci(a - b, confidence=1 - alpha, resamples=resamples, seed=seed)
    return PairedComparison(
        n=int(a.size),
        accuracy_a=float(a.mean()),
        accuracy_b=float(b.mean()),
        difference=float((a - b).mean()),
        ci_low=low,
        ci_high=high,
        both_right=int(((a == 1) & (b == 1)).sum()),
        both_wrong=int(((a == 0) & (b == 0)).sum()),
        a_only=a_only,
        b_only=b_only,
        half_right=int(half.sum()),
        mcnemar_p=p,
        verdict=verdict(p, low, high, alpha, names),
        alpha=alpha,
    )
