"""Best-of-N: how far it moves from the policy (KL), and its expected reward from n ≥ N samples.

Pure functions of numbers; the study that feeds them samples and rewards is ``sampling/overopt.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import gammaln


def best_of_n_kl(n: int) -> float:
    """KL(π_bon ‖ π) ≈ log N − (N − 1)/N nats.

    The analytic KL of best-of-N (Stiennon et al. 2020, appendix G.3; Gao et al. 2022, §2.2) for
    a continuous reward with no ties; Beirami et al. 2024 ("Theoretical guarantees on the best-of-n
    alignment policy") prove it is an upper bound on the true KL, reached only as the number of
    distinct outcomes grows. N = 1 is the policy itself: 0.
    """
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"N must be a positive integer (got {n!r})")
    return math.log(n) - (n - 1) / n


def best_of_n_weights(n: int, big_n: int) -> np.ndarray:
    """Weight of each of ``n`` samples, sorted by proxy ascending, in E[reward of the best of N].

        w_i = C(i − 1, N − 1) / C(n, N),   i = 1 … n

    Gao et al. 2022 ("Scaling Laws for Reward Model Overoptimization", appendix: the unbiased
    best-of-N estimator): of the C(n, N) N-subsets of the n samples, C(i − 1, N − 1) have the
    i-th smallest as their maximum, so averaging the winner's reward over every subset weights it
    so. The weights sum to 1 and only the top n − N + 1 samples get any.
    """
    if not 1 <= big_n <= n:
        raise ValueError(f"best-of-N needs 1 ≤ N ≤ n (got N={big_n}, n={n})")
    i = np.arange(1, n + 1)
    # log-binomials keep large n (C(256, 128) ~ 1e75) finite
    log_num = _log_comb(i - 1, big_n - 1)
    weights = np.where(i >= big_n, np.exp(log_num - _log_comb(np.array(n), big_n)), 0.0)
    return weights


def best_of_n_curve(proxy: Sequence[float], gold: Sequence[float], max_n: int | None = None) -> np.ndarray:
    """E[gold reward of the reply the proxy picks among N] for N = 1 … max_n, from n samples of one prompt.

    Samples are sorted by proxy (ties broken by position, stably) and weighted by
    :func:`best_of_n_weights`; pass ``gold = proxy`` for the proxy's own expected maximum. Unbiased
    for every N ≤ n, and uses all n samples for each N, unlike drawing disjoint groups of N.
    """
    proxy_arr, gold_arr = np.asarray(proxy, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if proxy_arr.shape != gold_arr.shape or proxy_arr.ndim != 1 or proxy_arr.size == 0:
        raise ValueError(
            f"proxy and gold must be equal-length non-empty lists (got {proxy_arr.shape}, {gold_arr.shape})"
        )
    n = proxy_arr.size
    max_n = n if max_n is None else max_n
    if not 1 <= max_n <= n:
        raise ValueError(f"max_n must be between 1 and the number of samples {n} (got {max_n})")
    ordered = gold_arr[np.argsort(proxy_arr, kind="stable")]
    return np.array([best_of_n_weights(n, big_n) @ ordered for big_n in range(1, max_n + 1)])


def _log_comb(a: np.ndarray, b: int) -> np.ndarray:
    """log C(a, b), −inf where a < b."""
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        value = gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)
    return np.where(a >= b, value, -np.inf)
