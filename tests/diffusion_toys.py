"""The two-mode toy the diffusion tests share: 4×4 images all bright or all dark, half each, and a tiny
denoiser trained on it. Preferring one mode must move the model's mass to it."""

from __future__ import annotations

import torch

from rewardlab.diffusion.denoiser import NO_CONDITION, Denoiser, UNetSize, denoise_loss, small_unet


def two_mode_images(n: int, generator: torch.Generator) -> torch.Tensor:
    """Half all-bright (+0.8), half all-dark (-0.8) 4×4 images with a little pixel noise."""
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, 1.0, -1.0).view(n, 1, 1, 1)
    return (0.8 * sign + 0.1 * torch.randn(n, 1, 4, 4, generator=generator)).clamp(-1, 1)


def two_mode_denoiser() -> Denoiser:
    """A UNet (8/16 channels, 100 timesteps) after 100 AdamW updates on the toy: both modes, about half each."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    denoiser = Denoiser(small_unet(4, 1, UNetSize(channels=(8, 16))), train_steps=100)
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=1e-2)
    for _ in range(100):
        loss = denoise_loss(denoiser, two_mode_images(64, generator), NO_CONDITION, generator).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return denoiser.eval()
