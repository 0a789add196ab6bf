"""Ranking accuracy of a policy, and the idealised one a perfect DPO optimum would reach.

Chen et al. 2024 ("Preference Learning Algorithms Do Not Learn Preference Rankings") ask whether
a preference-tuned policy actually gives the preferred reply the higher likelihood. Most do so on
under 60 % of pairs, far below what the DPO/RLHF optimum would give from the same reference model:
the "alignment gap" between ``ranking_accuracy`` of the trained policy and
``idealized_ranking_accuracy`` of its reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from transformers import PreTrainedTokenizerBase

from rewardlab.data.records import PreferencePair
from rewardlab.models.formatting import TextFormat
from rewardlab.models.pair_encoding import encode_pairs
from rewardlab.models.reference import cached_reference_logps


def _pairs_of(chosen: ArrayLike, rejected: ArrayLike, what: str) -> tuple[np.ndarray, np.ndarray]:
    chosen, rejected = np.asarray(chosen, dtype=float), np.asarray(rejected, dtype=float)
    if chosen.ndim != 1 or chosen.shape != rejected.shape:
        raise ValueError(
            f"need one {what} log-probability per pair on each side (got {chosen.shape} and {rejected.shape})"
        )
    if chosen.size == 0:
        raise ValueError("no pairs to rank")
    if np.isnan(chosen).any() or np.isnan(rejected).any():
        raise ValueError(f"the {what} log-probabilities hold NaN")
    return chosen, rejected


def ranking_accuracy(policy_chosen_logps: ArrayLike, policy_rejected_logps: ArrayLike) -> float:
    """R(π) = mean over pairs of 1[π(y_w | x) > π(y_l | x)] (Chen et al. 2024, sec. 2).

    Compared on sequence log-probabilities log π(y | x) = Σ_t log π(y_t | x, y_<t), summed, not
    averaged over tokens: the question is which whole reply the policy would rather produce. The
    inequality is strict, so a pair given exactly equal likelihood is not ranked right.
    """
    chosen, rejected = _pairs_of(policy_chosen_logps, policy_rejected_logps, "policy")
    return float(np.mean(chosen > rejected))


def optimal_log_ratio(
    ref_chosen_logps: ArrayLike, ref_rejected_logps: ArrayLike, p: ArrayLike, beta: float
) -> np.ndarray:
    """log π*(y_w | x) − log π*(y_l | x) of the optimal DPO/RLHF policy, per pair.

    The KL-regularised objective max E[r] − β·KL(π ‖ π_ref) is solved by
    π*(y | x) ∝ π_ref(y | x) · exp(r(x, y) / β) (Rafailov et al. 2023, eq. 4), and under
    Bradley-Terry the true preference probability is p = σ(r(x, y_w) − r(x, y_l)), so
    r(x, y_w) − r(x, y_l) = log(p / (1 − p)). The partition function cancels in the ratio:

        π*(y_w | x) / π*(y_l | x) = π_ref(y_w | x) / π_ref(y_l | x) · (p / (1 − p))^(1/β)

    (Chen et al. 2024, Theorem 3.1, with p the share of raters preferring y_w). p = 1 gives +∞
    (the optimum puts no mass on y_l), p = 0 gives −∞, p = ½ leaves the reference's ranking.
    """
    chosen, rejected = _pairs_of(ref_chosen_logps, ref_rejected_logps, "reference")
    if not beta > 0:
        raise ValueError(f"beta must be positive (got {beta})")
    p = np.broadcast_to(np.asarray(p, dtype=float), chosen.shape)
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p, the probability that y_w is preferred, must lie in [0, 1]")
    with np.errstate(divide="ignore"):
        log_odds = np.log(p) - np.log1p(-p)
    return (chosen - rejected) + log_odds / beta


def idealized_ranking_accuracy(
    ref_chosen_logps: ArrayLike, ref_rejected_logps: ArrayLike, p: ArrayLike, beta: float
) -> float:
    """R*(π_ref, p, β) = mean of 1[log π_ref(y_w|x) − log π_ref(y_l|x) + (1/β)·log(p/(1−p)) > 0]:
    the ranking accuracy of the optimal policy (``optimal_log_ratio``), strict like
    ``ranking_accuracy``. ``p`` is one probability for every pair, or one per pair; with p = 1 for
    every pair (unanimous labels) it is 1 whatever the reference, the idealised ceiling being below 1
    only where raters disagree."""
    return float(np.mean(optimal_log_ratio(ref_chosen_logps, ref_rejected_logps, p, beta) > 0))


@dataclass
class RankingAccuracyOutput:
    """The policy's ranking accuracy, and, with a reference, the idealised one and their gap."""

    ranking_accuracy: float
    n: int
    idealized_ranking_accuracy: float | None = None
    alignment_gap: float | None = None
    beta: float | None = None
    p: float | None = None


def sequence_logps(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    *,
    fmt: TextFormat = "chat",
    max_prompt_tokens: int = 1024,
    max_reply_tokens: int = 1024,
    batch_pairs: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Summed log-probabilities of every pair's chosen and rejected reply under a causal LM
    (encoded as the policy trainer encodes them, computed without gradients)."""
    tokens = encode_pairs(tokenizer, pairs, fmt, max_prompt_tokens, max_reply_tokens)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    logps = cached_reference_logps(model, tokens, pad_id, cache_dir=None, batch_pairs=batch_pairs).logps
    return logps.chosen_logps.double().numpy(), logps.rejected_logps.double().numpy()


def policy_ranking(
    policy: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    *,
    reference: torch.nn.Module | None = None,
    p: float = 1.0,
    beta: float = 0.1,
    fmt: TextFormat = "chat",
) -> RankingAccuracyOutput:
    """Ranking accuracy of ``policy`` on ``pairs``; with ``reference``, also the idealised ranking
    accuracy of the DPO optimum from that reference at preference probability ``p`` and ``beta``,
    and the alignment gap (idealised − observed)."""
    chosen, rejected = sequence_logps(policy, tokenizer, pairs, fmt=fmt)
    if reference is None:
        return ranking_output(chosen, rejected)
    ref_chosen, ref_rejected = sequence_logps(reference, tokenizer, pairs, fmt=fmt)
    return ranking_output(chosen, rejected, (ref_chosen, ref_rejected), p=p, beta=beta)


def ranking_output(
    chosen: ArrayLike,
    rejected: ArrayLike,
    reference: tuple[ArrayLike, ArrayLike] | None = None,
    *,
    p: float = 1.0,
    beta: float = 0.1,
) -> RankingAccuracyOutput:
    """Ranking accuracy from the policy's sequence log-probabilities; with the reference's
    (chosen, rejected) log-probabilities, also the idealised accuracy and the alignment gap."""
    observed = ranking_accuracy(chosen, rejected)
    if reference is None:
        return RankingAccuracyOutput(observed, len(np.asarray(chosen)))
    ideal = idealized_ranking_accuracy(*reference, p, beta)
    return RankingAccuracyOutput(observed, len(np.asarray(chosen)), ideal, ideal - observed, beta, p)
