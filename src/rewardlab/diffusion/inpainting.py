"""Image inpainting with the small denoiser: masks, the inpainting condition, a base model trained on random
masks, and sampling that changes only the hole.

The model is the Stable-Diffusion-inpainting layout: the UNet reads x_t concatenated with the masked image
and the mask (``small_unet(size, C, UNetSize(extra_channels=C + 1))``), so one network fills any hole it is
shown. A mask is 1 on the hole (the pixels to generate) and 0 on the known pixels; the masked image keeps
the known pixels and sets the hole to 0, the middle of the [-1, 1] pixel range.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rewardlab.diffusion.denoiser import Condition, Denoiser
from rewardlab.diffusion.sampling import Chain, sample

MASK_KINDS = ("bottom", "right", "centre", "random", "mixed")
"""bottom / right: that half of the image; centre: the centred square of half the side; random: a box with
sides uniform in [⌈size/4⌉, ⌈3·size/4⌉] at a uniform position; mixed: each row one of the other four."""


def box_mask(shape: tuple[int, ...], kind: str, generator: torch.Generator | None = None) -> Tensor:
    """Masks [N, 1, H, W] (1 = hole) for images of ``shape`` (N, C, H, W)."""
    if len(shape) != 4:
        raise ValueError(f"mask shape must be (N, C, H, W) (got {tuple(shape)})")
    n, _, h, w = shape
    if h < 2 or w < 2:
        raise ValueError(f"masks need images of at least 2×2 pixels (got {h}×{w})")
    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind must be one of {', '.join(MASK_KINDS)} (got {kind!r})")
    if kind == "mixed":
        kinds = torch.randint(0, len(MASK_KINDS) - 1, (n,), generator=generator).tolist()
        return torch.cat([box_mask((1, 1, h, w), MASK_KINDS[k], generator) for k in kinds]) if n else empty(h, w)
    masks = torch.zeros(n, 1, h, w)
    if kind == "bottom":
        masks[..., h // 2 :, :] = 1.0
    elif kind == "right":
        masks[..., :, w // 2 :] = 1.0
    elif kind == "centre":
        masks[..., h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2] = 1.0
    else:
        for i in range(n):
            bh, bw = (int(torch.randint(-(-s // 4), -(-3 * s // 4) + 1, (1,), generator=generator)) for s in (h, w))
            top = int(torch.randint(0, h - bh + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - bw + 1, (1,), generator=generator))
            masks[i, :, top : top + bh, left : left + bw] = 1.0
    return masks


def empty(h: int, w: int) -> Tensor:
    return torch.zeros(0, 1, h, w)


def check_masks(images: Tensor, masks: Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W] (got shape {tuple(images.shape)})")
    expected = (images.shape[0], 1, *images.shape[2:])
    if tuple(masks.shape) != expected:
        raise ValueError(f"masks must be {expected} for images {tuple(images.shape)} (got {tuple(masks.shape)})")
    if not bool(((masks == 0) | (masks == 1)).all()):
        raise ValueError("masks must hold only 0 (known pixel) and 1 (hole)")


def inpainting_condition(images: Tensor, masks: Tensor) -> Condition:
    """The condition channels [masked image, mask], [N, C + 1, H, W]: what the inpainting UNet reads beside x_t.
    The hole's pixels are zeroed so that the model cannot read what it must fill."""
    check_masks(images, masks)
    return Condition(channels=torch.cat([images * (1 - masks), masks], 1))


def paste(generated: Tensor, images: Tensor, masks: Tensor) -> Tensor:
    """The generated pixels in the hole, the known pixels of ``images`` everywhere else (exactly)."""
    check_masks(images, masks)
    return torch.where(masks.bool(), generated, images)


def inpaint_chain(
    denoiser: Denoiser,
    images: Tensor,
    masks: Tensor,
    steps: int = 20,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[Chain, Tensor]:
    """The sampling chain conditioned on the known pixels, and its final image with the known pixels pasted
    back: the chain is what a policy-gradient loss reads, the pasted image what a reward scores."""
    if images.shape[1:] != denoiser.image_shape:
        raise ValueError(f"images must be [N, {', '.join(map(str, denoiser.image_shape))}] for this denoiser "
                         f"(got {tuple(images.shape)})")  # fmt: skip
    condition = inpainting_condition(images, masks)
    expected = denoiser.unet.config.in_channels - denoiser.image_shape[0]
    if condition.channels is not None and condition.channels.shape[1] != expected:
        raise ValueError(f"the denoiser reads {expected} condition channels, the inpainting condition has "
                         f"{condition.channels.shape[1]}: build it with "
                         f"UNetSize(extra_channels={images.shape[1] + 1})")  # fmt: skip
    chain = sample(denoiser, images.shape[0], steps, eta, condition, generator)
    return chain, paste(chain.images, images, masks)


@torch.no_grad()
def inpaint(
    denoiser: Denoiser,
    images: Tensor,
    masks: Tensor,
    steps: int = 20,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``images`` with their holes (mask 1) filled by ``denoiser``; every known pixel is returned unchanged."""
    return inpaint_chain(denoiser, images, masks, steps, eta, generator)[1]
