"""Diff-Instruct* (Luo et al. 2024, "Diff-Instruct*: Towards Human-Preferred One-step Text-to-image Generative
Models"): align a one-step generator x = g_φ(z) to a reward while a score-based divergence holds its
distribution to the base diffusion model's.

    min_φ  -α·E_z[r(g_φ(z))]  +  ∫ w(t)·E_{x_t ~ p_{φ,t}} d(s_{p_φ,t}(x_t) - s_{ref,t}(x_t)) dt

p_{φ,t} is the generator's distribution diffused to noise level t, s its score, d the pseudo-Huber distance.
s_{p_φ,t} is unknown, so an auxiliary "fake" score network s_ψ (a copy of the base) tracks it by denoising
score matching on the generator's samples, and the divergence, whose gradient would need ∂s_{p_φ}/∂φ,
is replaced by a tractable loss with the same gradient (Score Implicit Matching's score-gradient theorem,
which DI* builds on; see ``score_divergence_loss``). Unlike a KL regulariser (Diff-Instruct++), the
score-based divergence keeps the generator's modes, so a reward tilts the distribution rather than
collapsing it.

The generator starts as the base model read as a one-step sampler: x = x̂_0(z, t_g), the clean image its
noise prediction implies from pure noise z taken as x at a high timestep t_g.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from rewardlab.atomic import atomic_directory
from rewardlab.diffusion.align import ImageReward
from rewardlab.diffusion.denoiser import NO_CONDITION, Denoiser
from rewardlab.diffusion.schedule import add_noise, predicted_x0
from rewardlab.progress import progress_bar

GENERATOR_FILE = "generator.json"
DENOISER_FOLDER = "denoiser"
MIN_SIGNAL = 0.1
"""√ᾱ of the default generator timestep: the last steps of a cosine schedule have ᾱ ≈ 0 (2e-9 at t = 999),
where x̂_0 = (x_t - √(1-ᾱ)·ε̂)/√ᾱ divides by nearly zero."""


def pseudo_huber(u: Tensor, c: float) -> Tensor:
    """d(u) = √(‖u‖² + c²) - c per sample (‖·‖ over every dimension but the batch): ½‖u‖²/c near 0, ‖u‖ far
    away, so a few badly estimated scores do not dominate the gradient (SIM's robust distance)."""
    return ((u**2).flatten(1).sum(1) + c**2).sqrt() - c


def pseudo_huber_gradient(u: Tensor, c: float) -> Tensor:
    """∇d(u) = u / √(‖u‖² + c²), per sample, shaped as u."""
    norm = ((u**2).flatten(1).sum(1) + c**2).sqrt()
    return u / norm.view(-1, *([1] * (u.dim() - 1)))


def score_divergence_loss(eps_ref: Tensor, eps_fake: Tensor, noise: Tensor, c: float) -> Tensor:
    """DI*'s tractable score-divergence loss per sample, in ε-units (score s = -ε̂/σ_t):

        u = ε̂_ref(x_t) - ε̂_fake(x_t)                    (= σ_t·(s_{p_φ} - s_ref), with s_ψ ≈ s_{p_φ})
        L = d(u) - ∇d(u)ᵀ·(ε - ε̂_fake(x_t)),          x_t = √ᾱ_t·g_φ(z) + σ_t·ε

    The networks' parameters are held fixed (stop-gradient) and the gradient reaches φ through x_t only. The
    first term is the reparametrised part of ∇_φ E d(u); the second stands in for the part that would go
    through ∂s_{p_φ}/∂φ: by the score-projection identity E[vᵀ(s_{p_φ}(x_t) - ∇log p(x_t|x_0))] = 0 for any
    v, differentiating it turns E[∇dᵀ·∂_φ s_{p_φ}] into -∇_φ E[∇d(u)ᵀ(s_ψ - ∇log p(x_t|x_0))], and
    σ_t(s_ψ - ∇log p(x_t|x_0)) = ε - ε̂_fake. So ∇_φ E[L] = ∇_φ D(φ) when s_ψ is the generator's score.
    ``c`` is the pseudo-Huber constant for the whole image (ε-units).
    """
    u = eps_ref - eps_fake
    weight = pseudo_huber_gradient(u, c)
    return pseudo_huber(u, c) - (weight * (noise - eps_fake)).flatten(1).sum(1)


def default_timestep(denoiser: Denoiser) -> int:
    """The highest training timestep whose √ᾱ is at least ``MIN_SIGNAL``."""
    ok = (denoiser.alpha_bar.sqrt() >= MIN_SIGNAL).nonzero()
    return int(ok.max())


class OneStepGenerator(nn.Module):
    """x = x̂_0(z, t_g) = (z - √(1-ᾱ)·ε̂(z, t_g))/√ᾱ: one call of a denoiser maps noise z to an image."""

    def __init__(self, denoiser: Denoiser, timestep: int | None = None) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.timestep = default_timestep(denoiser) if timestep is None else timestep
        if not 0 <= self.timestep < denoiser.train_steps:
            raise ValueError(f"timestep must be in [0, {denoiser.train_steps}) (got {self.timestep})")
        if float(denoiser.alpha_bar[self.timestep]) <= 0:
            raise ValueError(f"timestep {self.timestep}: ᾱ is 0 there, x̂_0 is undefined; pick a lower one")

    def forward(self, z: Tensor) -> Tensor:
        t = torch.full((z.shape[0],), self.timestep, dtype=torch.long)
        return predicted_x0(z, self.denoiser(z, t, NO_CONDITION), self.denoiser.alpha_bar[t])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images in [-1, 1], one denoiser call each."""
        z = torch.randn((n, *self.denoiser.image_shape), generator=generator)
        return self(z).clamp(-1, 1)

    def save(self, path: str | Path) -> None:
        """The denoiser (``Denoiser.save``) in ``path/denoiser`` and the timestep in ``generator.json``."""
        with atomic_directory(Path(path)) as folder:
            self.denoiser.save(folder / DENOISER_FOLDER)
            (folder / GENERATOR_FILE).write_text(json.dumps({"timestep": self.timestep}, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> OneStepGenerator:
        folder = Path(path)
        if not (folder / GENERATOR_FILE).is_file():
            raise FileNotFoundError(f"{folder}: not a one-step generator folder (no {GENERATOR_FILE})")
        meta = json.loads((folder / GENERATOR_FILE).read_text())
        return cls(Denoiser.load(folder / DENOISER_FOLDER), int(meta["timestep"]))


@dataclass(frozen=True)
class DiffInstructConfig:
    """One DI* run. ``reward_weight`` is α (0: pure score distillation of the base into one step);
    ``fake_steps`` the score-matching updates of s_ψ per generator update; ``huber_c`` the pseudo-Huber
    constant per pixel (scaled by √pixels for the whole image); the divergence is taken at t drawn
    uniformly from [``min_t_fraction``, ``max_t_fraction``]·T."""

    updates: int = 300
    batch_size: int = 32
    reward_weight: float = 1.0
    generator_learning_rate: float = 1e-4
    fake_learning_rate: float = 1e-4
    fake_steps: int = 1
    huber_c: float = 0.1
    timestep: int | None = None
    min_t_fraction: float = 0.02
    max_t_fraction: float = 0.98
    seed: int = 0

    def check(self) -> None:
        for name in ("updates", "batch_size", "fake_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"diff-instruct: {name} must be at least 1 (got {getattr(self, name)})")
        if self.reward_weight < 0:
            raise ValueError(f"diff-instruct: reward_weight must be non-negative (got {self.reward_weight})")
        for name in ("generator_learning_rate", "fake_learning_rate", "huber_c"):
            if not getattr(self, name) > 0:
                raise ValueError(f"diff-instruct: {name} must be positive (got {getattr(self, name)})")
        if not 0.0 <= self.min_t_fraction < self.max_t_fraction <= 1.0:
            raise ValueError(
                f"diff-instruct: need 0 <= min_t_fraction < max_t_fraction <= 1 "
                f"(got {self.min_t_fraction}, {self.max_t_fraction})"
            )


def noise_levels(config: DiffInstructConfig, train_steps: int, n: int, generator: torch.Generator) -> Tensor:
    low = int(config.min_t_fraction * (train_steps - 1))
    high = max(low, int(config.max_t_fraction * (train_steps - 1)))
    return torch.randint(low, high + 1, (n,), generator=generator)


def train_diff_instruct(
    base: Denoiser, reward: ImageReward, config: DiffInstructConfig = DiffInstructConfig(), progress: bool = True
) -> tuple[OneStepGenerator, list[dict[str, float]]]:
    """Train a one-step generator from ``base`` toward ``reward`` (which must be differentiable when α > 0).
    Each update: ``fake_steps`` denoising-score-matching steps of s_ψ on fresh generator samples, then one
    generator step on -α·r(x) + the tractable divergence. Returns the generator and per-update records."""
    config.check()
    rng = torch.Generator().manual_seed(config.seed)
    generator_model = OneStepGenerator(base.copy(), config.timestep)
    reference = base.copy().eval().requires_grad_(False)
    fake = base.copy()
    shape = base.image_shape
    c = config.huber_c * math.sqrt(math.prod(shape))
    opt_g = torch.optim.Adam(generator_model.parameters(), lr=config.generator_learning_rate, betas=(0.0, 0.999))
    opt_f = torch.optim.Adam(fake.parameters(), lr=config.fake_learning_rate, betas=(0.0, 0.999))
    alpha_bar = base.alpha_bar
    history: list[dict[str, float]] = []
    with progress_bar(progress, "diff-instruct*", config.updates) as advance:
        for update in range(config.updates):
            fake.requires_grad_(True)
            for _ in range(config.fake_steps):
                with torch.no_grad():
                    x0 = generator_model(torch.randn((config.batch_size, *shape), generator=rng))
                t = noise_levels(config, base.train_steps, config.batch_size, rng)
                noise = torch.randn(x0.shape, generator=rng)
                fake_loss = ((fake(add_noise(x0, noise, alpha_bar[t]), t) - noise) ** 2).flatten(1).mean(1).mean()
                opt_f.zero_grad()
                fake_loss.backward()
                opt_f.step()
            fake.requires_grad_(False)

            x0 = generator_model(torch.randn((config.batch_size, *shape), generator=rng))
            t = noise_levels(config, base.train_steps, config.batch_size, rng)
            noise = torch.randn(x0.shape, generator=rng)
            x_t = add_noise(x0, noise, alpha_bar[t])
            divergence = score_divergence_loss(reference(x_t, t), fake(x_t, t), noise, c).mean()
            loss = divergence
            if config.reward_weight > 0:
                mean_reward = reward(x0.clamp(-1, 1)).mean()
                if not mean_reward.requires_grad:
                    raise ValueError("diff-instruct: the reward must be differentiable (it returned no gradient)")
                loss = loss - config.reward_weight * mean_reward
            else:  # pure distillation: the reward is only recorded
                with torch.no_grad():
                    mean_reward = reward(x0.clamp(-1, 1)).mean()
            opt_g.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(generator_model.parameters(), 1.0)
            opt_g.step()
            history.append(
                {
                    "update": update,
                    "loss": float(loss.detach()),
                    "divergence": float(divergence.detach()),
                    "reward": float(mean_reward.detach()),
                    "fake_loss": float(fake_loss.detach()),
                }
            )
            advance(loss=round(history[-1]["loss"], 4))
    generator_model.eval()
    return generator_model, history
