"""An image reward model learnt from preference pairs, with the same objectives as text reward models.

The model is the small convolutional ``ImageNet`` with one output, r_φ(x); the loss is any registered pairwise
objective with a scalar head, called exactly as the text trainer calls it, objective({"chosen": r_φ(x_c),
"rejected": r_φ(x_r)}, **options). With ``bradley_terry`` this is the pairwise ranking loss of InstructGPT
(Ouyang et al. 2022, eq. 1) that ImageReward (Xu et al. 2023) and PickScore (Kirstain et al. 2023) train
image reward models with:

    L(φ) = -E_(x_c, x_r) log σ(r_φ(x_c) - r_φ(x_r))

The reward scores an image alone: a pair's ``condition`` (class label) is not read, so a reward that should
depend on the prompt needs pairs of one prompt or a conditional model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from rewardlab.diffusion.align import ImageReward
from rewardlab.diffusion.classifier import ImageNet, shift
from rewardlab.diffusion.image_pairs import ImagePairs
from rewardlab.objectives.registry import Objective, get_objective
from rewardlab.progress import progress_bar


@dataclass(frozen=True)
class ImageRewardConfig:
    """``augment`` moves each batch by up to a pixel (the same shift for both images of a pair), so the
    reward reads what is drawn rather than where; ``validation_fraction`` of the pairs is held out."""

    objective: str = "bradley_terry"
    objective_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    learning_rate: float = 3e-3
    batch_size: int = 64
    validation_fraction: float = 0.1
    seed: int = 0
    features: int = 64
    weight_decay: float = 1e-4
    augment: bool = True

    def check(self) -> Objective:
        """The objective, after every setting is checked (ValueError naming the setting)."""
        for name in ("epochs", "batch_size", "features"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer (got {value!r})")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0 (got {self.learning_rate})")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1) (got {self.validation_fraction})")
        return scalar_pairwise_objective(self.objective, self.objective_options)


def scalar_pairwise_objective(name: str, options: dict[str, Any]) -> Objective:
    """The registered objective ``name`` if it trains one scalar reward from pairs alone; ValueError otherwise."""
    objective = get_objective(name)
    if not objective.pairwise:
        raise ValueError(f"objective {objective.name!r} is not pairwise (it reads rankings, not chosen/rejected "
                         "pairs); an image reward model trains from pairs, e.g. objective='bradley_terry'")  # fmt: skip
    extra = [need for need in objective.required if need not in ("chosen", "rejected")]
    if extra:
        raise ValueError(f"objective {objective.name!r} needs {', '.join(extra)} for each pair, which image pairs do "
                         "not give; choose one that needs only chosen and rejected")  # fmt: skip
    problems = objective.check_options(options)
    if problems:
        raise ValueError("objective_options: " + "; ".join(problems))
    if objective.head != "reward" or objective.outputs(options) != 1:
        outputs = objective.outputs(options)
        raise ValueError(f"objective {objective.name!r} trains a {objective.head!r} head with {outputs} outputs; "
                         "an image reward model has one scalar reward")  # fmt: skip
    problems = objective.check_values(options)
    if problems:
        raise ValueError("; ".join(problems))
    return objective


def train_image_reward(
    pairs: ImagePairs, config: ImageRewardConfig = ImageRewardConfig(), progress: bool = False
) -> tuple[ImageNet, dict[str, float]]:
    """Train r_φ on ``pairs`` with ``config.objective``; returns the model (eval mode) and a report:
    pairwise accuracy (the fraction of pairs the reward orders as the annotator did) on the training and
    held-out pairs, their counts and the last epoch's mean loss."""
    objective = config.check()
    if len(pairs) < 2:
        raise ValueError(f"need at least 2 pairs to train an image reward model (got {len(pairs)})")
    generator = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(pairs), generator=generator)
    n_validation = int(len(pairs) * config.validation_fraction)
    validation, train = pairs.rows(order[:n_validation]), pairs.rows(order[n_validation:])
    with torch.random.fork_rng():  # the initial weights follow the seed, without touching the global generator
        torch.manual_seed(config.seed)
        model = ImageNet(pairs.chosen.shape[1], outputs=1, features=config.features)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    last_loss = float("nan")
    with progress_bar(progress, f"image reward ({objective.name})", config.epochs) as advance:
        for _ in range(config.epochs):
            model.train()
            losses = []
            for batch in torch.randperm(len(train), generator=generator).split(config.batch_size):
                chosen, rejected = train.chosen[batch], train.rejected[batch]
                if config.augment:
                    both = shift(torch.cat([chosen, rejected]), generator)
                    chosen, rejected = both[: len(batch)], both[len(batch) :]
                scores = model(torch.cat([chosen, rejected]))[:, 0]
                out = objective({"chosen": scores[: len(batch)], "rejected": scores[len(batch) :]},
                                **config.objective_options)  # fmt: skip
                loss = out.losses.mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            last_loss = sum(losses) / len(losses)
            advance(loss=round(last_loss, 4))
    model.eval()
    reward = image_reward(model)
    report = {
        "objective": objective.name,
        "train_accuracy": pairwise_accuracy(reward, train),
        "validation_accuracy": pairwise_accuracy(reward, validation) if len(validation) else float("nan"),
        "train_pairs": len(train),
        "validation_pairs": len(validation),
        "final_loss": last_loss,
    }
    return model, report


def image_reward(model: ImageNet) -> ImageReward:
    """The trained model as a per-image reward, images [N, C, H, W] → scores [N] (no gradients), to align
    a denoiser with (``Feedback(reward=image_reward(model))``). Save and load the model with
    ``ImageNet.save`` / ``ImageNet.load``."""
    if model.config["outputs"] != 1:
        raise ValueError(f"an image reward model has one output (this model has {model.config['outputs']})")
    model.eval()

    @torch.no_grad()
    def reward(images: Tensor) -> Tensor:
        return model(images)[:, 0]

    return reward


def pairwise_accuracy(reward: ImageReward, pairs: ImagePairs) -> float:
    """The fraction of pairs with r(chosen) > r(rejected)."""
    with torch.no_grad():
        return float((reward(pairs.chosen) > reward(pairs.rejected)).float().mean())
