"""PPD on the digits: users between "a three" and "an eight" (utility w·log p(3) + (1 - w)·log p(8), τ = 0.5),
training users w ∈ {0, 0.25, 0.75, 1} on offline pairs of real digits; unseen users w = 0.1 and 0.9, each embedded
from 4 pairs; the judge classifier's 3- and 8-rates of 256 samples per user, base against personalised, from the
same noise.

    OMP_NUM_THREADS=2 python benchmarks/diffusion_ppd.py
"""

from __future__ import annotations

import json
import time

import torch

from rewardlab.diffusion.align import ImageReward
from rewardlab.diffusion.classifier import train_classifier
from rewardlab.diffusion.images import digits
from rewardlab.diffusion.known_rewards import class_log_prob_reward, class_probabilities
from rewardlab.diffusion.personalized import (
    PersonalizedConfig,
    Population,
    SimulatedUser,
    mixture_user,
    pretrained_base,
    sample_for_user,
    train_personalized,
)


def user(w: float, three: ImageReward, eight: ImageReward) -> SimulatedUser:
    return mixture_user(f"w={w}", [three, eight], [w, 1 - w], temperature=0.5)


def main() -> None:
    torch.set_num_threads(2)
    images, labels = digits()
    rewarder = train_classifier(images, labels, seed=0).model
    judge = train_classifier(images, labels, seed=1).model
    three, eight = class_log_prob_reward(rewarder, 3), class_log_prob_reward(rewarder, 8)
    population = Population(tuple(user(w, three, eight) for w in (0.0, 0.25, 0.75, 1.0)), rewarder.features, images)
    config = PersonalizedConfig(
        pretrain_updates=1500, pretrain_batch_size=128, pretrain_learning_rate=2e-3, on_policy=False, updates=300,
        beta=2.0, embedding_learning_rate=0.1, learning_rate=1e-4, sampling_steps=10,
    )  # fmt: skip
    start = time.perf_counter()
    base = pretrained_base(population, config)
    result: dict = {"pretrain_seconds": round(time.perf_counter() - start, 1)}
    start = time.perf_counter()
    tuned = train_personalized(base, population, config).policy
    result["personalize_seconds"] = round(time.perf_counter() - start, 1)
    generator = torch.Generator().manual_seed(5)
    noise = torch.randn(256, 1, 8, 8, generator=generator)
    for w in (0.1, 0.9):
        embedding = population.embed(user(w, three, eight), 4, generator)
        for name, model in (("base", base), ("ppd", tuned)):
            drawn = sample_for_user(model, embedding, 256, 10, torch.Generator().manual_seed(9), noise=noise)
            read = class_probabilities(judge, drawn).argmax(1)
            result[f"w={w} {name}"] = {str(d): float((read == d).float().mean()) for d in (3, 8)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
