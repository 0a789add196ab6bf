"""Rewards read off language models' likelihoods, with no reward head and no training.

- :class:`ImplicitRewardScorer`: a DPO-trained policy is itself a reward model,
  r(x, y) = β·(log π(y|x) − log π_ref(y|x)) up to a per-prompt constant (Rafailov et al. 2023,
  eq. 5), which is what RewardBench scores DPO models by. "On the Limited Generalization
  Capability of the Implicit Reward Model Induced by DPO" (Lin et al. 2024) measures how well
  it transfers; its reference-free variants here are β·log π(y|x) (``sum``) and the
  length-normalised β·log π(y|x)/|y| (``mean``, SimPO's reward, Meng et al. 2024).
- :class:`DensityRatioScorer`: CDR (Xu et al. 2024), log π_strong(y|x) − log π_weak(y|x) between a
  better- and a less-aligned LM, optionally with an instruction (a system message) that steers
  both towards what is wanted ("customisable" density ratios).
- :class:`FollowUpScorer`: FLR (Zhang et al. 2024), how likely the user's next turn is to be
  satisfied rather than dissatisfied: mean over positive follow-ups f of log p(f | x, y) minus the
  mean over negative ones. log p(f | x, y) sums over f's tokens; its length is the same for every
  reply, so it shifts all rewards alike and does not change any comparison.

Each reply's log-probability is summed over its tokens up to and including the end-of-turn token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rewardlab.data.records import Prompt
from rewardlab.models.causal_lm import CausalLM, as_messages, with_system
from rewardlab.models.formatting import format_text

ImplicitMode = Literal["dpo", "sum", "mean"]

DEFAULT_POSITIVE_FOLLOW_UPS = (
    "Thank you, that is exactly what I needed.",
    "Great answer, that really helps.",
    "Perfect, that makes sense now.",
)
DEFAULT_NEGATIVE_FOLLOW_UPS = (
    "That is not what I asked for.",
    "This answer is wrong.",
    "That was not helpful at all.",
)


@dataclass(frozen=True)
class ReplyLogps:
    """log π(y|x) of each reply, its token count, and log π_ref(y|x) when there is a reference."""

    policy: list[float]
    lengths: list[int]
    reference: list[float] | None


@dataclass
class ImplicitRewardScorer:
    """β·(log π − log π_ref) (``dpo``), β·log π (``sum``) or β·log π/|y| (``mean``) of each reply."""

    policy: CausalLM
    reference: CausalLM | None = None
    beta: float = 0.1
    mode: ImplicitMode = "dpo"

    @property
    def precision(self) -> str:
        return self.policy.precision

    def __post_init__(self) -> None:
        if self.mode not in ("dpo", "sum", "mean"):
            raise ValueError(f"implicit reward mode must be dpo, sum or mean (got {self.mode!r})")
        if self.mode == "dpo" and self.reference is None:
            raise ValueError("the DPO implicit reward needs a reference model (or use the reference-free sum or mean)")
        if self.mode != "dpo" and self.reference is not None:
            raise ValueError(f"the reference-free implicit reward ({self.mode}) takes no reference model")
        if not self.beta > 0:
            raise ValueError(f"beta must be positive (got {self.beta})")

    def reply_logps(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> ReplyLogps:
        """The log-probabilities the rewards are made of (also what the policy's ranking accuracy reads)."""
        logps, lengths = self.policy.reply_logps(prompts, replies)
        reference = self.reference.reply_logps(prompts, replies)[0] if self.reference is not None else None
        return ReplyLogps(logps, lengths, reference)

    def rewards(self, logps: ReplyLogps) -> list[float]:
        """Each reply's implicit reward from its log-probabilities."""
        if self.mode == "sum":
            return [self.beta * lp for lp in logps.policy]
        if self.mode == "mean":
            return [self.beta * lp / n for lp, n in zip(logps.policy, logps.lengths, strict=True)]
        return [self.beta * (lp - ref) for lp, ref in zip(logps.policy, logps.reference or [], strict=True)]

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        return self.rewards(self.reply_logps(prompts, replies))


@dataclass
class DensityRatioScorer:
    """CDR: log π_strong(y | x) − log π_weak(y | x), both reading the prompt after ``instruction``."""

    strong: CausalLM
    weak: CausalLM
    instruction: str | None = None

    @property
    def precision(self) -> str:
        return self.strong.precision

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        prompts = [with_system(p, self.instruction) for p in prompts]
        strong, _ = self.strong.reply_logps(prompts, replies)
        weak, _ = self.weak.reply_logps(prompts, replies)
        return [s - w for s, w in zip(strong, weak, strict=True)]


def follow_up_texts(lm: CausalLM, prompt: Prompt, reply: str, follow_up: str) -> tuple[str, str]:
    """The conversation up to the user's next turn, and that turn's text (with its end of turn).

    With a chat template the split is found by rendering the conversation with and without the
    follow-up; in plain text the follow-up is a ``user:`` line, as ``format_text`` writes turns.
    """
    if lm.text_format == "plain":
        return format_text(prompt, reply, "plain", lm.tokenizer) + "\nuser: ", follow_up
    conversation = [*as_messages(prompt), {"role": "assistant", "content": reply}]
    base = lm.tokenizer.apply_chat_template(conversation, tokenize=False)
    full = lm.tokenizer.apply_chat_template([*conversation, {"role": "user", "content": follow_up}], tokenize=False)
    at = full.rfind(follow_up)
    if not full.startswith(base) or at < len(base):
        raise ValueError(
            "the chat template does not render a user turn after the assistant's reply as an extension of the "
            "conversation; use text format 'plain' for follow-up likelihoods"
        )
    return full[:at], full[at:]


@dataclass
class FollowUpScorer:
    """FLR: mean log p(positive follow-up | x, y) − mean log p(negative follow-up | x, y)."""

    lm: CausalLM
    positive: tuple[str, ...] = DEFAULT_POSITIVE_FOLLOW_UPS
    negative: tuple[str, ...] = DEFAULT_NEGATIVE_FOLLOW_UPS

    @property
    def precision(self) -> str:
        return self.lm.precision

    def __post_init__(self) -> None:
        if not self.positive or not self.negative:
            raise ValueError("follow-up likelihood needs at least one positive and one negative follow-up")

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        follow_ups = [*self.positive, *self.negative]
        k, p = len(follow_ups), len(self.positive)
        rewards = []
        for prompt, reply in zip(prompts, replies, strict=True):
            texts = [follow_up_texts(self.lm, prompt, reply, f) for f in follow_ups]
            if len({prefix for prefix, _ in texts}) != 1:
                raise ValueError("the follow-ups of one reply must share the conversation before them")
            prefix = self.lm.tokens(texts[0][0])[-self.lm.max_prompt_tokens :]
            logps = self.lm.shared_prefix_logps(prefix, [self.lm.tokens(c) for _, c in texts])
            rewards.append(sum(logps[:p]) / p - sum(logps[p:]) / (k - p))
        return rewards
