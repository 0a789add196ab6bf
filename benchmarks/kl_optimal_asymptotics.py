"""Best-of-N against the KL-constrained optimum, exactly, in Yang et al. 2024's memoryless/linear setting.

Tokens are drawn i.i.d. from p = (0.5, 0.3, 0.2) with rewards (0, 1, 2); a reply of L tokens has
the sum as its reward, and best-of-N uses log N = δ·L (δ = 0.25 nats per token by default). The
distribution of the total reward is computed exactly (convolution in log space), best-of-N on it
by ``best_of_n_levels`` (any N, even e^512) and the optimum at best-of-N's exact KL by
``solve_tilt``. Prints a Markdown table: the ratio of the two reward gains over E_p R tends to 1.

    python benchmarks/kl_optimal_asymptotics.py [--delta 0.25] [--lengths 8,32,128,512,1024,2048]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from rewardlab.sampling.kl_optimal import best_of_n_levels, solve_tilt

TOKEN_P = np.array([0.5, 0.3, 0.2])


def total_reward_log_pmf(length: int) -> np.ndarray:
    """log P(R = k), k = 0 … 2L."""
    log_pmf = np.array([0.0])
    for _ in range(length):
        new = np.full(log_pmf.size + 2, -np.inf)
        for reward, prob in enumerate(TOKEN_P):
            new[reward : reward + log_pmf.size] = np.logaddexp(
                new[reward : reward + log_pmf.size], log_pmf + math.log(prob)
            )
        log_pmf = new
    return log_pmf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delta", type=float, default=0.25, help="log N per token")
    parser.add_argument("--lengths", default="8,32,128,512,1024,2048")
    args = parser.parse_args()
    mean = float(TOKEN_P @ np.arange(3))
    print("| L | log N | log N − (N−1)/N | exact BoN KL | E_bon R / L | E_tilt R / L | gain ratio |")
    print("|---|---|---|---|---|---|---|")
    for length in map(int, args.lengths.split(",")):
        log_pmf = total_reward_log_pmf(length)
        levels = np.arange(log_pmf.size, dtype=np.float64)
        log_n = args.delta * length
        n = math.exp(log_n)
        bon = best_of_n_levels(levels, log_pmf, n)
        tilt = solve_tilt(levels, bon.kl, log_pmf)
        ratio = (tilt.expected_reward - mean * length) / (bon.expected_reward - mean * length)
        print(
            f"| {length} | {log_n:g} | {log_n - (n - 1) / n:.3f} | {bon.kl:.3f} | {bon.expected_reward / length:.4f} "
            f"| {tilt.expected_reward / length:.4f} | {ratio:.4f} |"
        )


if __name__ == "__main__":
    main()
