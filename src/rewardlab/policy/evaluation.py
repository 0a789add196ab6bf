"""How good is a preference-trained policy on held-out pairs, and is it better than where it started?

Three measures, each with a 95 % percentile bootstrap interval (:func:`rewardlab.evaluate.metrics.estimate`):

- implicit-reward accuracy: the pair is ranked right when β·(log π(y_w|x) − log π_ref(y_w|x)) exceeds
  the same for y_l (Rafailov et al. 2023, eq. 5; the sign does not depend on β > 0);
- ranking accuracy: log π(y_w|x) > log π(y_l|x), the policy's own likelihoods without the reference
  (reported for the base policy too, which is what DPO is known to move little: Chen et al. 2024,
  "Preference Learning Algorithms Do Not Learn Preference Rankings");
- win rate: the trained and the base policy each answer held-out prompts, and a reward model judges
  which reply is better. Ties in score count 1/2 everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from transformers import PreTrainedTokenizerBase

from rewardlab.data.records import PreferencePair, Prompt
from rewardlab.evaluate.metrics import AccuracyEstimate, estimate, pairwise_correct
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.formatting import TextFormat
from rewardlab.models.pair_encoding import encode_pairs, prompt_and_reply_texts
from rewardlab.models.reference import cached_reference_logps
from rewardlab.models.reward_model import RewardModel


@dataclass(frozen=True)
class HeldOutOutput:
    implicit_accuracy: AccuracyEstimate
    ranking_accuracy: AccuracyEstimate
    base_ranking_accuracy: AccuracyEstimate
    mean_implicit_margin: float
    """Mean of ρ_w − ρ_l (log-ratio margin, without β)."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class WinRateOutput:
    win_rate: AccuracyEstimate
    samples: list[dict[str, object]]
    """Each prompt with both replies and their judged rewards."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def held_out_accuracy(
    policy: torch.nn.Module,
    reference: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    fmt: TextFormat,
    max_prompt_tokens: int,
    max_reply_tokens: int,
    batch_pairs: int = 8,
    bootstrap_seed: int = 0,
) -> HeldOutOutput:
    """Implicit-reward and ranking accuracies of ``policy`` (against ``reference``) on ``pairs``."""
    if not pairs:
        raise ValueError("no held-out pairs to evaluate the policy on (raise data.test_fraction)")
    tokens = encode_pairs(tokenizer, pairs, fmt, max_prompt_tokens, max_reply_tokens)
    pad = tokenizer.pad_token_id
    trained = cached_reference_logps(policy, tokens, pad, None, batch_pairs).logps
    base = cached_reference_logps(reference, tokens, pad, None, batch_pairs).logps
    rho_w = trained.chosen_logps - base.chosen_logps
    rho_l = trained.rejected_logps - base.rejected_logps
    return HeldOutOutput(
        implicit_accuracy=estimate(pairwise_correct(rho_w.numpy(), rho_l.numpy()), seed=bootstrap_seed),
        ranking_accuracy=estimate(
            pairwise_correct(trained.chosen_logps.numpy(), trained.rejected_logps.numpy()), seed=bootstrap_seed
        ),
        base_ranking_accuracy=estimate(
            pairwise_correct(base.chosen_logps.numpy(), base.rejected_logps.numpy()), seed=bootstrap_seed
        ),
        mean_implicit_margin=float((rho_w - rho_l).mean()),
    )


def distinct_prompts(pairs: Sequence[PreferencePair], limit: int) -> list[Prompt]:
    """The first ``limit`` different prompts, in order."""
    seen: set[str] = set()
    prompts: list[Prompt] = []
    for pair in pairs:
        key = repr(pair.prompt)
        if key not in seen:
            seen.add(key)
            prompts.append(pair.prompt)
        if len(prompts) == limit:
            break
    return prompts


def win_rate(
    trained: CausalLM,
    base: CausalLM,
    judge: RewardModel,
    prompts: Sequence[Prompt],
    max_new_tokens: int,
    temperature: float = 0.0,
    seed: int = 0,
    bootstrap_seed: int = 0,
) -> WinRateOutput:
    """Share of ``prompts`` where the judge rewards the trained policy's reply above the base's.

    Both policies get the same prompt tokens and the same seed per prompt, so at temperature 0 a
    policy that did not change ties with its base on every prompt (win rate 1/2).
    """
    if not prompts:
        raise ValueError("no held-out prompts for the win rate")
    replies: dict[str, list[str]] = {"trained": [], "base": []}
    for prompt in prompts:
        prefix_text, _ = prompt_and_reply_texts(prompt, "", trained.text_format, trained.tokenizer)
        prefix = trained.tokens(prefix_text)[-trained.max_prompt_tokens :]
        for name, lm in (("trained", trained), ("base", base)):
            replies[name].append(
                lm.generate(prefix, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed).strip()
            )
    trained_rewards = judge.score(prompts, replies["trained"], precision="fp32")
    base_rewards = judge.score(prompts, replies["base"], precision="fp32")
    samples = [
        {"prompt": p, "trained": t, "base": b, "trained_reward": rt, "base_reward": rb}
        for p, t, b, rt, rb in zip(
            prompts, replies["trained"], replies["base"], trained_rewards, base_rewards, strict=True
        )
    ]
    wins = pairwise_correct(trained_rewards, base_rewards)
    return WinRateOutput(estimate(wins, seed=bootstrap_seed), samples)
