"""A small convolutional network over images: the digit classifier whose probabilities are the known rewards
alignment is measured against, and the body of the image reward model trained from preference pairs.

Its penultimate features are the encoder of the distribution measures (a Fréchet distance on them is the
FID of these 8×8 images)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from rewardlab.atomic import atomic_directory
from rewardlab.progress import progress_bar

WEIGHTS, CONFIG = "model.safetensors", "config.json"


class ImageNet(nn.Module):
    """conv(32) → conv(64, stride 2) → mean-pool → linear(features) → linear(outputs)."""

    def __init__(self, in_channels: int = 1, outputs: int = 10, features: int = 64) -> None:
        super().__init__()
        self.config = {"in_channels": in_channels, "outputs": outputs, "features": features}
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.SiLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, features), nn.SiLU(),
        )  # fmt: skip
        self.head = nn.Linear(features, outputs)

    def features(self, images: Tensor) -> Tensor:
        return self.body(images)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.body(images))

    def save(self, path: str | Path) -> None:
        with atomic_directory(Path(path)) as folder:
            save_file(self.state_dict(), str(folder / WEIGHTS))
            (folder / CONFIG).write_text(json.dumps(self.config) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ImageNet:
        folder = Path(path)
        for name in (WEIGHTS, CONFIG):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder}: no {name}; not a rewardlab image model folder")
        net = cls(**json.loads((folder / CONFIG).read_text()))
        net.load_state_dict(load_file(str(folder / WEIGHTS)))
        return net.eval()


@dataclass(frozen=True)
class ClassifierReport:
    model: ImageNet
    train_accuracy: float
    test_accuracy: float
    test_size: int


def train_classifier(
    images: Tensor,
    labels: Tensor,
    epochs: int = 80,
    test_fraction: float = 0.2,
    seed: int = 0,
    progress: bool = False,
) -> ClassifierReport:
    """Cross-entropy training with small shifts as augmentation (so that it scores generated images, which are
    never perfectly centred, as it scores real ones); accuracy on a held-out split is reported."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator)
    n_test = int(len(images) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = ImageNet(images.shape[1], int(labels.max()) + 1)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    with progress_bar(progress, "classifier", epochs) as advance:
        for _ in range(epochs):
            net.train()
            for batch in train[torch.randperm(len(train), generator=generator)].split(64):
                x = shift(images[batch], generator)
                loss = F.cross_entropy(net(x), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            advance()
    net.eval()
    return ClassifierReport(net, accuracy(net, images[train], labels[train]), accuracy(net, images[test], labels[test]),
                            n_test)  # fmt: skip


def shift(images: Tensor, generator: torch.Generator) -> Tensor:
    """Each image moved by up to one pixel in each direction (background -1 fills the gap)."""
    padded = F.pad(images, (1, 1, 1, 1), value=-1.0)
    h, w = images.shape[-2:]
    dy, dx = torch.randint(0, 3, (2,), generator=generator).tolist()
    return padded[..., dy : dy + h, dx : dx + w]


@torch.no_grad()
def accuracy(net: ImageNet, images: Tensor, labels: Tensor) -> float:
    return float((net(images).argmax(1) == labels).float().mean())
