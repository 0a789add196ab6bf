"""The alignment loop, for every method: gather data with the current model, take a gradient step on the
method's loss, repeat. A method is one registered object with two functions, so adding one is one module.

    for each update:
        batch = method.collect(policy, reference, feedback, config, generator)   # no gradients
        loss  = method.loss(policy, reference, batch, config)
        step the optimiser on loss

``collect`` decides whether the data are on-policy generations (D3PO, DRAGON) or pairs read from a file
(Diffusion-DPO's offline setting); ``loss`` decides what the denoiser must compute. The reference is a
frozen copy of the starting model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from rewardlab.diffusion.denoiser import NO_CONDITION, Condition, Denoiser
from rewardlab.progress import progress_bar
from rewardlab.registry import Registry

ImageReward = Callable[[Tensor], Tensor]
"""A per-sample reward: images [N, C, H, W] → scores [N]."""
SetReward = Callable[[Tensor], float]
"""A distribution-level reward: a set of images → one score (DRAGON's instance-to-distribution and
distribution-to-distribution rewards)."""


@dataclass(frozen=True)
class Feedback:
    """Where preferences come from. ``reward`` scores single images (a known reward, a classifier, or an
    image reward model trained from pairs); a simulated annotator prefers a over b with probability
    σ((r(a) - r(b)) / temperature), so temperature → 0 is a noiseless annotator. ``set_reward`` scores a
    whole set (DRAGON). ``pairs`` are fixed preference pairs (chosen, rejected) for offline methods."""

    reward: ImageReward | None = None
    temperature: float = 0.1
    set_reward: SetReward | None = None
    pairs: tuple[Tensor, Tensor] | None = None

    def preference_probability(self, a: Tensor, b: Tensor) -> Tensor:
        """P(a ≻ b) under the simulated annotator, per pair."""
        if self.reward is None:
            raise ValueError("this method needs a per-image reward to label pairs (--reward)")
        return torch.sigmoid((self.reward(a) - self.reward(b)) / self.temperature)

    def prefer(self, a: Tensor, b: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A sampled label per pair: True where the annotator prefers a."""
        p = self.preference_probability(a, b)
        return torch.rand(p.shape, generator=generator) < p


@dataclass(frozen=True)
class AlignConfig:
    """One alignment run. ``options`` are the method's own settings (β's siblings: SmPO's smoothing, DRAGON's
    demonstration fraction…), checked by the method."""

    method: str = "diffusion-dpo"
    updates: int = 100
    batch_size: int = 16  # pairs (or samples) gathered per update
    sampling_steps: int = 10
    eta: float = 1.0
    beta: float = 500.0
    learning_rate: float = 1e-4
    seed: int = 0
    condition: Condition = NO_CONDITION
    options: dict[str, Any] = field(default_factory=dict)


class AlignMethod(Protocol):
    name: str

    def collect(
        self, policy: Denoiser, reference: Denoiser, feedback: Feedback, config: AlignConfig, generator: torch.Generator
    ) -> Any: ...

    def loss(self, policy: Denoiser, reference: Denoiser, batch: Any, config: AlignConfig) -> Tensor: ...


ALIGN_METHODS: Registry[AlignMethod] = Registry("alignment method", packages=["rewardlab.diffusion.methods"])


def method_options(name: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``options`` over ``defaults``; an option the method does not have is a ValueError listing those it has."""
    for key in options:
        if key not in defaults:
            raise ValueError(f"method {name!r} has no option {key!r}; its options: {', '.join(defaults) or 'none'}")
    return {**defaults, **options}


def register_method(method: AlignMethod) -> AlignMethod:
    ALIGN_METHODS.add(method.name, method)
    return method


@dataclass
class AlignResult:
    policy: Denoiser
    history: list[dict[str, float]]


def align(policy: Denoiser, feedback: Feedback, config: AlignConfig, progress: bool = True) -> AlignResult:
    """Fine-tune ``policy`` (in place) with ``config.method`` toward ``feedback``; returns it and each update's loss."""
    method = ALIGN_METHODS.get(config.method)
    reference = policy.copy().eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(config.seed)
    history = []
    with progress_bar(progress, f"align ({config.method})", config.updates) as advance:
        for update in range(config.updates):
            history.append(align_step(method, policy, reference, optimizer, feedback, config, generator))
            history[-1]["update"] = update
            advance(loss=round(history[-1]["loss"], 4))
    policy.eval()
    return AlignResult(policy, history)


def align_step(
    method: AlignMethod,
    policy: Denoiser,
    reference: Denoiser,
    optimizer: torch.optim.Optimizer,
    feedback: Feedback,
    config: AlignConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """Gather one batch and take one optimiser step on the method's loss."""
    policy.eval()
    with torch.no_grad():
        batch = method.collect(policy, reference, feedback, config, generator)
    policy.train()
    loss = method.loss(policy, reference, batch, config)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
    optimizer.step()
    return {"loss": float(loss.detach())}
