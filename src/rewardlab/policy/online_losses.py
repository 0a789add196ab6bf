"""Update rules of online and iterative alignment: the policy generates, a judge ranks, the policy improves.

Same notation as :mod:`rewardlab.policy.losses` (ρ = log π(y|x) − log π_ref(y|x), h = ρ_w − ρ_l).
Iterative methods usually take the reference to be the policy at the start of the round, π_t
(DNO, SELM, CREAM do); which model is the reference is the caller's choice (``train_policy``'s
``reference_model``), these functions only read its log-probabilities. The per-pair fields they
add to a DPO batch (:data:`rewardlab.policy.registry.SEQUENCE_FIELDS`):

- ``strengths``: the probability that y_w is preferred, ``PreferencePair.strength`` (1 if unset);
- ``consistencies``: ``PreferencePair.consistency`` (1 if unset), CREAM's agreement of two rankings;
- ``chosen_scores`` / ``rejected_scores``: the judge's rewards, ``PreferencePair.chosen_rating`` /
  ``rejected_rating`` (one number each);
- ``old_chosen_logps`` / ``old_rejected_logps``: log π_old(y|x) of the policy as it was when the
  update started (the policy that sampled the replies in an on-policy round);
- ``judge_probabilities``: ``PreferencePair.judge_probability`` (NaN if unset), the policy-as-judge's
  probability that y_w wins (SCIR).

Which paper text was read: the abstracts in ``shared/papers``; the equations beyond them are
written from memory of the papers and say so where a choice was made.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rewardlab.policy.losses import check_positive, logratios, loss_output
from rewardlab.policy.registry import PolicyLossOutput, register_policy_loss


def _check_probabilities(name: str, values: Tensor) -> None:
    if not bool(((values >= 0) & (values <= 1)).all()):
        raise ValueError(f"{name} must be probabilities in [0, 1] (got {values.tolist()})")


def _check_scores(chosen_scores: Tensor, rejected_scores: Tensor) -> None:
    if not bool(torch.isfinite(chosen_scores).all() and torch.isfinite(rejected_scores).all()):
        raise ValueError(
            "this loss needs each pair's judge rewards: set PreferencePair.chosen_rating and rejected_rating "
            "to one number each"
        )


def soft_dpo_losses(logits: Tensor, target: Tensor) -> Tensor:
    """−p·log σ(z) − (1 − p)·log σ(−z): the cross-entropy of the label y_w ≻ y_l with probability p.

    With p = 1 it is DPO's −log σ(z); its minimum over z is at σ(z) = p, z = log(p / (1 − p)).
    """
    return -target * F.logsigmoid(logits) - (1 - target) * F.logsigmoid(-logits)


def dno_target(chosen_win_rates: Tensor, rejected_win_rates: Tensor) -> Tensor:
    """σ(r_t(y_w) − r_t(y_l)): DNO's regression target from each reply's win rate r_t(y) = P(y ≻ π_t),
    estimated by the oracle's mean preference of y over the prompt's other sampled replies."""
    _check_probabilities("chosen_win_rates", chosen_win_rates)
    _check_probabilities("rejected_win_rates", rejected_win_rates)
    return torch.sigmoid(chosen_win_rates - rejected_win_rates)


@register_policy_loss("dno", aliases=("direct_nash",))
def dno_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    strengths: Tensor,
    beta: float = 0.1,
) -> PolicyLossOutput:
    """DNO: −p·log σ(β·h) − (1 − p)·log σ(−β·h), regression of the implicit preference onto the oracle's.

    Rosset et al. 2024, "Direct Nash Optimization: Teaching Language Models to Self-Improve with
    General Preferences" (abstract read; the algorithm from memory). The exact iteration,
    π_{t+1}(y) ∝ π_t(y)·exp(r_t(y)/η) with r_t(y) = P(y ≻ π_t) the reply's win rate against the
    policy's own samples under the preference oracle (a GPM, or any general, possibly
    intransitive, preference model; :func:`rewardlab.policy.nash.dno_step`), is reached by
    regressing σ(β·h), the preference the implicit reward β·log(π/π_t) implies, onto
    p = σ(r_t(y_w) − r_t(y_l)) (:func:`dno_target`) with β = η and the previous iterate π_t as the
    reference: the minimiser has β·h = r_t(y_w) − r_t(y_l), which is the update. p is carried by
    ``PreferencePair.strength``; the oracle's P(y_w ≻ y_l) itself is a cheaper target of the same
    sign. The optimum of one pair is β·h = log(p / (1 − p)), finite unless p = 1. DNO-Prct, the
    practical form, keeps only pairs whose win rates differ clearly and labels them hard (p = 1):
    DPO against π_t, which is this loss with the strengths left unset.
    """
    check_positive("beta", beta)
    _check_probabilities("strengths", strengths)
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    losses = soft_dpo_losses(beta * (rho_w - rho_l), strengths)
    return loss_output(losses, beta * rho_w, beta * rho_l, target=strengths)


def _value_term(rho_w: Tensor, rho_l: Tensor, calibration: str) -> Tensor:
    if calibration == "chosen":
        return rho_w
    if calibration == "rejected":
        return rho_l
    if calibration == "both":
        return (rho_w + rho_l) / 2
    raise ValueError(f"calibration must be 'chosen', 'rejected' or 'both' (got {calibration!r})")


@register_policy_loss("vpo")
def vpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    beta: float = 0.1,
    alpha: float = 0.1,
    sign: int = 1,
    calibration: str = "both",
) -> PolicyLossOutput:
    """VPO: −log σ(β·h) + sign·α·β·ρ_cal, DPO's likelihood regularised by the implicit reward's value.

    Cen et al. 2024, "Value-Incentivized Preference Optimization: A Unified Approach to Online and
    Offline RLHF" (abstract read; the reparameterisation below is the DPO-style one the abstract
    announces, derived here). VPO fits the reward by maximum likelihood minus sign·α times the value
    max_π J(r, π) of the reward, where J measures reward relative to a calibration distribution
    π_cal (r is only defined up to a per-prompt shift). With r = β·log(π/π_ref) + β·log Z(x), the
    value is −β·E_{y∼π_cal}[ρ(y)], so the policy loss adds sign·α·β·ρ_cal:

    - sign = +1, optimism (online): ρ of the replies of π_cal is pushed down, which lifts
      replies not yet sampled: exploration. In an on-policy round π_cal is the sampler, whose
      replies are the pair's: ``calibration="both"``, ρ_cal = (ρ_w + ρ_l)/2.
    - sign = −1, pessimism (offline): ρ of π_cal's replies is pushed up, toward the data;
      with ``calibration="chosen"`` it is an SFT-like term on y_w.

    α = 0 is DPO. The value term is reported as ``value``.
    """
    check_positive("beta", beta)
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0: the weight of the value regulariser (got {alpha})")
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 (optimism, online) or -1 (pessimism, offline) (got {sign!r})")
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    value = beta * _value_term(rho_w, rho_l, calibration)
    losses = -F.logsigmoid(beta * (rho_w - rho_l)) + sign * alpha * value
    return loss_output(losses, beta * rho_w, beta * rho_l, value=value)


@register_policy_loss("selm")
def selm_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    beta: float = 0.1,
    alpha: float = 0.001,
) -> PolicyLossOutput:
    """SELM: −log σ(β·h) + α·β·(ρ_w + ρ_l)/2, DPO plus an optimism term toward unexplored replies.

    Zhang et al. 2024, "Self-Exploring Language Models: Active Preference Elicitation for Online
    Alignment" (abstract and the authors' released trainer read). SELM biases the reward fit toward
    rewards that are optimistic about replies not yet seen (a bilevel objective: likelihood + α·the
    best achievable KL-regularised value). Reparameterised through the policy, the optimism term is
    α·β·E_{y∼π_ref}[log π(y|x) − log π_ref(y|x)] added to the loss, with π_ref the previous
    iterate. The released code evaluates it on a third reply, π_ref's greedy one, which its data step
    also ranks with the pair's two (the online loop's ``pairs.reference_reply`` does that ranking); here
    the term is estimated on the pair's two replies, which in an on-policy round are π_ref's samples too. It
    lowers the likelihood of what the reference already samples, so mass moves to replies outside
    it, toward those the implicit reward rates high. The term is VPO's online value regulariser
    (sign = +1, ``calibration="both"``, :func:`vpo_loss`); the papers are concurrent and reach the
    same form. The released default is α = 0.001. α = 0 is DPO. ``optimism`` is the term's value.
    """
    vpo = vpo_loss(
        chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps,
        beta=beta, alpha=alpha, sign=1, calibration="both",
    )  # fmt: skip
    return PolicyLossOutput(vpo.losses, vpo.chosen_rewards, vpo.rejected_rewards, {"optimism": vpo.extras["value"]})


@register_policy_loss("p3o", aliases=("pairwise_ppo",))
def p3o_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    old_chosen_logps: Tensor,
    old_rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    chosen_scores: Tensor,
    rejected_scores: Tensor,
    beta: float = 0.1,
    clip: float = 0.2,
) -> PolicyLossOutput:
    """P3O: −min(R·A, clip(R, 1 − ε, 1 + ε)·A), PPO's clipped surrogate on a pair's reward difference.

    Wu et al. 2023, "Pairwise Proximal Policy Optimization: Harnessing Relative Feedback for LLM
    Alignment" (abstract read; the clipped objective from memory, its "joint" clipping). The policy
    gradient of relative feedback is (r(y_w) − r(y_l))·∇(log π(y_w|x) − log π(y_l|x)): it depends
    only on reward differences, so it is invariant to any per-prompt shift of the reward, unlike PPO.
    Both replies were sampled from π_old; the pair's importance ratio and advantage are

        R = [π(y_w)/π_old(y_w)] / [π(y_l)/π_old(y_l)],
        A = (s_w − s_l) − β·[(log π_old(y_w) − log π_ref(y_w)) − (log π_old(y_l) − log π_ref(y_l))],

    with s the judge's rewards (``chosen_scores``, ``rejected_scores``) and the KL penalty to the
    reference folded into the reward, as in PPO for RLHF. At the first step R = 1 and the gradient
    is −A·∇log R, the same whichever reply is called chosen (swapping flips both log R and A); the
    clip stops the step once R leaves [1 − ε, 1 + ε] in A's direction. ``ratio``, ``advantage`` and
    ``clipped`` are reported.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0: the KL penalty folded into the reward (got {beta})")
    if not 0 < clip < 1:
        raise ValueError(f"clip must be in (0, 1): PPO's ε (got {clip})")
    _check_scores(chosen_scores, rejected_scores)
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    old_drift = (old_chosen_logps - reference_chosen_logps) - (old_rejected_logps - reference_rejected_logps)
    advantage = (chosen_scores - rejected_scores - beta * old_drift).detach()
    ratio = torch.exp((chosen_logps - old_chosen_logps) - (rejected_logps - old_rejected_logps))
    surrogate = torch.minimum(ratio * advantage, torch.clamp(ratio, 1 - clip, 1 + clip) * advantage)
    clipped = (surrogate != ratio * advantage).float()
    return loss_output(-surrogate, beta * rho_w, beta * rho_l, ratio=ratio, advantage=advantage, clipped=clipped)


def _log_goodness(scores: Tensor, goodness: str, temperature: float) -> Tensor:
    if goodness == "exp":
        return scores / temperature
    if goodness == "sigmoid":
        return F.logsigmoid(scores / temperature)
    raise ValueError(f"goodness must be 'exp' or 'sigmoid' (got {goodness!r})")


@register_policy_loss("brain")
def brain_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    chosen_scores: Tensor,
    rejected_scores: Tensor,
    old_chosen_logps: Tensor | None = None,
    old_rejected_logps: Tensor | None = None,
    temperature: float = 1.0,
    goodness: str = "exp",
    baseline: bool = True,
) -> PolicyLossOutput:
    """BRAIn: −Σ_i (w_i − v_i)·log π(y_i|x), the posterior π_ref(y|x)·p(good|x,y) distilled by self-normalised IS.

    Pandey et al. 2024, "BRAIn: Bayesian Reward-conditioned Amortized Inference for natural language
    generation from feedback" (abstract read; the estimator from memory). The target is the
    posterior of a reply given that it is good, p(y|x, G=1) ∝ π_ref(y|x)·p(G=1|x,y), with
    p(G=1|x,y) = exp(r/τ) (``goodness="exp"``: the posterior is then the KL-regularised RLHF optimum)
    or σ(r/τ) (``"sigmoid"``), r the judge's reward. The replies (here a pair's two) were sampled
    from a proposal q, the policy that generated them (``old_*_logps``; the reference when they are
    absent); their self-normalised importance weights toward the posterior are

        w_i = softmax_i(log π_ref(y_i) + log p(G=1|x,y_i) − log q(y_i)),

    and the policy is fitted to it by weighted likelihood, −Σ_i w_i·log π(y_i|x). With
    ``baseline`` (BRAIn's self-normalised baseline) the policy's own weights
    v_i = softmax_i(log π(y_i) − log q(y_i)) are subtracted: the gradient Σ_i (w_i − v_i)·∇log π(y_i)
    vanishes once π matches the posterior on the samples, so the loss does not simply lift both
    replies. Weights are detached. The rewards reported are ρ_w and ρ_l (β = 1);
    ``target_weight`` is w of y_w.
    """
    check_positive("temperature", temperature)
    _check_scores(chosen_scores, rejected_scores)
    if (old_chosen_logps is None) != (old_rejected_logps is None):
        raise ValueError("brain needs both old_chosen_logps and old_rejected_logps, or neither")
    q_w = reference_chosen_logps if old_chosen_logps is None else old_chosen_logps
    q_l = reference_rejected_logps if old_rejected_logps is None else old_rejected_logps
    logps = torch.stack([chosen_logps, rejected_logps], dim=-1)
    proposal = torch.stack([q_w, q_l], dim=-1)
    reference = torch.stack([reference_chosen_logps, reference_rejected_logps], dim=-1)
    good = _log_goodness(torch.stack([chosen_scores, rejected_scores], dim=-1), goodness, temperature)
    target = torch.softmax(reference + good - proposal, dim=-1).detach()
    own = torch.softmax(logps - proposal, dim=-1).detach() if baseline else torch.zeros_like(target)
    losses = -((target - own) * logps).sum(-1)
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    return loss_output(losses, rho_w, rho_l, target_weight=target[:, 0])


@register_policy_loss("cream")
def cream_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    consistencies: Tensor,
    beta: float = 0.1,
) -> PolicyLossOutput:
    """CREAM: −C·log σ(β·h) − (1 − C)·log σ(−β·h), self-rewarding DPO smoothed by ranking consistency.

    Wang et al. 2024, "CREAM: Consistency Regularized Self-Rewarding Language Models" (abstract and
    the authors' released trainer and consistency script read). A self-rewarding model labels its
    own pairs, and its errors compound over iterations; CREAM trusts a label only as far as two
    iterations' rewards agree on the ranking: C = (τ + 1)/2, with τ the Kendall rank correlation
    of the prompt's replies ranked by the current and the previous iteration
    (:func:`ranking_consistency`), carried by ``PreferencePair.consistency``: per prompt (the
    released code's "dyn" mode) or its mean over the dataset ("avg"); the pair is the prompt's
    best and worst reply by the current iteration.
    C = 1 (the rankings agree) is DPO; C = 1/2 makes the pair's loss symmetric, its gradient zero
    at h = 0. The same cross-entropy as :func:`dno_loss`, with a different target; both can be set
    on a pair.
    """
    check_positive("beta", beta)
    _check_probabilities("consistencies", consistencies)
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    losses = soft_dpo_losses(beta * (rho_w - rho_l), consistencies)
    return loss_output(losses, beta * rho_w, beta * rho_l, consistency=consistencies)


def ranking_consistency(current: Tensor, previous: Tensor) -> float:
    """(τ + 1)/2 for Kendall's τ-a between two scorings of the same replies: 1 same order, 0 reversed.

    CREAM's consistency rate (:func:`cream_loss`): ``current`` and ``previous`` are the rewards one
    prompt's K ≥ 2 replies get from this iteration's and the last iteration's model. Ties are
    ranked by position (the earlier reply lower), as ordinal ranks do in CREAM's released script.
    """
    if current.shape != previous.shape or current.dim() != 1 or current.numel() < 2:
        raise ValueError(
            f"ranking_consistency needs two 1-D scorings of the same K >= 2 replies "
            f"(got shapes {tuple(current.shape)} and {tuple(previous.shape)})"
        )
    i, j = torch.triu_indices(current.numel(), current.numel(), offset=1)

    def order(scores: Tensor) -> Tensor:  # i < j: a tie counts as scores[i] < scores[j]
        signs = torch.sign(scores[i] - scores[j])
        return torch.where(signs == 0, -torch.ones_like(signs), signs)

    agreement = order(current) * order(previous)
    return (agreement.mean().item() + 1) / 2


def bernoulli_kl(target: Tensor, logits: Tensor) -> Tensor:
    """KL(Bern(p) ‖ Bern(σ(z))) = −p·log σ(z) − (1 − p)·log σ(−z) − H(p), 0 exactly where σ(z) = p.

    The soft-label cross-entropy (:func:`soft_dpo_losses`) less the target's own entropy
    H(p) = −p·log p − (1 − p)·log(1 − p) (0·log 0 = 0), so a confident target agreed with costs nothing.
    """
    entropy = -torch.xlogy(target, target) - torch.xlogy(1 - target, 1 - target)
    return soft_dpo_losses(logits, target) - entropy


@register_policy_loss("scir", aliases=("self_consistent_internal_rewards",))
def scir_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    judge_probabilities: Tensor | None = None,
    beta: float = 0.1,
    consistency_weight: float = 1.0,
) -> PolicyLossOutput:
    """SCIR: −log σ(β·h) + λ·KL(Bern(p_J) ‖ Bern(σ(β·h))), DPO plus a penalty where the internal rewards disagree.

    Zhou et al. 2025, "Self-Consistency of the Internal Reward Models Improves Self-Rewarding Language
    Models" (abstract only: the divergence below is this library's choice, not the paper's equation).
    A self-rewarding policy holds two internal reward models: its implicit DPO reward, whose
    preference for y_w is σ(β·h) (Rafailov et al. 2023), and itself as a generative judge
    (LLM-as-a-judge), whose probability that y_w wins is p_J (``PreferencePair.judge_probability``,
    the ``judge_probabilities`` field; the online loop fills it where the policy judged the pair:
    ``judge.kind=judge`` or ``pairs.agree_with=judge``). SCIR keeps the pairs the two agree on (the
    loop's ``pairs.agree_with``) and, while training, penalises their inconsistency; here the
    penalty is the Bernoulli KL from the judge's preference to the implicit reward's
    (:func:`bernoulli_kl`), 0 where they agree, and the judge's probability is read once per round
    (the judge's side is not trained through: the penalty pulls the implicit reward toward it).
    λ = ``consistency_weight``; λ = 0 is DPO, and so is a pair with no judge probability (NaN, or
    the field absent), since there is nothing to be consistent with; ``judged`` reports which pairs
    had one and ``inconsistency`` the penalty.
    """
    check_positive("beta", beta)
    if consistency_weight < 0:
        raise ValueError(f"consistency_weight must be >= 0: the penalty's weight (got {consistency_weight})")
    rho_w, rho_l = logratios(chosen_logps, rejected_logps, reference_chosen_logps, reference_rejected_logps)
    logits = beta * (rho_w - rho_l)
    if judge_probabilities is None:
        judge_probabilities = torch.full_like(logits, float("nan"))
    judged = ~torch.isnan(judge_probabilities)
    _check_probabilities("judge_probabilities", judge_probabilities[judged])
    target = torch.where(judged, judge_probabilities, torch.full_like(logits, 0.5)).to(logits.dtype)
    penalty = torch.where(judged, bernoulli_kl(target, logits), torch.zeros_like(logits))
    losses = -F.logsigmoid(logits) + consistency_weight * penalty
    return loss_output(losses, beta * rho_w, beta * rho_l, inconsistency=penalty, judged=judged.float())
