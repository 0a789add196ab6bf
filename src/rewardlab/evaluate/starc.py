"""STARC distance between two reward functions, measured on a shared sample of scored replies.

Accuracy and correlation say how two reward models agree on a benchmark; they do not say whether
optimising one would also optimise the other. Two rewards that differ by a positive factor or by a
per-prompt constant induce the same ordering of policies, yet their L2 distance can be anything;
a reward and its negation can be arbitrarily close in L2 yet order policies the opposite way.
STARC metrics (Skalse et al. 2024, "STARC: A General Framework For Quantifying Differences Between
Reward Functions", ICLR; definition of a STARC metric in sec. 3) remove exactly those differences
first and then measure what is left; the paper shows that such a distance bounds worst-case regret
from above and below.

The paper's definition, for a canonicalisation function c, a norm n and a metric m:

    s(R) = c(R) / n(c(R))    (and s(R) = c(R) when n(c(R)) = 0)
    d(R₁, R₂) = m(s(R₁), s(R₂))

The variant implemented here, for prompt-only (contextual bandit) rewards R(x, y) of a reply y to a
prompt x, evaluated on a finite sample of (x, y):

- c: subtract each prompt's mean reward over its sampled replies,
  c(R)(x, y) = R(x, y) − mean_{y' sampled for x} R(x, y').
  This is the paper's value-adjusted canonicalisation, c(R)(s, a, s') = E[R(s, a, S') − V^π(s) + γ V^π(S')],
  for one-step episodes (the next state is terminal, so V^π(S') = 0) with π the sample's own
  replies to each prompt: V^π(x) is then the per-prompt mean. Potential shaping in a one-step
  episode is a per-prompt constant shift, which c removes.
- n: the L2 norm over the sample, every (prompt, reply) weighted equally.
- m: the L2 distance, divided by 2 (our scaling) so that d lies in [0, 1]: both standardised
  vectors have norm 1 (or 0), so ‖s₁ − s₂‖ ≤ 2, with 2 exactly when R₂ is a negated R₁.

So d = 0 for a positive rescaling and per-prompt shifts of the same reward, d = 1 for its
negation, and d ≈ 1/√2 for two independent random rewards. Prompts with one sampled reply
canonicalise to 0 and carry no information; at least one prompt needs two or more.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from numpy.typing import ArrayLike

# A canonicalised reward whose norm is below this fraction of the raw reward's norm is treated as
# exactly 0 (a reward constant within each prompt leaves only rounding error after centring).
RELATIVE_ZERO = 1e-9


def _prompt_index(prompt_ids: Sequence[Hashable], n: int) -> np.ndarray:
    if len(prompt_ids) != n:
        raise ValueError(f"need one prompt id per reward (got {len(prompt_ids)} ids for {n} rewards)")
    if n == 0:
        raise ValueError("no rewards to compare")
    index: dict[Hashable, int] = {}
    groups = np.array([index.setdefault(key, len(index)) for key in prompt_ids], dtype=int)
    if np.bincount(groups).max() < 2:
        raise ValueError(
            "STARC needs at least one prompt with two or more scored replies: with one reply per prompt every "
            "reward is a per-prompt constant and canonicalises to 0; score several replies per prompt"
        )
    return groups


def canonicalise(rewards: ArrayLike, prompt_ids: Sequence[Hashable]) -> np.ndarray:
    """c(R)(x, y) = R(x, y) − mean of R over the sampled replies to x (value-adjusted, one-step episodes)."""
    rewards = np.asarray(rewards, dtype=float)
    if rewards.ndim != 1 or not np.isfinite(rewards).all():
        raise ValueError(f"rewards must be a flat array of finite numbers (got shape {rewards.shape})")
    groups = _prompt_index(prompt_ids, rewards.size)
    means = np.bincount(groups, rewards) / np.bincount(groups)
    return rewards - means[groups]


def standardise(rewards: ArrayLike, prompt_ids: Sequence[Hashable]) -> np.ndarray:
    """s(R) = c(R) / ‖c(R)‖₂, or the zero vector when c(R) = 0 (a reward constant within each prompt)."""
    centred = canonicalise(rewards, prompt_ids)
    norm = float(np.linalg.norm(centred))
    if norm <= RELATIVE_ZERO * float(np.linalg.norm(rewards)):
        return np.zeros_like(centred)
    return centred / norm


def starc_distance(rewards_a: ArrayLike, rewards_b: ArrayLike, prompt_ids: Sequence[Hashable]) -> float:
    """d(R_a, R_b) = ‖s(R_a) − s(R_b)‖₂ / 2 ∈ [0, 1], both rewards scored on the same (prompt, reply) sample.

    ``rewards_a[i]`` and ``rewards_b[i]`` must be the two models' rewards for the same reply to
    the prompt ``prompt_ids[i]`` (any hashable key: text, id or index).
    """
    a, b = np.asarray(rewards_a, dtype=float), np.asarray(rewards_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(
            f"both reward functions must be scored on the same sample (got {a.shape} and {b.shape} rewards)"
        )
    return float(np.linalg.norm(standardise(a, prompt_ids) - standardise(b, prompt_ids)) / 2)
