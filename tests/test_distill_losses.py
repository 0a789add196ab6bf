"""DCKD and ADPA losses (Gao et al. 2025) against hand-computed values, and the properties the paper claims.

Hand example over a vocabulary of two tokens (ln 2 = 0.693147, ln(2/3) = −0.405465):

    teacher p = [0.5, 0.5], student q = [0.25, 0.75]
    KL(p‖q) = 0.5·ln(0.5/0.25) + 0.5·ln(0.5/0.75) = 0.346574 − 0.202733 = 0.143841
    advantage A = β·ln(p/q) with β = 0.5: [0.5·0.693147, 0.5·(−0.405465)] = [0.346574, −0.202733]
    with A = [2, −1]: Σ_a q(a)A(a) = 0.5 − 0.75 = −0.25, so the advantage loss is 0.25
"""

from __future__ import annotations

import math

import pytest
import torch

from rewardlab.distill import (
    DISTILL_METHODS,
    LossWeights,
    adpa_loss,
    advantage_loss,
    dckd_loss,
    distillation_loss,
    masked_token_mean,
    teacher_advantages,
    token_forward_kl,
)

P = torch.tensor([0.5, 0.5]).log()
Q = torch.tensor([0.25, 0.75]).log()


def test_masked_token_mean_reads_only_real_tokens_and_gives_zero_for_empty_rows():
    """Row 1: (1 + 3)/2 = 2 (the 100 is padding); row 2 has no real token: 0."""
    values = torch.tensor([[1.0, 3.0, 100.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    assert masked_token_mean(values, mask).tolist() == [2.0, 0.0]


def test_forward_kl_hand_computed():
    """Token 1: KL(p‖q) = 0.143841; token 2: teacher = student, 0; token 3 padded. Mean of 2: 0.0719205."""
    teacher = torch.stack([P, P, P]).unsqueeze(0)
    student = torch.stack([Q, P, torch.tensor([0.0, -50.0])]).unsqueeze(0)
    mask = torch.tensor([[True, True, False]])
    assert token_forward_kl(teacher, student, mask).tolist() == pytest.approx([0.143841 / 2], abs=1e-6)


def test_forward_kl_ignores_tokens_the_teacher_never_takes():
    """p = [1, 0]: KL = 1·ln(1/0.25) = 1.386294, the zero-probability token adds 0 (not NaN)."""
    teacher = torch.tensor([[[0.0, -math.inf]]])
    out = token_forward_kl(teacher, Q.view(1, 1, 2), torch.tensor([[True]]))
    assert out.tolist() == pytest.approx([math.log(4)], abs=1e-6)


def test_teacher_advantages_hand_computed():
    """β·(ln p − ln q) with β = 0.5 = [0.346574, −0.202733]."""
    out = teacher_advantages(P.view(1, 1, 2), Q.view(1, 1, 2), beta=0.5)
    assert out.flatten().tolist() == pytest.approx([0.346574, -0.202733], abs=1e-6)
    assert not out.requires_grad


def test_advantage_loss_hand_computed():
    """q = [0.25, 0.75], A = [2, −1]: −(0.25·2 − 0.75·1) = 0.25."""
    out = advantage_loss(Q.view(1, 1, 2), torch.tensor([[[2.0, -1.0]]]), torch.tensor([[True]]))
    assert out.tolist() == pytest.approx([0.25], abs=1e-6)


def test_distillation_loss_sums_the_weighted_terms():
    """nll: −(ln 0.25 + ln 0.5)/2 = (1.386294 + 0.693147)/2 = 1.039721; chosen KL 0.143841 (one token of q);
    rejected KL 0 (student = teacher); advantage 0.25. Weights 1, 2, 3, 4: 1.039721 + 0.287682 + 0 + 1.0."""
    weights = LossWeights(nll=1.0, chosen_kl=2.0, rejected_kl=3.0, advantage=4.0)
    mask = torch.tensor([[True]])
    out = distillation_loss(
        weights,
        torch.tensor([[True, True]]),
        mask,
        chosen_token_logps=torch.tensor([[math.log(0.25), math.log(0.5)]]),
        student_chosen_logps=torch.stack([Q, P]).unsqueeze(0),
        student_rejected_logps=Q.view(1, 1, 2),
        teacher_chosen_logps=torch.stack([P, P]).unsqueeze(0),
        teacher_rejected_logps=Q.view(1, 1, 2),
        rejected_advantages=torch.tensor([[[2.0, -1.0]]]),
    )
    assert out.terms["nll"].tolist() == pytest.approx([1.039721], abs=1e-6)
    assert out.terms["chosen_kl"].tolist() == pytest.approx([0.143841 / 2], abs=1e-6)
    assert out.losses.tolist() == pytest.approx([1.039721 + 2 * 0.143841 / 2 + 0.0 + 4 * 0.25], abs=1e-5)


def test_a_weighted_term_without_its_input_is_refused_by_name():
    with pytest.raises(ValueError, match="rejected_advantages"):
        distillation_loss(
            LossWeights(advantage=1.0),
            torch.ones(1, 1, dtype=torch.bool),
            torch.ones(1, 1, dtype=torch.bool),
            student_rejected_logps=Q.view(1, 1, 2),
        )


def test_method_weights_and_their_checks():
    assert DISTILL_METHODS["dckd"] == LossWeights(nll=1.0, chosen_kl=1.0, rejected_kl=1.0)
    assert DISTILL_METHODS["adpa"].needs_teacher_reference and not DISTILL_METHODS["kd"].needs_teacher_reference
    assert not DISTILL_METHODS["sft"].needs_teacher
    assert LossWeights().problems() == ["every loss weight is 0: nothing would be trained"]
    assert LossWeights(nll=-1.0).problems() == ["nll weight must be >= 0 (got -1.0)"]


def random_logps(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).log_softmax(-1)


def test_dckd_is_zero_iff_the_student_matches_the_teacher_on_both_replies():
    """The paper's DCKD constraints: with the SFT term off, the loss is 0 exactly when the student's
    distributions equal the teacher's at every real token of the chosen and of the rejected reply;
    a change at one real token of either reply makes it positive; a change at padding does not."""
    chosen, rejected = random_logps(2, 3, 7, seed=1), random_logps(2, 4, 7, seed=2)
    chosen_mask = torch.tensor([[True, True, False], [True, True, True]])
    rejected_mask = torch.tensor([[True, True, True, True], [True, False, False, False]])
    token_logps = torch.zeros(2, 3)

    def loss(student_chosen: torch.Tensor, student_rejected: torch.Tensor) -> torch.Tensor:
        return dckd_loss(
            token_logps, student_chosen, student_rejected, chosen, rejected, chosen_mask, rejected_mask, nll_weight=0.0
        ).losses

    assert loss(chosen, rejected).abs().max().item() < 1e-6
    other = random_logps(7, seed=3)
    for side, (b, t) in (("chosen", (0, 1)), ("rejected", (1, 0))):
        c, r = chosen.clone(), rejected.clone()
        (c if side == "chosen" else r)[b, t] = other
        assert loss(c, r)[b].item() > 1e-3, side
    padded = chosen.clone()
    padded[0, 2] = other  # chosen_mask[0, 2] is padding
    assert loss(padded, rejected).abs().max().item() < 1e-6


def test_adpa_gradient_raises_tokens_the_teacher_favours_and_lowers_the_others():
    """The paper's claim for ADPA: a gradient step on the student's logits raises π_θ(a) for every token
    whose teacher advantage is above the student's expected advantage and lowers it for the others.
    With a uniform student and advantages of mean 0, that is: positive up, negative down."""
    logits = torch.zeros(1, 1, 4, requires_grad=True)
    teacher = torch.tensor([0.4, 0.1, 0.25, 0.25]).log().view(1, 1, 4)
    reference = torch.full((1, 1, 4), 0.25).log()
    advantages = teacher_advantages(teacher, reference)  # ln 1.6 > 0, ln 0.4 < 0, 0, 0
    mask = torch.tensor([[True]])
    advantage_loss(logits.log_softmax(-1), advantages, mask).sum().backward()
    before = logits.softmax(-1).flatten()
    after = (logits - 1.0 * logits.grad).softmax(-1).flatten()
    assert after[0] > before[0] and after[1] < before[1]
    # in general: the logit gradient is −π(a)·(A(a) − E_π[A]), whatever the student
    z = torch.randn(1, 1, 6, generator=torch.Generator().manual_seed(5), requires_grad=True)
    a = torch.randn(1, 1, 6, generator=torch.Generator().manual_seed(6))
    advantage_loss(z.log_softmax(-1), a, mask).sum().backward()
    pi = z.softmax(-1).detach()
    assert torch.allclose(z.grad, -pi * (a - (pi * a).sum(-1, keepdim=True)), atol=1e-6)


def test_adpa_loss_composes_the_sft_and_advantage_terms():
    """nll = −ln 0.5 = 0.693147; A = 0.5·ln(p/q) read under q: −(0.25·0.346574 − 0.75·0.202733) = 0.065406."""
    out = adpa_loss(
        torch.tensor([[math.log(0.5)]]),
        Q.view(1, 1, 2),
        P.view(1, 1, 2),
        Q.view(1, 1, 2),
        torch.tensor([[True]]),
        torch.tensor([[True]]),
        beta=0.5,
    )
    assert out.losses.tolist() == pytest.approx([0.693147 + 0.065406], abs=1e-5)
