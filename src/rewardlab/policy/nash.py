"""Tabular Nash learning: policies over a finite set of replies to one prompt, and a preference matrix.

The exact updates that DNO and Nash-MD approximate with a language model, small enough to run to
convergence and check against the game's known equilibrium (rock-paper-scissors: the uniform
policy). A policy is a probability vector π over n replies; the preference model is a matrix with
P[i, j] = P(y_i ≻ y_j), P + Pᵀ = 1 (so P[i, i] = 1/2). A general preference may be intransitive,
where no reward ranks the replies and the goal is the Nash equilibrium of the symmetric game:
π* with P(π* ≻ π) ≥ 1/2 against every π (Munos et al. 2023).
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_preference_matrix(preference: Tensor) -> None:
    """Raise unless ``preference`` is square, in [0, 1] and satisfies P + Pᵀ = 1."""
    if preference.dim() != 2 or preference.shape[0] != preference.shape[1] or preference.shape[0] < 2:
        raise ValueError(f"a preference matrix is n x n with n >= 2 (got shape {tuple(preference.shape)})")
    if not bool(((preference >= 0) & (preference <= 1)).all()):
        raise ValueError("a preference matrix holds probabilities in [0, 1]")
    if not torch.allclose(preference + preference.T, torch.ones_like(preference), atol=1e-6):
        raise ValueError("a preference matrix must satisfy P[i, j] + P[j, i] = 1 (P[i, i] = 1/2)")


def check_policy(policy: Tensor, n: int, name: str = "policy") -> None:
    if policy.shape != (n,) or bool((policy < 0).any()) or abs(policy.sum().item() - 1) > 1e-6:
        raise ValueError(f"{name} must be a probability vector over the {n} replies (got {policy.tolist()})")


def rock_paper_scissors() -> Tensor:
    """P for replies (rock, paper, scissors): each beats the next one round the cycle, ties itself.

    Intransitive: no reward ranks the three, and the unique Nash equilibrium is uniform.
    """
    return torch.tensor([[0.5, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.5]], dtype=torch.float64)


def softmax_policy(logits: Tensor) -> Tensor:
    """π(y) ∝ exp(logits[y]): the tabular policy of a vector of logits."""
    return torch.softmax(logits.to(torch.float64), dim=-1)


def win_rates(preference: Tensor, policy: Tensor) -> Tensor:
    """P(y ≻ π) = Σ_j P[y, j]·π(j) for every reply y: how often y beats a reply sampled from π."""
    return preference @ policy


def dno_step(policy: Tensor, preference: Tensor, eta: float) -> Tensor:
    """One DNO iteration, tabular: π_{t+1}(y) ∝ π_t(y)·exp(P(y ≻ π_t)/η).

    Rosset et al. 2024 (abstract read; the update from memory): DNO's regression step has this
    closed form, a multiplicative-weights (Hedge) step of self-play with the reward
    r_t(y) = P(y ≻ π_t) and step size 1/η. Its guarantee, as for the no-regret self-play it builds
    on (SPO), is for the average of the iterates, which approaches the Nash equilibrium; on a cyclic
    preference such as rock-paper-scissors the last iterate circles around it and does not settle.
    """
    if not eta > 0:
        raise ValueError(f"eta must be > 0 (got {eta})")
    check_preference_matrix(preference)
    check_policy(policy, preference.shape[0])
    return softmax_policy(torch.log(policy) + win_rates(preference, policy) / eta)


def geometric_mixture(policy: Tensor, reference: Tensor, weight: float) -> Tensor:
    """π^μ(y) ∝ π(y)^(1 − μ)·π_ref(y)^μ, the geometric mixture Nash-MD plays against."""
    if not 0 <= weight <= 1:
        raise ValueError(f"the mixture weight must be in [0, 1] (got {weight})")
    return softmax_policy((1 - weight) * torch.log(policy) + weight * torch.log(reference))


def nash_md_step(policy: Tensor, reference: Tensor, preference: Tensor, eta: float, tau: float) -> Tensor:
    """One Nash-MD iteration: π_{t+1}(y) ∝ π_t^μ(y)·exp(η·P(y ≻ π_t^μ)), μ = η·τ.

    Munos et al. 2023, "Nash Learning from Human Feedback" (abstract read; the update from memory):
    a mirror-descent step, from the geometric mixture π_t^μ of the current policy and the reference
    (``geometric_mixture``), toward replies that beat that mixture. The paper's claim is for the
    last iterate (no averaging): it converges to the τ-regularised Nash equilibrium, the π* of
    π*(y) ∝ π_ref(y)·exp(P(y ≻ π*)/τ) (see :func:`regularised_nash_residual`), up to an error of
    order η/τ with a constant step; with a uniform π_ref on rock-paper-scissors π* is uniform and
    an exact fixed point. η is the step size, τ the strength of the KL regularisation toward π_ref
    (ητ ≤ 1).
    """
    if not (eta > 0 and tau >= 0 and eta * tau <= 1):
        raise ValueError(f"nash_md_step needs eta > 0, tau >= 0 and eta * tau <= 1 (got eta={eta}, tau={tau})")
    check_preference_matrix(preference)
    n = preference.shape[0]
    check_policy(policy, n)
    check_policy(reference, n, "reference")
    mixture = geometric_mixture(policy, reference, eta * tau)
    return softmax_policy(torch.log(mixture) + eta * win_rates(preference, mixture))


def regularised_nash_residual(policy: Tensor, reference: Tensor, preference: Tensor, tau: float) -> float:
    """max_y |π(y) − π_ref(y)·exp(P(y ≻ π)/τ) / Z|: 0 exactly at the τ-regularised Nash equilibrium."""
    if not tau > 0:
        raise ValueError(f"tau must be > 0 (got {tau})")
    fixed = softmax_policy(torch.log(reference) + win_rates(preference, policy) / tau)
    return (policy - fixed).abs().max().item()


def exploitability(policy: Tensor, preference: Tensor) -> float:
    """max_y P(y ≻ π) − 1/2: how much the best reply beats π; 0 exactly at a Nash equilibrium."""
    return win_rates(preference, policy).max().item() - 0.5
