"""KL(π‖π_ref) on the policy's own samples: 0 for the reference itself, the exact KL in expectation."""

from __future__ import annotations

import copy

import pytest
import torch

from rewardlab.models.causal_lm import CausalLM
from rewardlab.policy.sampled_kl import sampled_kl
from rewardlab.sampling.generation import prompt_prefix

torch.set_num_threads(1)

PROMPTS = ["Tell me about bread.", "What is rain?", "Name a river.", "Why is the sea salty?"]


@pytest.fixture(scope="module")
def reference(tiny_decoder_dir) -> CausalLM:
    return CausalLM.from_pretrained(tiny_decoder_dir)


def perturbed(lm: CausalLM, scale: float, seed: int = 0) -> CausalLM:
    """A clearly different policy: the reference with Gaussian noise on every weight."""
    model = copy.deepcopy(lm.model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
    return CausalLM(model, lm.tokenizer, lm.text_format, "perturbed", lm.max_prompt_tokens)


def test_a_policy_equal_to_its_reference_has_exactly_zero_kl(tiny_decoder_dir, reference):
    """The data log-ratio this replaces was also 0 here; the estimate must be exactly 0, not ≈ 0."""
    twin = CausalLM.from_pretrained(tiny_decoder_dir)  # same weights, another object
    out = sampled_kl(twin, reference, PROMPTS, samples_per_prompt=4, max_new_tokens=8, seed=3)
    assert out.kl == 0.0 and out.std_error == 0.0
    assert out.prompts == 4 and out.samples_per_prompt == 4 and out.mean_reply_tokens > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_clearly_different_policy_has_positive_kl(reference, seed):
    policy = perturbed(reference, 0.2, seed)
    out = sampled_kl(policy, reference, PROMPTS, samples_per_prompt=4, max_new_tokens=8, seed=seed)
    assert out.kl > 2 * out.std_error > 0


def test_the_estimate_is_the_exact_kl_in_expectation(reference):
    """One-token replies: KL(π‖π_ref) = Σ_y π(y)(log π(y) − log π_ref(y)) over the vocabulary is exact,
    and the mean over 600 sampled tokens must lie within 4 standard errors of it (a biased estimator,
    such as the log-ratio on replies not drawn from π, misses it by far more)."""
    policy = perturbed(reference, 0.05)
    prefix = prompt_prefix(policy, PROMPTS[0])
    p, q = policy.next_token_logps([prefix])[0], reference.next_token_logps([prefix])[0]
    exact = float((p.exp() * (p - q)).sum())
    out = sampled_kl(policy, reference, PROMPTS[:1], samples_per_prompt=600, max_new_tokens=1, seed=0)
    assert exact > 0.03
    assert abs(out.kl - exact) < 4 * out.std_error


def test_no_prompts_is_refused(reference):
    with pytest.raises(ValueError, match="at least one prompt"):
        sampled_kl(reference, reference, [], samples_per_prompt=4, max_new_tokens=4)
