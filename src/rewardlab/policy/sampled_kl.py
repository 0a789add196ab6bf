"""KL(π‖π_ref) of a trained policy, estimated on replies the policy samples itself.

KL(π‖π_ref) = E_{y~π(·|x)}[log π(y|x) − log π_ref(y|x)] (the Monte Carlo estimator used by RLHF
and by Gao et al. 2023, "Scaling Laws for Reward Model Overoptimization", §2). It needs y drawn
from π at temperature 1, with no top-k/top-p, and scored as the exact tokens that were drawn (the
end-of-turn token included when one was drawn): the sampled texts of
:func:`rewardlab.sampling.generation.sample_replies` are decoded and stripped, and re-encoding them
would score other sequences than were sampled, so the replies are drawn here as tokens, with the
same per-prompt seeding. A reply cut at the token limit is scored as far as it went: the estimate
is then the KL of the first ``max_new_tokens`` tokens, which is still ≥ 0 and at most the full KL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from rewardlab.data.records import Prompt
from rewardlab.models.causal_lm import CausalLM
from rewardlab.sampling.generation import draw_tokens, prompt_prefix


@dataclass(frozen=True)
class SampledKLOutput:
    kl: float
    """Mean of log π(y|x) − log π_ref(y|x) over the sampled replies (nats per reply)."""
    std_error: float
    """Standard error of that mean (0 with a single reply)."""
    prompts: int
    samples_per_prompt: int
    max_new_tokens: int
    mean_reply_tokens: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@torch.inference_mode()
def sample_reply_tokens(lm: CausalLM, prefix: Sequence[int], n: int, max_new_tokens: int, seed: int) -> list[list[int]]:
    """``n`` replies to ``prefix`` drawn from the model's own distribution (temperature 1), as token
    ids up to and including the end-of-turn token where one was drawn."""
    eos = lm.tokenizer.eos_token_id
    drawn = draw_tokens(lm, prefix, n, max_new_tokens, temperature=1.0, seed=seed)
    replies = [row[: row.index(eos) + 1] if eos in row else row for row in drawn]
    return [reply for reply in replies if reply]


def sampled_kl(
    policy: CausalLM,
    reference: CausalLM,
    prompts: Sequence[Prompt],
    samples_per_prompt: int,
    max_new_tokens: int,
    seed: int = 0,
) -> SampledKLOutput:
    """Estimate KL(π‖π_ref) from ``samples_per_prompt`` replies of ``policy`` to each prompt.

    Both models read the same tokens in the same batches, so a policy equal to its reference gives
    exactly 0; each term is unbiased, so the mean is ≥ 0 in expectation (a single draw may be < 0).
    """
    if not prompts or samples_per_prompt < 1:
        raise ValueError("the sampled KL needs at least one prompt and one sample per prompt")
    prefixes: list[list[int]] = []
    replies: list[list[int]] = []
    for prompt in prompts:
        prefix = prompt_prefix(policy, prompt)
        for reply in sample_reply_tokens(policy, prefix, samples_per_prompt, max_new_tokens, seed):
            prefixes.append(prefix)
            replies.append(reply)
    if not replies:
        raise ValueError("every sampled reply was empty: nothing to estimate the KL on")
    policy_logps, lengths = policy.continuation_logps(prefixes, replies)
    reference_logps, _ = reference.continuation_logps(prefixes, replies)
    terms = torch.tensor(policy_logps, dtype=torch.float64) - torch.tensor(reference_logps, dtype=torch.float64)
    std_error = float(terms.std() / math.sqrt(len(terms))) if len(terms) > 1 else 0.0
    return SampledKLOutput(
        kl=float(terms.mean()),
        std_error=std_error,
        prompts=len(prompts),
        samples_per_prompt=samples_per_prompt,
        max_new_tokens=max_new_tokens,
        mean_reply_tokens=sum(lengths) / len(lengths),
    )
