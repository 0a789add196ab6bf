"""DCKD and ADPA (Gao et al. 2025, ICLR): losses over full-vocabulary token distributions of replies.

Notation. For a reply y to prompt x, s_t = (x, y_<t) is the state before token t, and for a model π,
π(·|s_t) is its next-token distribution over the vocabulary V. Inputs are log-probabilities of shape
(B, T, V): B replies, T reply positions (right-padded), V the vocabulary; ``mask`` (B, T) marks the
real reply tokens, and padded positions may hold anything (they are read only through the mask).
Every function returns per-reply or per-pair values of shape (B,): the caller reduces them.

Reduction. Each reply's terms are averaged over its own tokens; the reference code (SLIT-AI/ADPA)
averages over all tokens of the micro-batch instead, which weighs long replies more. The two agree
when the replies have equal lengths.

π_T is the aligned (DPO-trained) teacher, π_ref its own reference (the teacher before DPO), π_θ the
student. All teacher terms are constants: they are read detached.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor


def masked_token_mean(values: Tensor, mask: Tensor) -> Tensor:
    """(B, T) → (B,): each row's mean over its real tokens; a row without any gives 0, not NaN."""
    if values.shape != mask.shape:
        raise ValueError(f"values and mask must have the same shape (got {tuple(values.shape)}, {tuple(mask.shape)})")
    mask = mask.to(torch.bool)
    total = torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum(-1)
    return total / mask.sum(-1).clamp(min=1).to(values.dtype)


def _check_distributions(name: str, a: Tensor, b: Tensor, mask: Tensor) -> None:
    if a.dim() != 3 or a.shape != b.shape:
        raise ValueError(
            f"{name}: expected two (B, T, V) tensors of one shape (got {tuple(a.shape)}, {tuple(b.shape)})"
        )
    if mask.shape != a.shape[:2]:
        raise ValueError(f"{name}: mask must be (B, T) = {tuple(a.shape[:2])} (got {tuple(mask.shape)})")


def token_forward_kl(teacher_logps: Tensor, student_logps: Tensor, mask: Tensor) -> Tensor:
    """(1/|y|)·Σ_t KL(π_T(·|s_t) ‖ π_θ(·|s_t)), with KL(p‖q) = Σ_v p(v)·(log p(v) − log q(v)).

    The forward KL of knowledge distillation (Hinton et al. 2015), the constraint DCKD puts on each
    reply. It is mode-covering: the student pays wherever the teacher has mass it lacks. A token the
    teacher gives probability 0 (log-prob −inf) adds 0, as p·log p → 0. The teacher is detached.
    """
    _check_distributions("token_forward_kl", teacher_logps, student_logps, mask)
    teacher_logps = teacher_logps.detach()
    p = teacher_logps.exp()
    per_vocab = torch.where(p > 0, p * (teacher_logps - student_logps), torch.zeros((), dtype=p.dtype, device=p.device))
    return masked_token_mean(per_vocab.sum(-1), mask)


def teacher_advantages(teacher_logps: Tensor, reference_logps: Tensor, beta: float = 1.0) -> Tensor:
    """A(s_t, a) = β·(log π_T(a|s_t) − log π_ref(a|s_t)) for every token a of the vocabulary, (B, T, V).

    Gao et al. 2025 (§3.2): DPO's implicit reward r(x, y) = β·log π_T(y|x)/π_ref(y|x) (Rafailov et
    al. 2023, eq. 5) decomposes over tokens, and its per-token term is the teacher's advantage of
    taking a in s_t. Read over the whole vocabulary it scores every action the student might take, not
    only the one in the data: the distribution-level reward signal of ADPA. Detached.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0 (got {beta})")
    if teacher_logps.shape != reference_logps.shape:
        raise ValueError(
            f"teacher and reference log-probs must have one shape (got {tuple(teacher_logps.shape)}, "
            f"{tuple(reference_logps.shape)}); they must share the student's tokenizer"
        )
    return (beta * (teacher_logps - reference_logps)).detach()


def advantage_loss(student_logps: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """−(1/|y|)·Σ_t Σ_a π_θ(a|s_t)·A(s_t, a): minus the student's expected teacher advantage per token.

    ADPA's objective (Gao et al. 2025, §3.2), on states s_t of replies the student itself produced.
    Its gradient with respect to the student's logit z_a is −(1/|y|)·π_θ(a)·(A(a) − Σ_b π_θ(b)A(b)):
    a gradient step raises the probability of every token whose advantage is above the student's
    expected one and lowers the others, whichever token the reply actually holds.
    """
    _check_distributions("advantage_loss", student_logps, advantages, mask)
    expected = (student_logps.exp() * advantages.detach()).sum(-1)
    return -masked_token_mean(expected, mask)


def reply_nll(token_logps: Tensor, mask: Tensor) -> Tensor:
    """−(1/|y|)·Σ_t log π_θ(y_t|s_t): the SFT term on the chosen reply, (B, T) → (B,)."""
    return -masked_token_mean(token_logps, mask)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the four terms; a method is a choice of them (:data:`DISTILL_METHODS`)."""

    nll: float = 0.0
    """SFT on the chosen reply."""
    chosen_kl: float = 0.0
    """KL(π_T ‖ π_θ) on the chosen reply's states."""
    rejected_kl: float = 0.0
    """KL(π_T ‖ π_θ) on the rejected reply's states."""
    advantage: float = 0.0
    """ADPA's expected-advantage term on the rejected reply's states."""

    def problems(self) -> list[str]:
        found = [f"{n} weight must be >= 0 (got {v})" for n, v in vars(self).items() if not v >= 0]
        if not found and self.chosen_kl == self.rejected_kl == self.advantage == self.nll == 0:
            found.append("every loss weight is 0: nothing would be trained")
        return found

    @property
    def needs_teacher(self) -> bool:
        return self.chosen_kl > 0 or self.rejected_kl > 0 or self.advantage > 0

    @property
    def needs_teacher_reference(self) -> bool:
        return self.advantage > 0


DISTILL_METHODS: Mapping[str, LossWeights] = {
    "sft": LossWeights(nll=1.0),
    "kd": LossWeights(nll=1.0, chosen_kl=1.0),
    "dckd": LossWeights(nll=1.0, chosen_kl=1.0, rejected_kl=1.0),
    "adpa": LossWeights(nll=1.0, advantage=1.0),
    "adpa+dckd": LossWeights(nll=1.0, chosen_kl=1.0, rejected_kl=1.0, advantage=1.0),
}
"""sft: the student's start (chosen replies only); kd: plain logit distillation on the chosen replies;
dckd: KL on both replies (§3.1); adpa: the advantage term (§3.2); adpa+dckd: both in one objective (the
paper's ADPA+ runs ADPA from a DCKD-trained student instead; the reference code's one loss sums them as
here). Every method keeps the SFT term on the chosen reply, as the reference code's configurations do."""


@dataclass(frozen=True)
class DistillLossOutput:
    """Per-pair losses (B,) and each weighted term's detached per-pair value (``terms``)."""

    losses: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)


def distillation_loss(
    weights: LossWeights,
    chosen_mask: Tensor,
    rejected_mask: Tensor,
    chosen_token_logps: Tensor | None = None,
    student_chosen_logps: Tensor | None = None,
    student_rejected_logps: Tensor | None = None,
    teacher_chosen_logps: Tensor | None = None,
    teacher_rejected_logps: Tensor | None = None,
    rejected_advantages: Tensor | None = None,
) -> DistillLossOutput:
    """w_nll·NLL(y_w) + w_c·KL_w + w_r·KL_l + w_A·L_A per pair: the terms whose weight is > 0.

    ``chosen_token_logps`` (B, T_w) are the student's log-probs of the chosen tokens; the ``*_logps``
    (B, T, V) full distributions; ``rejected_advantages`` (B, T_l, V) from :func:`teacher_advantages`.
    A term with a positive weight and a missing input is refused, naming it.
    """
    needed = {
        "nll": ("chosen_token_logps",),
        "chosen_kl": ("student_chosen_logps", "teacher_chosen_logps"),
        "rejected_kl": ("student_rejected_logps", "teacher_rejected_logps"),
        "advantage": ("student_rejected_logps", "rejected_advantages"),
    }
    given = {
        "chosen_token_logps": chosen_token_logps,
        "student_chosen_logps": student_chosen_logps,
        "student_rejected_logps": student_rejected_logps,
        "teacher_chosen_logps": teacher_chosen_logps,
        "teacher_rejected_logps": teacher_rejected_logps,
        "rejected_advantages": rejected_advantages,
    }
    active = {name: w for name, w in vars(weights).items() if w > 0}
    missing = sorted({arg for name in active for arg in needed[name] if given[arg] is None})
    if missing:
        raise ValueError(f"distillation_loss: the weighted terms {', '.join(active)} need {', '.join(missing)}")
    terms: dict[str, Tensor] = {}
    if "nll" in active:
        terms["nll"] = reply_nll(chosen_token_logps, chosen_mask)  # type: ignore[arg-type]
    if "chosen_kl" in active:
        terms["chosen_kl"] = token_forward_kl(teacher_chosen_logps, student_chosen_logps, chosen_mask)  # type: ignore[arg-type]
    if "rejected_kl" in active:
        terms["rejected_kl"] = token_forward_kl(teacher_rejected_logps, student_rejected_logps, rejected_mask)  # type: ignore[arg-type]
    if "advantage" in active:
        terms["advantage"] = advantage_loss(student_rejected_logps, rejected_advantages, rejected_mask)  # type: ignore[arg-type]
    losses = sum(
        (active[name] * value for name, value in terms.items()),
        torch.zeros_like(chosen_mask[:, 0], dtype=torch.float32),
    )
    return DistillLossOutput(losses, {name: value.detach() for name, value in terms.items()})


def dckd_loss(
    chosen_token_logps: Tensor,
    student_chosen_logps: Tensor,
    student_rejected_logps: Tensor,
    teacher_chosen_logps: Tensor,
    teacher_rejected_logps: Tensor,
    chosen_mask: Tensor,
    rejected_mask: Tensor,
    nll_weight: float = 1.0,
    chosen_weight: float = 1.0,
    rejected_weight: float = 1.0,
) -> DistillLossOutput:
    """L_DCKD = −log π_θ(y_w|x)/|y_w| + α_w·KL_w + α_l·KL_l, KL_y = (1/|y|)Σ_t KL(π_T(·|s_t^y) ‖ π_θ(·|s_t^y)).

    Dual-Constrained Knowledge Distillation (Gao et al. 2025, §3.1): the student imitates the aligned
    teacher's token distributions on the preferred reply *and* on the dispreferred one, so it also
    learns where the teacher puts little mass. Zero iff the student equals the teacher at every real
    token of both replies (the NLL term aside, which ``nll_weight=0`` removes). The weights are the
    reference code's ``sft_on_chosen``, ``chosen_distil_weight`` and ``rejected_distil_weight``.
    """
    weights = LossWeights(nll=nll_weight, chosen_kl=chosen_weight, rejected_kl=rejected_weight)
    return distillation_loss(
        weights,
        chosen_mask,
        rejected_mask,
        chosen_token_logps=chosen_token_logps,
        student_chosen_logps=student_chosen_logps,
        student_rejected_logps=student_rejected_logps,
        teacher_chosen_logps=teacher_chosen_logps,
        teacher_rejected_logps=teacher_rejected_logps,
    )


def adpa_loss(
    chosen_token_logps: Tensor,
    student_rejected_logps: Tensor,
    teacher_rejected_logps: Tensor,
    reference_rejected_logps: Tensor,
    chosen_mask: Tensor,
    rejected_mask: Tensor,
    beta: float = 1.0,
    nll_weight: float = 1.0,
    advantage_weight: float = 1.0,
) -> DistillLossOutput:
    """L_ADPA = −log π_θ(y_w|x)/|y_w| − γ·(1/|y_l|)·Σ_t Σ_a π_θ(a|s_t)·β·log(π_T(a|s_t)/π_ref(a|s_t)).

    Advantage-Guided Distillation for Preference Alignment (Gao et al. 2025, §3.2): y_l is a reply the
    student produced (in the paper, sampled from the SFT student), and the teacher's advantage over
    the whole vocabulary tells the student, at each of its own states, which tokens the aligned teacher
    prefers and which it avoids. γ is the reference code's ``adpa_weight``; its advantage is the plain
    log-ratio (β = 1), so β and γ play one role.
    """
    advantages = teacher_advantages(teacher_rejected_logps, reference_rejected_logps, beta)
    return distillation_loss(
        LossWeights(nll=nll_weight, advantage=advantage_weight),
        chosen_mask,
        rejected_mask,
        chosen_token_logps=chosen_token_logps,
        student_rejected_logps=student_rejected_logps,
        rejected_advantages=advantages,
    )
