"""Running the denoising chain: DDIM sampling that keeps what the alignment losses need (every state and
the log-probability of every step), and DDIM inversion of given images."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rewardlab.diffusion.denoiser import NO_CONDITION, Condition, Denoiser
from rewardlab.diffusion.schedule import (
    ddim_inversion_step,
    ddim_step,
    gaussian_log_prob,
    sampling_timesteps,
)


@dataclass(frozen=True)
class Chain:
    """A batch of denoising chains: ``states[k]`` is x at ``timesteps[k]`` (``states[-1]`` = x_0, the image),
    ``log_probs[k]`` = log π(states[k+1] | states[k]) under the model that sampled it (zeros when η = 0)."""

    states: list[Tensor]
    timesteps: list[int]
    log_probs: list[Tensor]

    @property
    def images(self) -> Tensor:
        return self.states[-1]


def alpha_bars(denoiser: Denoiser, timesteps: list[int], k: int) -> tuple[Tensor, Tensor]:
    """ᾱ at the chain's step k and at the next (ᾱ = 1 after the last step: x_0 is clean)."""
    a = denoiser.alpha_bar[timesteps[k]]
    a_prev = denoiser.alpha_bar[timesteps[k + 1]] if k + 1 < len(timesteps) else torch.ones_like(a)
    return a, a_prev


def denoise_step(
    denoiser: Denoiser,
    x_t: Tensor,
    timesteps: list[int],
    k: int,
    condition: Condition = NO_CONDITION,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """One step of the chain from x at ``timesteps[k]``: (x_{next}, its log-probability under the step)."""
    a, a_prev = alpha_bars(denoiser, timesteps, k)
    n = x_t.shape[0]
    eps = denoiser(x_t, torch.full((n,), timesteps[k], dtype=torch.long), condition)
    step = ddim_step(x_t, eps, a.expand(n), a_prev.expand(n), eta, denoiser.clip)
    if bool((step.std == 0).all()):
        return step.mean, torch.zeros(n)
    x_next = step.mean + step.std.view(-1, *([1] * (x_t.dim() - 1))) * torch.randn(
        x_t.shape, generator=generator, dtype=x_t.dtype
    )
    return x_next, gaussian_log_prob(x_next, step)


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    n: int,
    steps: int = 20,
    eta: float = 1.0,
    condition: Condition = NO_CONDITION,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> Chain:
    """``n`` images by ``steps`` DDIM steps from x_T ~ N(0, I) (or ``noise``), keeping the whole chain."""
    timesteps = sampling_timesteps(steps, denoiser.train_steps)
    x = torch.randn((n, *denoiser.image_shape), generator=generator) if noise is None else noise
    states, log_probs = [x], []
    for k in range(len(timesteps)):
        x, log_prob = denoise_step(denoiser, x, timesteps, k, condition, eta, generator)
        states.append(x)
        log_probs.append(log_prob)
    return Chain(states, timesteps, log_probs)


def step_log_prob(denoiser: Denoiser, chain: Chain, k: int, eta: float, condition: Condition = NO_CONDITION) -> Tensor:
    """log π_θ(states[k+1] | states[k]) under ``denoiser`` (with gradients): D3PO's per-step policy term."""
    a, a_prev = alpha_bars(denoiser, chain.timesteps, k)
    x_t = chain.states[k]
    n = x_t.shape[0]
    eps = denoiser(x_t, torch.full((n,), chain.timesteps[k], dtype=torch.long), condition)
    return gaussian_log_prob(
        chain.states[k + 1], ddim_step(x_t, eps, a.expand(n), a_prev.expand(n), eta, denoiser.clip)
    )


@torch.no_grad()
def invert(denoiser: Denoiser, images: Tensor, steps: int = 20, condition: Condition = NO_CONDITION) -> list[Tensor]:
    """DDIM inversion: the deterministic chain [x_0, x_{t_1}, …, x_{t_S}] that runs the sampler backwards from
    ``images``; the latent trajectory InPO and SmPO assign an image the model did not sample."""
    timesteps = sampling_timesteps(steps, denoiser.train_steps)[::-1]  # ascending
    x, a = images, torch.ones(images.shape[0])
    trajectory = [x]
    previous_t: int | None = None
    for t in timesteps:
        a_next = denoiser.alpha_bar[t].expand(images.shape[0])
        # ε̂ at the current point: at x_0 there is no noise level, so the first step reads the model at t
        t_read = t if previous_t is None else previous_t
        eps = denoiser(x, torch.full((x.shape[0],), t_read, dtype=torch.long), condition)
        x = ddim_inversion_step(x, eps, a, a_next)
        trajectory.append(x)
        a, previous_t = a_next, t
    return trajectory
