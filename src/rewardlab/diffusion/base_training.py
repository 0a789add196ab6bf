"""Training the base diffusion model that alignment starts from: DDPM's denoising loss on a set of images."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rewardlab.diffusion.denoiser import NO_CONDITION, Condition, Denoiser, UNetSize, denoise_loss, small_unet
from rewardlab.diffusion.inpainting import MASK_KINDS, box_mask, inpainting_condition
from rewardlab.progress import progress_bar


@dataclass(frozen=True)
class BaseConfig:
    """``updates`` of AdamW on batches of ``batch_size`` images; the UNet's widths in ``channels``.
    ``class_conditional``: condition on the labels (a class id per image). ``mask``: an inpainting model, each
    image shown with a hole of that kind (``inpainting.MASK_KINDS``) and conditioned on the masked image and
    the mask; the loss covers the whole image, as Stable Diffusion's inpainting model is trained."""

    updates: int = 2000
    batch_size: int = 128
    learning_rate: float = 2e-3
    channels: tuple[int, int] = (32, 64)
    train_steps: int = 1000
    class_conditional: bool = False
    mask: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("updates", "batch_size", "train_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer (got {getattr(self, name)})")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive (got {self.learning_rate})")
        if self.mask is not None and self.mask not in MASK_KINDS:
            raise ValueError(f"mask must be one of {', '.join(MASK_KINDS)} (got {self.mask!r})")
        if self.mask is not None and self.class_conditional:
            raise ValueError("an inpainting model (mask) is conditioned on the known pixels, not on classes")


def train_base(
    images: Tensor, config: BaseConfig, labels: Tensor | None = None, progress: bool = True
) -> tuple[Denoiser, list[float]]:
    """A denoiser trained from scratch on ``images`` ([N, C, H, W] in [-1, 1], square); returns it and the
    loss of each update. The learning rate decays by cosine to a tenth, which steadies the last samples."""
    if images.dim() != 4 or images.shape[-1] != images.shape[-2] or len(images) == 0:
        raise ValueError(f"images must be a non-empty square [N, C, H, W] tensor (got shape {tuple(images.shape)})")
    if config.class_conditional and labels is None:
        raise ValueError("class_conditional needs a label per image")
    torch.manual_seed(config.seed)
    classes = int(labels.max()) + 1 if config.class_conditional and labels is not None else None
    extra = images.shape[1] + 1 if config.mask is not None else 0  # the masked image and the mask
    size = UNetSize(channels=config.channels, num_classes=classes, extra_channels=extra)
    denoiser = Denoiser(small_unet(images.shape[-1], images.shape[1], size), config.train_steps)
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.updates, config.learning_rate / 10)
    generator = torch.Generator().manual_seed(config.seed)
    losses = []
    denoiser.train()
    with progress_bar(progress, "train base", config.updates) as advance:
        for _ in range(config.updates):
            batch = torch.randint(0, len(images), (config.batch_size,), generator=generator)
            x0 = images[batch]
            condition = Condition(labels=labels[batch]) if classes is not None else NO_CONDITION  # type: ignore[index]
            if config.mask is not None:
                condition = inpainting_condition(x0, box_mask(x0.shape, config.mask, generator))
            loss = denoise_loss(denoiser, x0, condition, generator).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            advance(loss=round(losses[-1], 4))
    return denoiser.eval(), losses
