"""The utility reading of a softmax network (Huang & Yuan 2023) on cases with known answers.

What must hold: eq. (1) gives the logit choice probabilities (known values, invariance to a shift,
the limit τ → 0); eq. (2), the utility-learning step, is exactly MLE's SGD step on the logits and,
through a linear softmax model, on its weights; iterating its expected step reaches u* = log P* + c,
so the learned utilities rank outputs as P* does; an LM's reply utility is Σ_t z_t(y_t) of its own
logits, differing from log π(y|x) by the per-step log-partitions; ``--scorer utility`` builds it.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardlab.evaluate.likelihood_scorers import ImplicitRewardScorer
from rewardlab.evaluate.scorers import ScorerSpec, build_scorer
from rewardlab.evaluate.utility_duality import (
    LogitUtilityScorer,
    reply_utilities,
    utility_learning_step,
    utility_to_probability,
)
from rewardlab.models.causal_lm import CausalLM

torch.set_num_threads(1)


def test_utility_to_probability_known_values():
    """u = log(1, 2, 3): exp u = (1, 2, 3), so P = (1/6, 2/6, 3/6); τ = 2 gives √1 : √2 : √3;
    adding 5 to every utility changes nothing; −inf is never chosen; τ → 0 picks the highest."""
    u = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).log()
    assert utility_to_probability(u).tolist() == pytest.approx([1 / 6, 2 / 6, 3 / 6])
    root = [math.sqrt(i) for i in (1, 2, 3)]
    assert utility_to_probability(u, temperature=2.0).tolist() == pytest.approx([r / sum(root) for r in root])
    assert torch.allclose(utility_to_probability(u + 5), utility_to_probability(u))
    assert utility_to_probability(torch.tensor([0.0, -math.inf])).tolist() == [1.0, 0.0]
    assert utility_to_probability(torch.tensor([0.3, 0.2, 0.1]), temperature=1e-4).tolist() == pytest.approx(
        [1.0, 0.0, 0.0]
    )
    with pytest.raises(ValueError, match="temperature must be positive"):
        utility_to_probability(u, temperature=0.0)


def test_utility_learning_step_is_the_mle_sgd_step_on_the_logits():
    """u = (0, log 3), chosen 0: P_u = (1/4, 3/4), so eq. (2) with η = 1 gives (0 + 3/4, log 3 − 3/4);
    on random batches it equals u − η ∇_u of the cross-entropy, by autograd."""
    u = torch.tensor([0.0, math.log(3)], dtype=torch.float64)
    assert utility_learning_step(u, 0, 1.0).tolist() == pytest.approx([0.75, math.log(3) - 0.75])
    torch.manual_seed(0)
    logits = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (5,))
    torch.nn.functional.cross_entropy(logits, labels, reduction="sum").backward()
    expected = logits.detach() - 0.3 * logits.grad
    assert torch.allclose(utility_learning_step(logits.detach(), labels, 0.3), expected)


def test_mle_on_a_linear_softmax_model_moves_weights_along_the_utility_step():
    """z = W x: ∇_W(−log softmax(Wx)_y) = −(e_y − P) xᵀ, so MLE's SGD step is W + η (e_y − P) xᵀ, whose
    logits move by η‖x‖² (e_y − P): eq. (2) with the learning rate scaled by ‖x‖²."""
    torch.manual_seed(1)
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, dtype=torch.float64)
    y = 2
    torch.nn.functional.cross_entropy((w @ x)[None], torch.tensor([y])).backward()
    stepped = w.detach() - 0.1 * w.grad
    u = (w @ x).detach()
    assert torch.allclose(stepped @ x, utility_learning_step(u, y, 0.1 * float(x @ x)))


def test_the_expected_utility_step_reaches_log_p_and_ranks_as_p():
    """Under choices y ~ P* = (0.1, 0.5, 0.15, 0.25) the expected step is η (P* − P_u); from u = 0 it
    converges to u* = log P* + c, so P_u → P* and the utilities rank the outputs as P* does."""
    target = torch.tensor([0.1, 0.5, 0.15, 0.25], dtype=torch.float64)
    u = torch.zeros(4, dtype=torch.float64)
    for _ in range(5000):
        u = u + 1.0 * (target - utility_to_probability(u))
    assert torch.allclose(utility_to_probability(u), target, atol=1e-8)
    shift = u - target.log()
    assert torch.allclose(shift, shift.mean().expand(4), atol=1e-7)
    assert torch.argsort(u).tolist() == torch.argsort(target).tolist() == [0, 2, 3, 1]


def test_sampled_utility_learning_orders_outputs_as_their_choice_frequencies():
    """SGD on 20,000 sampled choices from P* (η = 0.01): the learned utilities order the outputs as P*."""
    target = torch.tensor([0.05, 0.4, 0.2, 0.35], dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    choices = torch.multinomial(target, 20000, replacement=True, generator=generator)
    u = torch.zeros(4, dtype=torch.float64)
    for y in choices.tolist():
        u = utility_learning_step(u, y, 0.01)
    assert torch.argsort(u).tolist() == torch.argsort(target).tolist()
    assert utility_to_probability(u).tolist() == pytest.approx(target.tolist(), abs=0.03)


@pytest.fixture(scope="module")
def lm_dir(tiny_decoder_dir, tmp_path_factory):
    """The tiny decoder with noisy weights, so that its logits differ from token to token."""
    model = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
    with torch.no_grad():
        torch.manual_seed(0)
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    out = tmp_path_factory.mktemp("utility-lm")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_decoder_dir).save_pretrained(out)
    return out


PROMPTS = ["What is the capital of France?", "Say hi."]
REPLIES = ["Paris is the capital.", "Hi!"]


def test_reply_utility_is_the_sum_of_the_reply_tokens_logits(lm_dir):
    """By hand from one forward pass: U = Σ_t z_t(y_t); log π = U − Σ_t logsumexp z_t, equal to the
    implicit-sum scorer's log π (β = 1); the scorer returns U."""
    lm = CausalLM.from_pretrained(lm_dir)
    read = reply_utilities(lm, PROMPTS, REPLIES)
    for i, (prompt, reply) in enumerate(zip(PROMPTS, REPLIES, strict=True)):
        prompt_ids, reply_ids = lm.encode_reply(prompt, reply)
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([prompt_ids + reply_ids])).logits[0]
        rows = [logits[len(prompt_ids) - 1 + t] for t in range(len(reply_ids))]
        utility = sum(float(row[tok]) for row, tok in zip(rows, reply_ids, strict=True))
        partition = sum(float(row.logsumexp(-1)) for row in rows)
        assert read.utilities[i] == pytest.approx(utility, abs=1e-4)
        assert read.logps[i] == pytest.approx(utility - partition, abs=1e-4)
        assert read.lengths[i] == len(reply_ids)
    implicit = ImplicitRewardScorer(lm, None, 1.0, "sum").score(PROMPTS, REPLIES)
    assert read.logps == pytest.approx(implicit, abs=1e-4)
    assert LogitUtilityScorer(lm).score(PROMPTS, REPLIES) == read.utilities


def test_one_step_replies_rank_alike_by_utility_and_by_probability(lm_dir):
    """For the options of one softmax (one next token after the same prefix) U − log π is the same
    log-partition for all, so the utility and the probability rank them alike; eq. (1) over all
    options returns the model's own next-token distribution."""
    lm = CausalLM.from_pretrained(lm_dir)
    prefix = lm.tokens("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n")
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([prefix])).logits[0, -1].double()
    logps = logits.log_softmax(-1)
    assert torch.equal(torch.argsort(logits), torch.argsort(logps))
    assert torch.allclose(logits - logps, logits.logsumexp(-1).expand_as(logits))
    assert torch.allclose(utility_to_probability(logits), logps.exp())


def test_utility_is_a_registered_scorer_kind(lm_dir):
    spec = ScorerSpec(kind="utility", model=str(lm_dir))
    assert spec.problems() == [] and spec.describe() == f"utility(policy={lm_dir})"
    scorer = build_scorer(spec)
    assert isinstance(scorer, LogitUtilityScorer)
    assert ScorerSpec(kind="utility").problems() == ["scorer utility needs --policy"]
