"""The DPO family: preference losses over the log-probabilities of a policy and a frozen reference.

Notation used in every docstring. For a pair (x, y_w ≻ y_l), ``log π(y|x)`` is the summed
log-probability of the reply's tokens given the prompt, and the log-ratios are

    ρ_w = log π(y_w|x) − log π_ref(y_w|x),   ρ_l = log π(y_l|x) − log π_ref(y_l|x),   h = ρ_w − ρ_l.

β·ρ is DPO's implicit reward (Rafailov et al. 2023, eq. 5), so every reference-based loss below
reports β·ρ_w and β·ρ_l as the pair's rewards, whatever it optimises. Each function returns
per-pair losses; the caller weights and reduces them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.policy.registry import PolicyLossOutput, register_policy_loss


def check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0 (got {value})")


def _check_noise(name: str, value: float) -> None:
    if not 0.0 <= value < 0.5:
        raise ValueError(f"{name} must be in [0, 0.5): the probability that a label is flipped (got {value})")


def _check_lengths(lengths: Tensor, which: str) -> None:
    if bool((lengths <= 0).any()):
        raise ValueError(f"{which} must be positive token counts (got {lengths.tolist()})")


def logratios(
    chosen_logps: Tensor, rejected_logps: Tensor, reference_chosen_logps: Tensor, reference_rejected_logps: Tensor
) -> tuple[Tensor, Tensor]:
    return chosen_logps - reference_chosen_logps, rejected_logps - reference_rejected_logps


def loss_output(losses: Tensor, chosen_rewards: Tensor, rejected_rewards: Tensor, **extras: Tensor) -> PolicyLossOutput:
    return PolicyLossOutput(
        losses,
        chosen_rewards.detach(),
        rejected_rewards.detach(),
        {name: value.detach() for name, value in extras.items()},
    )


def weighted_batch_loss(losses: Tensor, weights: Tensor) -> Tensor:
    """The batch's objective from its per-pair losses: (Σ_i w_i·l_i) / n over the batch's n pairs.

    ``weights`` are the pairs' ``PreferencePair.weight`` (MAPL's λ for its derived pairs, or any
    weight in the data); 1 everywhere gives the plain mean. The reduction is the reward-model
    trainer's (``training/trainer.py``: the weighted sum over the pairs in the global batch), so a
    weight means the same in ``rewardlab train`` and ``rewardlab dpo``: it scales the pair's loss, and
    the mean over many batches estimates the data's weighted loss Σ w·l / N, the weighted sums of
    MAPL's objectives (Sun et al. 2025). A pair of weight 0 has no effect on the gradient.
    """
    if losses.shape != weights.shape:
        shapes = f"{tuple(losses.shape)} and {tuple(weights.shape)}"
        raise ValueError(f"losses and weights must have the same shape (got {shapes})")
    return (losses * weights.to(losses.device)).sum() / max(losses.numel(), 1)


@register_policy_loss("dpo", aliases=("sigmoid",))
def dpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    beta: float = 0.1,
) -> PolicyLossOutput:
    """DPO: −log σ(β·h), the Bradley-Terry likelihood of the label under the implicit reward.

    Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is Secretly a Reward
    Model", eq. 7. β is the strength of the KL penalty to the reference in the RLHF objective the
    loss is derived from: small β lets the policy move far from the reference.
    """
    check_positive("beta", beta)
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    losses = -F.logsigmoid(beta * (rho_w - rho_l))
    return loss_output(losses, beta * rho_w, beta * rho_l)


@register_policy_loss("conservative_dpo", aliases=("cdpo",))
def conservative_dpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.1,
) -> PolicyLossOutput:
    """Conservative DPO: −(1 − ε)·log σ(β·h) − ε·log σ(−β·h), DPO with label smoothing ε.

    Mitchell 2023, "A note on DPO with noisy preferences and relationship to IPO": the labels are
    trusted only with probability 1 − ε, so the loss no longer pushes h to infinity; its minimum is
    at β·h = log((1 − ε)/ε). With ε = 0 it is exactly DPO.
    """
    check_positive("beta", beta)
    _check_noise("label_smoothing", label_smoothing)
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    logits = beta * (rho_w - rho_l)
    losses = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return loss_output(losses, beta * rho_w, beta * rho_l)


@register_policy_loss("robust_dpo", aliases=("rdpo",))
def robust_dpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    beta: float = 0.1,
    label_noise: float = 0.1,
) -> PolicyLossOutput:
    """Robust DPO: [(1 − ε)·(−log σ(β·h)) − ε·(−log σ(−β·h))] / (1 − 2ε), unbiased under label flips.

    Chowdhury, Kini & Natarajan 2024, "Provably Robust DPO: Aligning Language Models with Noisy
    Feedback". If each label is flipped with probability ε, the expected value of this loss
    over the flip equals the DPO loss of the clean label:
    (1 − ε)·L̃(h) + ε·L̃(−h) = ℓ(h), where ℓ(h) = −log σ(β·h). Unlike conservative DPO it is an
    unbiased estimate of the clean loss, not a smoothed one; a single term can be negative.
    """
    check_positive("beta", beta)
    _check_noise("label_noise", label_noise)
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    logits = beta * (rho_w - rho_l)
    eps = label_noise
    losses = (-(1 - eps) * F.logsigmoid(logits) + eps * F.logsigmoid(-logits)) / (1 - 2 * eps)
    return loss_output(losses, beta * rho_w, beta * rho_l)


@register_policy_loss("ipo")
def ipo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    beta: float = 0.1,
) -> PolicyLossOutput:
    """IPO: (h − 1/(2β))², a squared loss with its minimum at the finite margin h = 1/(2β).

    Azar et al. 2024, "A General Theoretical Paradigm to Understand Learning from Human
    Preferences", eq. 17 (β is their τ). With deterministic preferences DPO's optimum sends h to
    infinity and ignores the KL penalty; IPO regresses h onto a target set by the regularisation
    strength instead. The inputs are whatever log-probabilities the caller passes (summed here;
    some implementations pass per-token means).
    """
    check_positive("beta", beta)
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    losses = (rho_w - rho_l - 1 / (2 * beta)) ** 2
    return loss_output(losses, beta * rho_w, beta * rho_l)


@register_policy_loss("hinge", aliases=("slic",))
def hinge_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    beta: float = 0.1,
) -> PolicyLossOutput:
    """Hinge (SLiC): max(0, 1 − β·h), zero once the pair is separated by the margin h ≥ 1/β.

    Zhao et al. 2023, "SLiC-HF: Sequence Likelihood Calibration with Human Feedback", in the
    normalised form of Liu et al. 2024, "Statistical Rejection Sampling Improves Preference
    Optimization" (RSO), where the log-ratios are taken against the reference and 1/β is
    the margin.
    """
    check_positive("beta", beta)
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    losses = torch.relu(1 - beta * (rho_w - rho_l))
    return loss_output(losses, beta * rho_w, beta * rho_l)


@register_policy_loss("rpo")
def rpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    chosen_lengths: Tensor,
    beta: float = 0.1,
    alpha: float = 1.0,
) -> PolicyLossOutput:
    """RPO: −log σ(β·h) + α·(−log π(y_w|x) / |y_w|), DPO plus the length-normalised SFT loss on y_w.

    Liu et al. 2024, "Provably Mitigating Overoptimization in RLHF: Your SFT Loss is Implicitly an
    Adversarial Regularizer": choosing the policy against an adversarial reward model
    amounts to adding the imitation (NLL) loss of the chosen replies, which keeps the policy from
    trading the chosen replies' likelihood for a larger margin. The NLL is per token (divided by
    |y_w|), so α does not depend on reply length. Its gradient with respect to log π(y_w|x) is
    DPO's plus −α/|y_w|.
    """
    check_positive("beta", beta)
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0: the weight of the chosen reply's NLL (got {alpha})")
    _check_lengths(chosen_lengths, "chosen_lengths")
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    nll = -chosen_logps / chosen_lengths
    losses = -F.logsigmoid(beta * (rho_w - rho_l)) + alpha * nll
    return loss_output(losses, beta * rho_w, beta * rho_l, nll=nll)


@register_policy_loss("simpo")
def simpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_lengths: Tensor,
    beta: float = 2.0,
    gamma: float = 1.0,
) -> PolicyLossOutput:
    """SimPO: −log σ(β/|y_w|·log π(y_w|x) − β/|y_l|·log π(y_l|x) − γ), without a reference model.

    Meng, Xia & Chen 2024, "SimPO: Simple Preference Optimization with a Reference-Free Reward",
    eq. 6. The reward is the policy's mean token log-probability (the quantity generation ranks
    by), so long replies gain nothing from length alone; γ is a target reward margin. The paper
    uses β around 2 to 2.5 and γ/β around 0.5. The rewards reported are β·log π(y|x)/|y|.
    """
    check_positive("beta", beta)
    _check_lengths(chosen_lengths, "chosen_lengths")
    _check_lengths(rejected_lengths, "rejected_lengths")
    chosen_rewards = beta * chosen_logps / chosen_lengths
    rejected_rewards = beta * rejected_logps / rejected_lengths
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards - gamma)
    return loss_output(losses, chosen_rewards, rejected_rewards)


@register_policy_loss("flex_dpo", aliases=("dpo_3d",))
def flex_dpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    chosen_lengths: Tensor | None = None,
    beta_chosen: float = 0.1,
    beta_rejected: float = 0.1,
    sft_weight: float = 0.0,
) -> PolicyLossOutput:
    """Flex-DPO with an SFT term: −log σ(β⁺·ρ_w − β⁻·ρ_l) + λ·(−log π(y_w|x) / |y_w|).

    The two regularisers of Yan et al. 2024, "3D-Properties: Identifying Challenges in DPO and
    Charting a Path Forward", proposed against the Drastic drop of the rejected likelihood, the
    Degradation into suppressing rejected replies (the chosen reply's gradient vanishes as
    π(y_l) → 0) and the Dispersion of probability onto unseen replies:

    - separate temperatures β⁺ (chosen) and β⁻ (rejected) reweigh the two gradients
      (Flex-DPO; the paper's best setting has β⁻ slightly below β⁺);
    - λ > 0 adds the chosen reply's per-token NLL, which keeps log π(y_w|x) from dropping
      (needs ``chosen_lengths``).

    With β⁺ = β⁻ = β and λ = 0 it is DPO. The rewards reported are β⁺·ρ_w and β⁻·ρ_l.
    """
    check_positive("beta_chosen", beta_chosen)
    check_positive("beta_rejected", beta_rejected)
    if sft_weight < 0:
        raise ValueError(f"sft_weight must be >= 0 (got {sft_weight})")
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    chosen_rewards, rejected_rewards = beta_chosen * rho_w, beta_rejected * rho_l
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards)
    if sft_weight == 0:
        return loss_output(losses, chosen_rewards, rejected_rewards)
    if chosen_lengths is None:
        raise ValueError("flex_dpo with sft_weight > 0 needs chosen_lengths (the NLL is per token)")
    _check_lengths(chosen_lengths, "chosen_lengths")
    nll = -chosen_logps / chosen_lengths
    return loss_output(losses + sft_weight * nll, chosen_rewards, rejected_rewards, nll=nll)


def dpo_token_rewards(guide_token_logps: Tensor, reference_token_logps: Tensor, beta: float) -> Tensor:
    """Token-level rewards induced by a DPO-trained guide model: r̂_t = β·(log π_guide(y_t) − log π_ref(y_t)).

    The "practical reward guidance" of TGDPO (Zhu et al. 2025): a policy already
    trained with DPO is a token-level reward model through its per-token implicit reward. The
    result is detached: it guides the loss, it is not trained.
    """
    check_positive("beta", beta)
    return (beta * (guide_token_logps - reference_token_logps)).detach()


@register_policy_loss("tgdpo")
def tgdpo_loss(
    chosen_token_logps: Tensor,
    rejected_token_logps: Tensor,
    reference_chosen_token_logps: Tensor,
    reference_rejected_token_logps: Tensor,
    chosen_token_mask: Tensor,
    rejected_token_mask: Tensor,
    chosen_token_rewards: Tensor,
    rejected_token_rewards: Tensor,
    beta: float = 0.1,
    alpha: float = 0.5,
) -> PolicyLossOutput:
    """TGDPO: −log σ(β·Σ_t (1 + α·r̂_w,t)·ρ_w,t − β·Σ_t (1 − α·r̂_l,t)·ρ_l,t), token-weighted DPO.

    Zhu et al. 2025, "TGDPO: Harnessing Token-Level Reward Guidance for Enhancing Direct
    Preference Optimization" (ICML). ρ_·,t = log π(y_t|x, y_<t) − log π_ref(y_t|x, y_<t) is the
    per-token log-ratio; r̂ is a token-level reward (e.g. :func:`dpo_token_rewards` of a DPO-trained
    guide model). Each token may drift from the reference in proportion to its guidance: chosen
    tokens with a high reward and rejected tokens with a low reward get a larger weight.

    What is implemented is the simplest faithful form, the one of the authors' released code: the
    weights 1 + α·r̂ (chosen) and 1 − α·r̂ (rejected), unclipped, so keep α·|r̂| below 1 for the
    weights to stay positive. With α = 0 (or r̂ = 0) it is exactly DPO. The guidance rewards are
    detached. The rewards reported are the weighted sums β·Σ_t w_t·ρ_t the loss compares.
    """
    check_positive("beta", beta)
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0: the strength of the token-level guidance (got {alpha})")
    chosen_weights = 1 + alpha * chosen_token_rewards.detach()
    rejected_weights = 1 - alpha * rejected_token_rewards.detach()
    rho_w = (chosen_token_logps - reference_chosen_token_logps) * chosen_weights
    rho_l = (rejected_token_logps - reference_rejected_token_logps) * rejected_weights
    zero = torch.zeros((), dtype=rho_w.dtype, device=rho_w.device)
    chosen_rewards = beta * torch.where(chosen_token_mask, rho_w, zero).sum(-1)
    rejected_rewards = beta * torch.where(rejected_token_mask, rho_l, zero).sum(-1)
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards)
    return loss_output(losses, chosen_rewards, rejected_rewards)


def degraded_logratios(token_logratios: Tensor, key_scores: Tensor, token_mask: Tensor, levels: int) -> Tensor:
    """Summed log-ratios of a reply with more and more of its key content removed, (B, levels + 1).

    The self-supervised replies of SPO (Li et al. 2024, "Self-supervised Preference Optimization:
    Enhance Your Language Model with Preference Degree Awareness"): variant k of a reply of n tokens
    drops its ⌊k·n/(K + 1)⌋ most key tokens, k = 0 … K (K = ``levels``), so variant 0 is the reply
    itself, each variant keeps a subset of the previous one's tokens and none is empty. Its
    preference degree falls with k, a label that costs no annotation.

    Two simplifications make it a pure function of the log-probabilities a DPO batch already holds
    (no extra text, model or forward pass): the paper extracts key content by prompting an LLM;
    here a token's key score is passed in (SPO's loss uses its surprisal under the reference,
    −log π_ref(y_t|x, y_<t): the tokens the reference could not predict carry the content, the
    predictable ones are glue). And a variant's log-ratio is the sum of its kept tokens' log-ratios
    in the original context, Σ_{t kept} ρ_t, rather than the log-ratio of the shortened text
    re-scored. Ties in the key score are broken by position (earlier first); padded entries
    (``token_mask`` False) are ignored, whatever they hold.
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1: the number of degraded variants of a reply (got {levels})")
    zero = torch.zeros((), dtype=token_logratios.dtype, device=token_logratios.device)
    scores = torch.where(token_mask, key_scores, torch.full_like(key_scores, float("-inf")))
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    rank = torch.argsort(order, dim=-1)  # 0 = the most key token of the row
    n = token_mask.sum(-1, keepdim=True)
    variants = []
    for k in range(levels + 1):
        removed = torch.div(k * n, levels + 1, rounding_mode="floor")
        kept = token_mask & (rank >= removed)
        variants.append(torch.where(kept, token_logratios, zero).sum(-1))
    return torch.stack(variants, dim=-1)


def _degree_loss(
    token_logps: Tensor, reference_token_logps: Tensor, token_mask: Tensor, beta: float, levels: int
) -> Tensor:
    zero = torch.zeros((), dtype=token_logps.dtype, device=token_logps.device)
    logratios = torch.where(token_mask, token_logps - reference_token_logps, zero)
    surprisal = torch.where(token_mask, -reference_token_logps, zero).detach()
    rewards = beta * degraded_logratios(logratios, surprisal, token_mask, levels)
    tail = torch.logcumsumexp(rewards.flip(-1), dim=-1).flip(-1)  # log Σ_{j ≥ k} exp r_j
    return (tail - rewards)[:, :levels].mean(-1)


@register_policy_loss("spo", aliases=("spo_dpo",))
def spo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    chosen_token_logps: Tensor,
    reference_chosen_token_logps: Tensor,
    chosen_token_mask: Tensor,
    rejected_token_logps: Tensor | None = None,
    reference_rejected_token_logps: Tensor | None = None,
    rejected_token_mask: Tensor | None = None,
    beta: float = 0.1,
    degree_weight: float = 0.1,
    levels: int = 2,
    sides: str = "chosen",
) -> PolicyLossOutput:
    """SPO: −log σ(β·h) + λ·L_deg, DPO plus a self-supervised loss on the reply's preference degree.

    Li et al. 2024, "Self-supervised Preference Optimization: Enhance Your Language Model with
    Preference Degree Awareness" (EMNLP Findings): the alignment loss (DPO here) is combined with a
    self-supervised loss on replies made by removing more and more key content, whose preference
    degree is known by construction (:func:`degraded_logratios`: y⁽⁰⁾ = y ≻ y⁽¹⁾ ≻ … ≻ y⁽ᴷ⁾).

    The paper predicts how much was removed with a classifier on the LLM's representation; a pure
    function of log-probabilities has no such head, so the degree is read from the implicit reward
    r_k = β·Σ_{t ∈ y⁽ᵏ⁾} ρ_t itself, as the Plackett-Luce likelihood of the known order, averaged
    over its K steps:

        L_deg = (1/K)·Σ_{k=0}^{K−1} [log Σ_{j=k}^{K} exp(r_j) − r_k].

    It is lowest when the reward ranks the variants by completeness (r_0 > r_1 > … > r_K): it
    lifts the log-ratio of the reply's key tokens. ``sides`` = "chosen" applies it to y_w only
    (the default: on y_l it would lift the rejected reply's key tokens, against DPO's push); "both"
    averages it over y_w and y_l, as the paper builds degraded variants of both. With λ = 0 it
    is exactly DPO. The rewards reported are DPO's, β·ρ_w and β·ρ_l; ``degree_loss`` is L_deg.
    """
    check_positive("beta", beta)
    if degree_weight < 0:
        raise ValueError(f"degree_weight must be >= 0: the weight λ of the degree loss (got {degree_weight})")
    if not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be an integer >= 1: the number of degraded variants (got {levels!r})")
    if sides not in ("chosen", "both"):
        raise ValueError(f"sides must be 'chosen' or 'both' (got {sides!r})")
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    losses = -F.logsigmoid(beta * (rho_w - rho_l))
    degree = _degree_loss(chosen_token_logps, reference_chosen_token_logps, chosen_token_mask, beta, levels)
    if sides == "both":
        rejected = (rejected_token_logps, reference_rejected_token_logps, rejected_token_mask)
        if any(t is None for t in rejected):
            raise ValueError("spo with sides='both' needs the rejected replies' token log-probabilities and mask")
        degree = (degree + _degree_loss(*rejected, beta, levels)) / 2
    return loss_output(losses + degree_weight * degree, beta * rho_w, beta * rho_l, degree_loss=degree)


@register_policy_loss("sft", aliases=("rsf", "rejection_sampling_sft"))
def sft_loss(
    chosen_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_logps: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
) -> PolicyLossOutput:
    """SFT on the chosen replies: −log π(y_w|x) / |y_w|, the per-token NLL; the rejected reply is not trained on.

    The fine-tuning step of rejection-sampling fine-tuning (RSF; Touvron et al. 2023, "Llama 2",
    §3.2.3; Dong et al. 2023, "RAFT: Reward rAnked FineTuning"): sample replies, keep the best by the
    reward, imitate them. With pairs from ``rewardlab sample-pairs --direction`` the best is ranked
    along a user's direction in a multi-attribute reward space, which makes it the preference-
    conditioned RSF of DPA (Wang et al. 2024, "Arithmetic Control of LLMs for Diverse User
    Preferences: Directional Preference Alignment with Multi-Objective Rewards", §3.2; the paper
    also writes the direction into the prompt, which ``sample-pairs`` does not). Dividing by |y_w|
    keeps the step size independent of reply length. No reference model is read.

    The rejected reply only feeds the diagnostics: the rewards reported are the mean token
    log-probabilities log π(y|x)/|y| of both replies (0 for the rejected one when its log-probs
    are not given). The policy trainer still computes them; they carry no gradient into the loss.
    """
    _check_lengths(chosen_lengths, "chosen_lengths")
    nll = -chosen_logps / chosen_lengths
    if rejected_logps is None or rejected_lengths is None:
        rejected_rewards = torch.zeros_like(chosen_logps)
    else:
        _check_lengths(rejected_lengths, "rejected_lengths")
        rejected_rewards = rejected_logps / rejected_lengths
    return loss_output(nll, -nll, rejected_rewards)


@register_policy_loss("mm_dpo", aliases=("dynamic_reward_scaling",))
def mm_dpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    chosen_scores: Tensor,
    rejected_scores: Tensor,
    beta: float = 0.1,
    scale_weight: float = 0.1,
    sharpness: float = 0.5,
) -> PolicyLossOutput:
    """MM-DPO: DPO whose β grows with the reward model's confidence in the pair (Dynamic Reward Scaling).

    Zhang et al. 2025, "MM-RLHF: The Next Step Forward in Multimodal LLM Alignment", §5:
    β(δ) = β·(1 + w·(1 − e^{−k·δ})) with δ = r(x, y_w) − r(x, y_l) the reward model's margin
    (``chosen_scores`` − ``rejected_scores``; for UltraFeedback the GPT-4 ratings), w = ``scale_weight``
    and k = ``sharpness``; the loss is −log σ(β(δ)·h). A pair the reward model is sure of (large δ)
    is fitted more sharply, up to β·(1 + w); a doubtful one (δ ≈ 0) keeps DPO's β. β(δ) is detached
    (it is data, not a parameter) and clamped below at 10⁻³ as in the authors' code, so a pair the
    reward model reverses (δ < 0) is softened, never inverted. With w = 0 it is exactly DPO. Nothing
    in the objective is multimodal: it trains on text pairs with ratings.
    """
    check_positive("beta", beta)
    check_positive("sharpness", sharpness)
    if scale_weight < 0:
        raise ValueError(f"scale_weight must be non-negative (got {scale_weight})")
    if not bool(torch.isfinite(chosen_scores).all() and torch.isfinite(rejected_scores).all()):
        raise ValueError("mm_dpo needs each pair's reward margin: set chosen_rating and rejected_rating")
    margin = (chosen_scores - rejected_scores).detach()
    pair_beta = (beta * (1 + scale_weight * (1 - torch.exp(-sharpness * margin)))).clamp(min=1e-3)
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    losses = -F.logsigmoid(pair_beta * (rho_w - rho_l))
    return loss_output(losses, pair_beta * rho_w, pair_beta * rho_l, beta=pair_beta)
