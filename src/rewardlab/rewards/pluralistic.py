"""User models of a pluralistic reward model: how one user's row of parameters turns a reply's D head
outputs into that user's reward, which row stands for the whole population, and how a new user's row
is inferred from k labelled pairs with the head frozen.

A pluralistic reward model is the usual reward model with D outputs per reply plus a table with one
row per annotator seen in training. Three user models:

- ``mixture`` (PAL, Chen et al. 2024; MaxMin-RLHF, Chakraborty et al. 2024): the D = K outputs are K
  reward functions, a row is K logits, a user's reward is the softmax-weighted sum.
- ``latent`` (VPL, Poddar et al. 2024): the D outputs are features φ, a row is a Gaussian N(μ, σ²)
  over a latent z, the reward is the posterior mean's μ·φ.
- ``routed`` (MiCRo, Shen et al. 2025): D = 2K outputs, K rewards and K router logits from the same
  pass; a row is K per-user offsets added to the router logits.

Pure functions of tensors: the model and the trainer hold the table; the objectives read rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

BASE_VARIANCE = 1.0
"""Variance of the Gaussian prior around the population row, added to the training users' own spread,
when a new user's logits or offsets are fitted from k pairs: even when every training user agrees, a
new user can move away from them given enough pairs."""
FIT_STEPS = 50
"""Iterations of the deterministic solver (L-BFGS for mixture and routed, Newton for latent)."""
MIN_WEIGHT = 1e-12
"""Floor on a mean mixture weight before its log, so a weight no user puts anything on stays finite."""


@dataclass(frozen=True)
class UserModel:
    """How a row of per-user parameters turns D head outputs into that user's scalar reward."""

    name: str
    row_size: Callable[[int], int]
    """Head outputs D → parameters per user."""
    init: Callable[[int, int, torch.Generator], Tensor]
    """(users U, outputs D, generator) → the (U, row_size(D)) initial table."""
    reward: Callable[[Tensor, Tensor], Tensor]
    """Outputs (N, D) and rows (N, row) or one row (row,) → rewards (N,); differentiable in both."""
    population: Callable[[Tensor], Tensor]
    """Table (U, row) → (row,), the row that scores for "any user"."""
    fit: Callable[[Tensor, Tensor, Tensor], Tensor]
    """Chosen outputs (k, D), rejected outputs (k, D), table (U, row) → (row,): a new user's row from
    k pairs, the head frozen (no gradient reaches the outputs or the table)."""


def _check_outputs(outputs: Tensor, rows: Tensor, row: int, name: str) -> None:
    if outputs.dim() < 1 or rows.shape[-1] != row:
        raise ValueError(
            f"user model {name!r}: outputs of shape {tuple(outputs.shape)} need rows of {row} values "
            f"(got rows of shape {tuple(rows.shape)})"
        )


def _check_pairs(chosen: Tensor, rejected: Tensor, table: Tensor, row: int, name: str) -> None:
    if chosen.dim() != 2 or chosen.shape != rejected.shape:
        raise ValueError(
            f"user model {name!r}: fit needs chosen and rejected outputs of one shape (k, D) "
            f"(got {tuple(chosen.shape)} and {tuple(rejected.shape)})"
        )
    if table.dim() != 2 or table.shape[1] != row:
        raise ValueError(f"user model {name!r}: a table of shape (U, {row}) is needed (got {tuple(table.shape)})")


def _prior_variance(rows: Tensor, centre: Tensor) -> Tensor:
    """Per coordinate: the users' mean squared distance from ``centre`` plus ``BASE_VARIANCE``; an
    empirical-Bayes prior that lets a new user move as far as the training users spread."""
    if len(rows) == 0:
        return torch.full_like(centre, BASE_VARIANCE)
    return ((rows - centre) ** 2).mean(dim=0) + BASE_VARIANCE


def _minimise(objective: Callable[[Tensor], Tensor], start: Tensor) -> Tensor:
    """argmin of a smooth convex-ish function by L-BFGS with a strong-Wolfe line search, in float64.

    Deterministic: no randomness, a fixed number of iterations, the same start for the same inputs.
    """
    point = start.detach().to(torch.float64).clone().requires_grad_(True)
    solver = torch.optim.LBFGS([point], lr=1.0, max_iter=FIT_STEPS, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        solver.zero_grad()
        value = objective(point)
        value.backward()
        return value

    with torch.enable_grad():
        solver.step(closure)
    return point.detach()


# mixture: PAL's K prototype rewards, MaxMin-RLHF's K reward functions


def mixture_weights(rows: Tensor) -> Tensor:
    """softmax over a row's K logits: the user's weight on each of the K reward functions."""
    return torch.softmax(rows, dim=-1)


def _mixture_row_size(outputs: int) -> int:
    return outputs


def _mixture_init(users: int, outputs: int, generator: torch.Generator) -> Tensor:
    """Near-uniform weights, a little noise (std 0.01) so users are not exactly alike."""
    return 0.01 * torch.randn(users, outputs, generator=generator)


def _mixture_reward(outputs: Tensor, rows: Tensor) -> Tensor:
    """r_u(y) = Σ_k softmax(u)_k · r_k(y)."""
    _check_outputs(outputs, rows, outputs.shape[-1], "mixture")
    return (mixture_weights(rows) * outputs).sum(dim=-1)


def _mixture_population(table: Tensor) -> Tensor:
    """log of the users' mean mixture weights: the population's reward is the users' mean reward."""
    if len(table) == 0:
        return torch.zeros(table.shape[1], dtype=table.dtype, device=table.device)
    return mixture_weights(table).mean(dim=0).clamp_min(MIN_WEIGHT).log()


def _mixture_fit(chosen: Tensor, rejected: Tensor, table: Tensor) -> Tensor:
    """MAP logits u of a new user: argmin Σ_i −log σ(Σ_k softmax(u)_k Δ_ik) + Σ_k (u_k − ū_k)² / 2v_k.

    Δ_ik = r_k(c_i) − r_k(r_i); the prior N(ū, diag v) is centred on the population row ū, which also
    pins the logits' free shift, with v the training users' spread around it (each user's logits
    shifted to mean ū's, as the shift changes no weight) plus ``BASE_VARIANCE``. PAL (Chen et al.
    2024) adapts a new user's weights from a few pairs with the prototypes frozen the same way.
    """
    _check_pairs(chosen, rejected, table, chosen.shape[-1], "mixture")
    prior = _mixture_population(table).detach().to(torch.float64)
    rows = table.detach().to(torch.float64)
    rows = rows - rows.mean(dim=-1, keepdim=True) + prior.mean()
    variance = _prior_variance(rows, prior)
    gaps = (chosen - rejected).detach().to(torch.float64)

    def negative_log_posterior(logits: Tensor) -> Tensor:
        fit = -F.logsigmoid(gaps @ mixture_weights(logits)).sum()
        return fit + 0.5 * ((logits - prior) ** 2 / variance).sum()

    return _minimise(negative_log_posterior, prior).to(table)


MIXTURE = UserModel("mixture", _mixture_row_size, _mixture_init, _mixture_reward, _mixture_population, _mixture_fit)


# latent: VPL's Gaussian latent over a reward direction in feature space


def split_latent(rows: Tensor) -> tuple[Tensor, Tensor]:
    """A latent row [μ (D), log σ (D)] as (μ, log σ)."""
    size = rows.shape[-1] // 2
    return rows[..., :size], rows[..., size:]


def _latent_row_size(outputs: int) -> int:
    return 2 * outputs


def _latent_init(users: int, outputs: int, generator: torch.Generator) -> Tensor:
    """μ ~ N(0, 0.1²) to tell users apart, σ = 1: the prior N(0, I) before any pair is seen."""
    mean = 0.1 * torch.randn(users, outputs, generator=generator)
    return torch.cat([mean, torch.zeros(users, outputs)], dim=-1)


def _latent_reward(outputs: Tensor, rows: Tensor) -> Tensor:
    """r_u(y) = μ_u · φ(y): the reward under the posterior mean of the user's latent."""
    _check_outputs(outputs, rows, 2 * outputs.shape[-1], "latent")
    mean, _ = split_latent(rows)
    return (mean * outputs).sum(dim=-1)


def _latent_population(table: Tensor) -> Tensor:
    """[μ̄, log σ̄]: μ̄ the users' mean μ, σ̄² = mean σ_u² + Var_u μ_u, the users' spread.

    The moment-matched Gaussian of the mixture of the users' Gaussians: the prior a new user starts from.
    """
    size = table.shape[1] // 2
    if len(table) == 0:
        return torch.zeros(2 * size, dtype=table.dtype, device=table.device)
    mean, log_std = split_latent(table)
    centre = mean.mean(dim=0)
    variance = (2 * log_std).exp().mean(dim=0) + ((mean - centre) ** 2).mean(dim=0)
    return torch.cat([centre, 0.5 * variance.log()])


def _latent_fit(chosen: Tensor, rejected: Tensor, table: Tensor) -> Tensor:
    """Laplace posterior of Bayesian logistic regression: P(c_i ≻ r_i | z) = σ(z·Δφ_i), z ~ N(μ̄, diag σ̄²).

    Newton's method finds the MAP z* (the log-posterior is concave); the posterior covariance is the
    inverse Hessian H⁻¹ = (Σ_i p_i(1−p_i)Δφ_iΔφ_iᵀ + diag σ̄⁻²)⁻¹ at z*, of which the row keeps the
    diagonal. Each pair adds a positive semi-definite term to H, so σ shrinks as pairs accumulate.
    VPL (Poddar et al. 2024) infers z with an amortised encoder from a user's pairs; with the head
    frozen, this is the exact-Gaussian approximation of the same posterior.
    """
    _check_pairs(chosen, rejected, table, 2 * chosen.shape[-1], "latent")
    prior_mean, prior_log_std = split_latent(_latent_population(table).detach().to(torch.float64))
    precision = torch.diag((-2 * prior_log_std).exp())
    gaps = (chosen - rejected).detach().to(torch.float64)
    latent = prior_mean.clone()
    hessian = precision
    for _ in range(FIT_STEPS):
        p = torch.sigmoid(gaps @ latent)
        gradient = -gaps.T @ (1 - p) + precision @ (latent - prior_mean)
        hessian = (gaps.T * (p * (1 - p))) @ gaps + precision
        step = torch.linalg.solve(hessian, gradient)
        latent = latent - step
        if step.abs().max() < 1e-10:
            break
    p = torch.sigmoid(gaps @ latent)
    hessian = (gaps.T * (p * (1 - p))) @ gaps + precision
    variance = torch.linalg.inv(hessian).diagonal()
    return torch.cat([latent, 0.5 * variance.log()]).to(table)


LATENT = UserModel("latent", _latent_row_size, _latent_init, _latent_reward, _latent_population, _latent_fit)


# routed: MiCRo's K rewards with a context router, offset per user


def split_routed(outputs: Tensor) -> tuple[Tensor, Tensor]:
    """Routed head outputs (..., 2K) as (K rewards, K router logits) of the same pass."""
    if outputs.shape[-1] % 2:
        raise ValueError(f"a routed head has 2K outputs, K rewards and K router logits (got {outputs.shape[-1]})")
    size = outputs.shape[-1] // 2
    return outputs[..., :size], outputs[..., size:]


def _routed_row_size(outputs: int) -> int:
    if outputs % 2:
        raise ValueError(f"a routed head has 2K outputs, K rewards and K router logits (got {outputs})")
    return outputs // 2


def _routed_init(users: int, outputs: int, generator: torch.Generator) -> Tensor:
    """Offsets of zero: every user starts routed as the population, by the context alone."""
    return torch.zeros(users, _routed_row_size(outputs))


def _routed_reward(outputs: Tensor, rows: Tensor) -> Tensor:
    """r_u(x, y) = Σ_k softmax(g(x, y) + u)_k · r_k(x, y), g the router logits."""
    rewards, router = split_routed(outputs)
    _check_outputs(outputs, rows, rewards.shape[-1], "routed")
    return (torch.softmax(router + rows, dim=-1) * rewards).sum(dim=-1)


def _routed_population(table: Tensor) -> Tensor:
    """Zero offsets: the population is routed by the context alone, as MiCRo's router is trained."""
    return torch.zeros(table.shape[1], dtype=table.dtype, device=table.device)


def pair_router(chosen: Tensor, rejected: Tensor) -> tuple[Tensor, Tensor]:
    """(Δ_k, g) of a pair from routed outputs: the K reward gaps, and the router logits averaged over
    the two replies (MiCRo routes on the prompt, which the two replies share)."""
    chosen_rewards, chosen_router = split_routed(chosen)
    rejected_rewards, rejected_router = split_routed(rejected)
    return chosen_rewards - rejected_rewards, (chosen_router + rejected_router) / 2


def routed_log_likelihood(gaps: Tensor, router: Tensor, offsets: Tensor) -> Tensor:
    """log Σ_k w_k σ(Δ_k), w = softmax(g + u): MiCRo's mixture likelihood of a pair, per pair."""
    return torch.logsumexp(torch.log_softmax(router + offsets, dim=-1) + F.logsigmoid(gaps), dim=-1)


def _routed_fit(chosen: Tensor, rejected: Tensor, table: Tensor) -> Tensor:
    """MAP offsets u of a new user: argmin −Σ_i log Σ_k softmax(g_i + u)_k σ(Δ_ik) + Σ_k u_k² / 2v_k.

    MiCRo's second stage (Shen et al. 2025) adapts the routing from a few labelled pairs with the
    reward heads frozen; here the adapted part is the user's offset on the router logits, with a prior
    N(0, diag v) around the population's zero offsets, v the training users' mean squared offset plus
    ``BASE_VARIANCE``.
    """
    _check_pairs(chosen, rejected, table, _routed_row_size(chosen.shape[-1]), "routed")
    gaps, router = (part.detach().to(torch.float64) for part in pair_router(chosen, rejected))
    start = torch.zeros(gaps.shape[-1], dtype=torch.float64)
    variance = _prior_variance(table.detach().to(torch.float64), start)

    def negative_log_posterior(offsets: Tensor) -> Tensor:
        fit = -routed_log_likelihood(gaps, router, offsets).sum()
        return fit + 0.5 * (offsets**2 / variance).sum()

    return _minimise(negative_log_posterior, start).to(table)


ROUTED = UserModel("routed", _routed_row_size, _routed_init, _routed_reward, _routed_population, _routed_fit)


USER_MODELS: dict[str, UserModel] = {model.name: model for model in (MIXTURE, LATENT, ROUTED)}


def user_model(name: str) -> UserModel:
    """The user model called ``name``; an unknown name fails with the known ones."""
    if name not in USER_MODELS:
        raise ValueError(f"unknown user model {name!r} (known: {', '.join(USER_MODELS)})")
    return USER_MODELS[name]


def user_rewards(name: str, outputs: Tensor, rows: Tensor) -> Tensor:
    """Rewards (N,) of outputs (N, D) for the users whose rows (N, row) or one row (row,) are given."""
    return user_model(name).reward(outputs, rows)


def latent_kl(rows: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per row = ½ Σ_d (μ_d² + σ_d² − 1 − 2 log σ_d)."""
    mean, log_std = split_latent(rows)
    return 0.5 * (mean**2 + (2 * log_std).exp() - 1 - 2 * log_std).sum(dim=-1)
