"""How far an aligned model moved and what it gained: the known reward with an interval over samples, the
Fréchet distance of its samples to the base model's in a classifier's feature space, diversity (Vendi score),
and the class mix."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor

from rewardlab.diffusion.align import ImageReward
from rewardlab.diffusion.classifier import ImageNet
from rewardlab.diffusion.distribution import frechet_distance, vendi_score
from rewardlab.diffusion.known_rewards import class_probabilities
from rewardlab.evaluate.cv_report import t_interval


@torch.no_grad()
def measure(images: Tensor, base_images: Tensor, reward: ImageReward | None, encoder: ImageNet) -> dict[str, Any]:
    """The report row of one set of samples: reward (mean and 95% t-interval over samples; left out for a set-level
    reward), Fréchet distance to ``base_images`` and Vendi diversity on ``encoder``'s features, the class mix."""
    features, base_features = encoder.features(images), encoder.features(base_images)
    mix = class_probabilities(encoder, images).argmax(1).bincount(minlength=encoder.config["outputs"]) / len(images)
    row: dict[str, Any] = {} if reward is None else {"reward": asdict(t_interval(reward(images).tolist()))}
    return row | {
        "frechet_to_base": frechet_distance(features, base_features),
        "vendi": vendi_score(features),
        "class_mix": [round(float(p), 4) for p in mix],
        "n": len(images),
    }
