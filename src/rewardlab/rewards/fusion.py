"""RewardFusion (Shen et al. 2023, "The Trickle-down Impact of Reward (In-)consistency on RLHF"):
at inference, a reply's reward is fused with the rewards of similar, already scored examples, so
that two nearly identical inputs cannot receive very different rewards.

The paper (abstract: "ConvexDA and RewardFusion ... enhance reward consistency through
extrapolation during the RM training and inference stage") fuses a reward with those of similar
examples retrieved by embedding similarity. The exact weighting of its section 5 could not be
checked here, so this module implements one stated form, a similarity-weighted combination::

    s_ij      = cos(e(x_i), e(m_j))                        similarity to memory example m_j
    w_ij      = exp(s_ij / τ) / Σ_{k ∈ K_i} exp(s_ik / τ)   for j in K_i (the top_k most similar), else 0
    r̂(x_i)    = (1 − α) · r(x_i) + α · Σ_j w_ij · r(m_j)

α = 0 is the base reward; α = 1 replaces it with the neighbours' weighted reward. Consistency: two
inputs with the same embedding get the same weights, so their fused rewards differ by exactly
(1 − α)·|r(x) − r(x')|, and by close to that when the embeddings are close (the softmax is smooth
in the similarities). Pure numpy; the ``FusedScorer`` wrapper takes any object with
``score(prompts, replies)`` and an ``embed(prompts, replies)`` callable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from rewardlab.data.records import Prompt

Embed = Callable[[Sequence[Prompt], Sequence[str]], ArrayLike]
"""(prompts, replies) -> an (n, d) array, one embedding per (prompt, reply)."""


def _unit_rows(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"{name} must be an (n, d) array of embeddings (got shape {a.shape})")
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds a zero or non-finite embedding: cosine similarity is undefined")
    return a / norms


def fusion_problems(alpha: float, temperature: float, top_k: int | None) -> list[str]:
    """Every bad fusion setting at once (the one place they are checked: ``fuse_rewards`` and the CLI)."""
    problems = []
    if not 0 <= alpha <= 1:
        problems.append(f"alpha must be in [0, 1] (got {alpha})")
    if not temperature > 0:
        problems.append(f"temperature must be positive (got {temperature})")
    if top_k is not None and top_k < 1:
        problems.append(f"top_k must be at least 1 (got {top_k})")
    return problems


def similarity_weights(
    queries: ArrayLike, memory: ArrayLike, temperature: float = 0.1, top_k: int | None = None
) -> np.ndarray:
    """(n, m) weights w_ij = softmax over j ∈ K_i of cos(q_i, m_j)/τ, zero outside K_i, the ``top_k``
    most similar memory rows (all of them when ``top_k`` is None). Each row sums to 1."""
    if problems := fusion_problems(0.0, temperature, top_k):
        raise ValueError("; ".join(problems))
    q, m = _unit_rows(queries, "queries"), _unit_rows(memory, "memory")
    if q.shape[1] != m.shape[1]:
        raise ValueError(f"queries and memory embeddings differ in size ({q.shape[1]} vs {m.shape[1]})")
    if m.shape[0] == 0:
        raise ValueError("the memory of scored examples is empty")
    logits = (q @ m.T) / temperature
    if top_k is not None and top_k < m.shape[0]:
        kth = np.partition(logits, -top_k, axis=1)[:, -top_k][:, None]
        # ties at the k-th value are all kept: the weights stay a function of the similarities alone
        logits = np.where(logits >= kth, logits, -np.inf)
    logits = logits - logits.max(axis=1, keepdims=True)
    w = np.exp(logits)
    return w / w.sum(axis=1, keepdims=True)


def fuse_rewards(
    rewards: ArrayLike,
    embeddings: ArrayLike,
    memory_rewards: ArrayLike,
    memory_embeddings: ArrayLike,
    alpha: float = 0.5,
    temperature: float = 0.1,
    top_k: int | None = None,
) -> np.ndarray:
    """r̂(x_i) = (1 − α)·r(x_i) + α·Σ_j w_ij·r(m_j), w from ``similarity_weights`` (module docstring)."""
    if problems := fusion_problems(alpha, temperature, top_k):
        raise ValueError("; ".join(problems))
    r = np.asarray(rewards, dtype=float)
    mr = np.asarray(memory_rewards, dtype=float)
    e, me = np.asarray(embeddings, dtype=float), np.asarray(memory_embeddings, dtype=float)
    if r.ndim != 1 or e.ndim != 2 or r.shape[0] != e.shape[0]:
        raise ValueError(f"need one reward per embedding row (got rewards {r.shape}, embeddings {e.shape})")
    if mr.ndim != 1 or me.ndim != 2 or mr.shape[0] != me.shape[0]:
        raise ValueError(f"need one memory reward per memory embedding row (got {mr.shape} and {me.shape})")
    if alpha == 0:
        return r.copy()
    w = similarity_weights(e, me, temperature, top_k)
    return (1 - alpha) * r + alpha * (w @ mr)


@dataclass
class FusedScorer:
    """A scorer whose rewards are fused with a memory of scored examples (``fuse_rewards``).

    ``scorer`` is anything with ``score(prompts, replies) -> list[float]`` (e.g.
    ``rewardlab.evaluate.scorers.reward_model_scorer(model)``); ``embed`` maps (prompts, replies) to
    embeddings; the memory is built with ``from_examples`` (typically the reward model's training
    pairs' replies), which scores them with the same ``scorer``.
    """

    scorer: Any
    embed: Embed
    memory_embeddings: np.ndarray
    memory_rewards: np.ndarray
    alpha: float = 0.5
    temperature: float = 0.1
    top_k: int | None = None

    @classmethod
    def from_examples(
        cls, scorer: Any, embed: Embed, prompts: Sequence[Prompt], replies: Sequence[str], **options: Any
    ) -> FusedScorer:
        memory_rewards = np.asarray(scorer.score(list(prompts), list(replies)), dtype=float)
        memory_embeddings = np.asarray(embed(list(prompts), list(replies)), dtype=float)
        return cls(scorer, embed, memory_embeddings, memory_rewards, **options)

    @property
    def precision(self) -> str:
        """The wrapped scorer's (reported by the evaluation)."""
        return str(getattr(self.scorer, "precision", "n/a"))

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        rewards = self.scorer.score(prompts, replies)
        embeddings = self.embed(prompts, replies)
        fused = fuse_rewards(
            rewards, embeddings, self.memory_rewards, self.memory_embeddings, self.alpha, self.temperature, self.top_k
        )
        return [float(x) for x in fused]
