"""Each round's measurements, by an evaluator the loop never trains on, on held-out prompts.

- mean reward of the evaluator (a saved rewardlab reward model) on the policy's replies (greedy by default);
- win rate against the starting policy's replies to the same prompts (same decoding and seeds), ties 1/2, with its 95 %
  Wilson interval (:func:`rewardlab.evaluate.metrics.wilson_interval`);
- length-controlled win rate, the idea of AlpacaEval 2's (Dubois et al. 2024, "Length-Controlled
  AlpacaEval"), reduced to what one pair of policies allows: a logistic regression of the outcome
  w ∈ {0, ½, 1} on the standardised length difference, P(win) = σ(θ₀ + θ₁·tanh(Δℓ/s)) with Δℓ the
  reply-token difference (policy − start) and s the standard deviation of all the replies' lengths,
  fitted with a ridge of 0.01·(θ₀² + θ₁²)/2; the length-controlled win rate is σ(θ₀), the predicted
  win rate of two replies of equal length. AlpacaEval's instruction-difficulty term is left out
  (one baseline, no per-instruction fit);
- KL(π‖π_start) on the policy's own samples (:func:`rewardlab.policy.sampled_kl.sampled_kl`);
- mean reply length in tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rewardlab.data.records import Prompt
from rewardlab.evaluate.metrics import pairwise_correct, wilson_interval
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import RewardModel
from rewardlab.policy.sampled_kl import sampled_kl
from rewardlab.sampling.batched import decode_rows, reply_seed
from rewardlab.sampling.generation import prompt_prefix

RIDGE = 0.01


def eval_replies(
    lm: CausalLM, prompts: Sequence[Prompt], max_new_tokens: int, temperature: float, seed: int, batch_rows: int = 32
) -> list[str]:
    """One reply per prompt from the batched decoder (``sampling/batched.py``, prompts of similar length
    together): greedy at temperature 0, else drawn with a generator seeded by ``seed`` and the prompt, so
    the start and every round answer with the same seeds."""
    prefixes = [prompt_prefix(lm, p) for p in prompts]
    order = sorted(range(len(prefixes)), key=lambda i: len(prefixes[i]))
    replies = [""] * len(prefixes)
    for start in range(0, len(order), batch_rows):
        chunk = order[start : start + batch_rows]
        rows = decode_rows(
            lm,
            [prefixes[i] for i in chunk],
            list(range(len(chunk))),
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seeds=[reply_seed(seed, prefixes[i], 0) for i in chunk],
        )
        for i, (tokens, _) in zip(chunk, rows, strict=True):
            replies[i] = lm.tokenizer.decode(tokens, skip_special_tokens=True).strip()
    return replies


def reply_tokens(lm: CausalLM, replies: Sequence[str]) -> list[int]:
    return [len(lm.tokens(r)) for r in replies]


def length_controlled_win_rate(wins: Sequence[float], length_difference: Sequence[float], scale: float) -> float:
    """σ(θ₀) of the ridge logistic fit of ``wins`` on tanh(Δℓ / ``scale``) (module docstring), by Newton's method."""
    w = np.asarray(wins, dtype=float)
    x = np.tanh(np.asarray(length_difference, dtype=float) / scale) if scale > 0 else np.zeros(len(w))
    features = np.stack([np.ones_like(x), x], axis=1)
    theta = np.zeros(2)
    for _ in range(100):
        p = 1 / (1 + np.exp(-features @ theta))
        gradient = features.T @ (p - w) + RIDGE * theta
        hessian = features.T @ (features * (p * (1 - p))[:, None]) + RIDGE * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(1 / (1 + math.exp(-theta[0])))


def evaluate_round(
    lm: CausalLM,
    start_lm: CausalLM,
    prompts: Sequence[Prompt],
    start: dict[str, Any] | None,
    evaluator: RewardModel | None,
    max_new_tokens: int,
    temperature: float,
    kl_prompts: int,
    kl_samples: int,
    seed: int,
) -> dict[str, Any]:
    """The measurements of ``lm``; ``start`` is round 0's result (None when measuring the start itself)."""
    replies = eval_replies(lm, prompts, max_new_tokens, temperature, seed)
    lengths = reply_tokens(lm, replies)
    result: dict[str, Any] = {"prompts": len(prompts), "mean_reply_tokens": float(np.mean(lengths)), "replies": replies}
    result["reply_tokens"] = lengths
    if evaluator is not None:
        rewards = evaluator.score(prompts, replies, precision="fp32")
        result["rewards"] = rewards
        result["mean_reward"] = float(np.mean(rewards))
        if start is not None:
            result |= _win_rates(rewards, lengths, start)
    if start is not None and kl_prompts and kl_samples:
        kl = sampled_kl(lm, start_lm, prompts[:kl_prompts], kl_samples, max_new_tokens, seed)
        result["kl"] = {"kl": kl.kl, "std_error": kl.std_error, "samples": kl.prompts * kl.samples_per_prompt}
    return result


def _win_rates(rewards: Sequence[float], lengths: Sequence[int], start: dict[str, Any]) -> dict[str, Any]:
    wins = pairwise_correct(rewards, start["rewards"])
    low, high = wilson_interval(float(wins.sum()), len(wins))
    difference = np.asarray(lengths, dtype=float) - np.asarray(start["reply_tokens"], dtype=float)
    scale = float(np.std(np.concatenate([np.asarray(lengths), np.asarray(start["reply_tokens"])])))
    return {
        "win_rate": {"rate": float(wins.mean()), "low": low, "high": high, "n": len(wins)},
        "length_controlled_win_rate": length_controlled_win_rate(wins, difference, scale),
    }
