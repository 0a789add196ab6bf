"""The noise schedule's maths as pure functions: forward noising, the DDIM step as a Gaussian policy, and
DDIM inversion's step.

A denoising chain x_T → … → x_0 is read, as D3PO and DDPO read it, as a policy whose action at step t is
x_{t-1} ~ N(μ_θ(x_t, t), σ_t² I); the alignment losses need that Gaussian's mean and log-density, so they
are computed here rather than inside a scheduler object. ``ᾱ_t`` (``alpha_bar``) is the cumulative
product of (1 - β) that every DDPM-family scheduler defines; take it from ``diffusers`` (``noise_schedule``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def noise_schedule(train_steps: int = 1000, beta_schedule: str = "squaredcos_cap_v2") -> Tensor:
    """ᾱ_t for t = 0 … train_steps - 1, from ``diffusers``' DDPM scheduler (linear, scaled_linear or the
    cosine schedule of Nichol & Dhariwal 2021, ``squaredcos_cap_v2``)."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=train_steps, beta_schedule=beta_schedule)
    return scheduler.alphas_cumprod.to(torch.float32)


def add_noise(x0: Tensor, noise: Tensor, alpha_bar: Tensor) -> Tensor:
    """q(x_t | x_0): x_t = √ᾱ_t·x_0 + √(1-ᾱ_t)·ε, with ``alpha_bar`` per sample (shape [B])."""
    a = alpha_bar.view(-1, *([1] * (x0.dim() - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def predicted_x0(x_t: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """x̂_0 = (x_t - √(1-ᾱ_t)·ε̂) / √ᾱ_t, the clean image the noise prediction implies."""
    a = alpha_bar.view(-1, *([1] * (x_t.dim() - 1)))
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


def sampling_timesteps(steps: int, train_steps: int) -> list[int]:
    """``steps`` evenly spaced training timesteps, descending (DDIM's 'leading' spacing), ending at 0."""
    if not 1 <= steps <= train_steps:
        raise ValueError(f"sampling steps must be in [1, {train_steps}] (got {steps})")
    stride = train_steps // steps
    return [i * stride for i in range(steps)][::-1]


@dataclass(frozen=True)
class GaussianStep:
    """One denoising step as a Gaussian: x_{t-1} ~ N(mean, std² I)."""

    mean: Tensor
    std: Tensor  # shape [B], zero for the deterministic (η = 0) step


def ddim_step(
    x_t: Tensor, eps: Tensor, alpha_bar: Tensor, alpha_bar_prev: Tensor, eta: float, clip: float | None = 1.0
) -> GaussianStep:
    """The DDIM update (Song et al. 2021, eq. 12) as a Gaussian over x_{t-1}:

        σ_t = η·√((1-ᾱ_{t-1})/(1-ᾱ_t))·√(1-ᾱ_t/ᾱ_{t-1})
        μ   = √ᾱ_{t-1}·x̂_0 + √(1-ᾱ_{t-1}-σ_t²)·ε̂

    η = 1 is DDPM's ancestral sampler, η = 0 the deterministic ODE step. ``clip`` bounds x̂_0 (the data lie
    in [-1, 1]); None leaves it free, as latent-space models need.
    """
    x0 = predicted_x0(x_t, eps, alpha_bar)
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    shape = (-1, *([1] * (x_t.dim() - 1)))
    std = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar)).sqrt() * (1 - alpha_bar / alpha_bar_prev).sqrt()
    direction = (1 - alpha_bar_prev - std**2).clamp_min(0).sqrt().view(shape) * eps
    return GaussianStep(alpha_bar_prev.sqrt().view(shape) * x0 + direction, std)


def gaussian_log_prob(x: Tensor, step: GaussianStep) -> Tensor:
    """log N(x; mean, std² I), summed over every dimension but the batch: the policy's log-probability of
    the step it took, which D3PO's and DDPO's losses read. A deterministic step (σ = 0: the last one, into
    ᾱ = 1) has no density and adds 0, so it drops out of every policy ratio.
    """
    random = step.std > 0
    std = torch.where(random, step.std, torch.ones_like(step.std)).view(-1, *([1] * (x.dim() - 1)))
    per_dim = -((x - step.mean) ** 2) / (2 * std**2) - std.log() - 0.5 * math.log(2 * math.pi)
    return torch.where(random, per_dim.flatten(1).sum(1), torch.zeros_like(step.std))


def ddim_inversion_step(x_t: Tensor, eps: Tensor, alpha_bar: Tensor, alpha_bar_next: Tensor) -> Tensor:
    """One step of DDIM inversion, x_t → x_{t+1} on the deterministic ODE, reusing ε̂(x_t, t):

        x_{t+1} = √ᾱ_{t+1}·x̂_0 + √(1-ᾱ_{t+1})·ε̂

    Run from t = 0 it maps an image to the noise DDIM would denoise back into (approximately) it: how InPO
    and SmPO estimate the latent trajectory of an image the model did not generate.
    """
    x0 = predicted_x0(x_t, eps, alpha_bar)
    shape = (-1, *([1] * (x_t.dim() - 1)))
    return alpha_bar_next.sqrt().view(shape) * x0 + (1 - alpha_bar_next).sqrt().view(shape) * eps
