"""Rewards whose truth is known, so that alignment is measured rather than guessed: a classifier's log-probability
of a chosen digit, and a measurable image property (ink: mean brightness)."""

from __future__ import annotations

import torch
from torch import Tensor

from rewardlab.diffusion.align import ImageReward
from rewardlab.diffusion.classifier import ImageNet


def class_log_prob_reward(classifier: ImageNet, digit: int | list[int]) -> ImageReward:
    """r(x) = log p_classifier(digit | x), or log Σ_k p(k | x) over a list of digits: high when the image reads as
    (one of) them. Differentiable in x, so that a generator can be trained through it (Diff-Instruct*); the
    classifier's own weights stay frozen."""
    digits = [digit] if isinstance(digit, int) else list(digit)
    for d in digits:
        if not 0 <= d < classifier.config["outputs"]:
            raise ValueError(f"digit must be in [0, {classifier.config['outputs']}) (got {d})")
    classifier.requires_grad_(False)

    def reward(images: Tensor) -> Tensor:
        return torch.log_softmax(classifier(images), 1)[:, digits].logsumexp(1)

    return reward


def ink_reward(images: Tensor) -> Tensor:
    """r(x) = mean pixel value in [-1, 1]: how much ink (brightness) an image holds."""
    return images.flatten(1).mean(1)


@torch.no_grad()
def class_probabilities(classifier: ImageNet, images: Tensor) -> Tensor:
    """p_classifier(· | x) per image, [N, classes]: what a set's class mix is read from."""
    return torch.softmax(classifier(images), 1)
