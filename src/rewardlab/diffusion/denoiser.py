"""The denoiser: a ``diffusers`` UNet with its noise schedule, behind one call, ε̂ = denoiser(x_t, t, condition).

Every alignment method reads a model only through that call, so the same code trains the small UNet this
package builds for 8×8 digits and a text-to-image UNet (``UNet2DConditionModel``, conditioned on text
embeddings) on a GPU. Saved as ``diffusers`` writes it (safetensors weights and a JSON config) plus
``denoiser.json`` (the schedule); loading runs no code from the folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rewardlab.atomic import atomic_directory
from rewardlab.diffusion.schedule import noise_schedule

CONFIG_FILE = "denoiser.json"


@dataclass(frozen=True)
class Condition:
    """What a generation is conditioned on, one row per sample; every field optional.

    ``labels``: class ids (a class-conditional UNet's ``class_labels``); ``embeddings``: [B, L, D] text or
    user embeddings (a ``UNet2DConditionModel``'s ``encoder_hidden_states``); ``channels``: [B, C, H, W]
    extra input channels concatenated to x_t (an inpainting model's masked image and mask).
    """

    labels: Tensor | None = None
    embeddings: Tensor | None = None
    channels: Tensor | None = None

    def rows(self, index: Tensor | slice) -> Condition:
        """The condition of the samples ``index`` selects."""
        return Condition(*(None if f is None else f[index] for f in (self.labels, self.embeddings, self.channels)))

    def repeat(self, times: int) -> Condition:
        """Each row repeated ``times`` times in a row (row i becomes rows i·times … i·times + times - 1)."""
        return Condition(
            *(
                None if f is None else f.repeat_interleave(times, 0)
                for f in (self.labels, self.embeddings, self.channels)
            )
        )

    def for_samples(self, n: int) -> Condition:
        """The condition of ``n`` samples: one row shared by all (repeated), or one row each, as given; a condition
        on nothing stays so. Any other row count is a ValueError."""
        rows = {f.shape[0] for f in (self.labels, self.embeddings, self.channels) if f is not None}
        if not rows or rows == {n}:
            return self
        if rows == {1}:
            return self.repeat(n)
        counts = ", ".join(map(str, sorted(rows)))
        raise ValueError(f"condition has {counts} rows; give 1 (shared by every sample) or {n} (one per sample)")

    def cat(self, other: Condition) -> Condition:
        """This condition's rows followed by ``other``'s."""
        fields = zip(
            (self.labels, self.embeddings, self.channels), (other.labels, other.embeddings, other.channels), strict=True
        )
        return Condition(*(None if a is None else torch.cat([a, b]) for a, b in fields))


NO_CONDITION = Condition()


class Denoiser(nn.Module):
    """A UNet predicting the noise ε of x_t = √ᾱ_t·x_0 + √(1-ᾱ_t)·ε, with the schedule ᾱ it was trained on."""

    def __init__(
        self,
        unet: nn.Module,
        train_steps: int = 1000,
        beta_schedule: str = "squaredcos_cap_v2",
        clip: float | None = 1.0,
    ) -> None:
        super().__init__()
        self.unet = unet
        self.train_steps = train_steps
        self.beta_schedule = beta_schedule
        self.clip = clip
        """Bound of the predicted x̂_0 while sampling: 1 for images in [-1, 1], None for a latent-space model
        (Stable Diffusion's VAE latents are not bounded)."""
        self.register_buffer("alpha_bar", noise_schedule(train_steps, beta_schedule), persistent=False)
        self.calls = 0
        """Images denoised so far (one per sample per call): the compute that tree search and best-of-N
        are compared at."""

    @property
    def image_shape(self) -> tuple[int, int, int]:
        config = self.unet.config
        channels = config.out_channels
        return (channels, config.sample_size, config.sample_size)

    def forward(self, x_t: Tensor, t: Tensor, condition: Condition = NO_CONDITION) -> Tensor:
        self.calls += x_t.shape[0]
        if condition.channels is not None:
            x_t = torch.cat([x_t, condition.channels], 1)
        t = t.expand(x_t.shape[0]) if t.dim() == 0 else t
        kwargs: dict[str, Any] = {}
        if condition.labels is not None:
            kwargs["class_labels"] = condition.labels
        if condition.embeddings is not None:
            kwargs["encoder_hidden_states"] = condition.embeddings
        return self.unet(x_t, t, return_dict=False, **kwargs)[0]

    def save(self, path: str | Path) -> None:
        """Write the UNet (safetensors) and the schedule into the folder ``path``, all or nothing."""
        with atomic_directory(Path(path)) as folder:
            self.unet.save_pretrained(folder, safe_serialization=True)
            meta = {
                "unet_class": type(self.unet).__name__,
                "train_steps": self.train_steps,
                "beta_schedule": self.beta_schedule,
                "clip": self.clip,
            }
            (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Denoiser:
        """A denoiser saved by ``save``, or a ``diffusers`` UNet folder (``train_steps`` 1000, cosine schedule
        unless a ``denoiser.json`` beside it says otherwise)."""
        import diffusers

        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"{folder}: not a denoiser folder (no config.json); train one with `rewardlab diffusion train-base`"
            )
        meta = json.loads((folder / CONFIG_FILE).read_text()) if (folder / CONFIG_FILE).is_file() else {}
        unet_class_name = meta.get("unet_class") or json.loads((folder / "config.json").read_text()).get("_class_name")
        if unet_class_name not in UNET_CLASSES:
            raise ValueError(
                f"{folder / 'config.json'}: _class_name: {unet_class_name!r} is not one of {', '.join(UNET_CLASSES)}"
            )
        unet = getattr(diffusers, unet_class_name).from_pretrained(folder, use_safetensors=True)
        return cls(
            unet, meta.get("train_steps", 1000), meta.get("beta_schedule", "squaredcos_cap_v2"), meta.get("clip", 1.0)
        )

    def copy(self) -> Denoiser:
        """An independent copy (the frozen reference of a preference loss)."""
        twin = Denoiser(type(self.unet).from_config(self.unet.config), self.train_steps, self.beta_schedule, self.clip)
        twin.unet.load_state_dict(self.unet.state_dict())
        return twin


UNET_CLASSES = ("UNet2DModel", "UNet2DConditionModel")


@dataclass(frozen=True)
class UNetSize:
    """The small UNet's shape: two resolutions, attention at the lower one."""

    channels: tuple[int, int] = (32, 64)
    layers_per_block: int = 1
    num_classes: int | None = None  # class-conditional when set
    extra_channels: int = 0  # inpainting: the masked image and its mask

    def tiny(self) -> UNetSize:
        return replace(self, channels=(8, 16))


def small_unet(image_size: int, image_channels: int = 1, size: UNetSize = UNetSize()) -> nn.Module:
    """A ``diffusers`` UNet2DModel for small images (8×8 digits train in minutes on two CPU cores)."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=image_size,
        in_channels=image_channels + size.extra_channels,
        out_channels=image_channels,
        layers_per_block=size.layers_per_block,
        block_out_channels=size.channels,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=min(8, size.channels[0]),
        attention_head_dim=min(8, size.channels[1]),
        num_class_embeds=size.num_classes,
    )


def denoise_loss(denoiser: Denoiser, x0: Tensor, condition: Condition, generator: torch.Generator | None) -> Tensor:
    """DDPM's simple loss, E_{t,ε} ||ε - ε̂_θ(x_t, t)||² (Ho et al. 2020, eq. 14), per sample."""
    t = torch.randint(0, denoiser.train_steps, (x0.shape[0],), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    from rewardlab.diffusion.schedule import add_noise

    x_t = add_noise(x0, noise, denoiser.alpha_bar[t])
    return ((denoiser(x_t, t, condition) - noise) ** 2).flatten(1).mean(1)
