"""Pluralistic objectives on two synthetic groups of users with known true rewards (issue 33).

20 users, 14 in group A and 6 in group B, 40 pairs each; x ~ N(0, I₄), group A's reward is w·x with
w = (2, −1, 1.5, 1), group B's flips the sign of w's first coordinate; labels are drawn from
Bradley-Terry on the labeller's true reward. Each objective trains a linear head (outputs = x @ W)
and the user table with full-batch Adam (400 steps, lr 0.05), as ``tests/test_pluralistic.py`` does;
Bradley-Terry trains one linear reward on the same pairs. Prints, per objective, the mean over seeds
of: the adjusted Rand index of the users' groups read from their rows, and how often a minority user's
own reward (its row) orders 2,000 fresh pairs as the minority's true reward does, beside Bradley-Terry's.
Then the Laplace fit of the ``latent`` user model: mean posterior σ and accuracy against k pairs.

    python benchmarks/pluralistic_synthetic.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_pluralistic import (  # the tests' synthetic users: both measure one thing
    adjusted_rand_index,
    group_rewards,
    held_out_accuracy,
    labelled_pairs,
    train_bradley_terry,
    train_linear,
)

from rewardlab.objectives import get_objective
from rewardlab.rewards.pluralistic import user_model, user_rewards

RUNS = [("maxmin_em", {}), ("pal", {}), ("micro", {"heads": 2}), ("vpl", {"features": 4, "kl_weight": 1 / 40})]


def groups_from_rows(users: str, table: torch.Tensor, group: torch.Tensor) -> list[int]:
    """mixture/routed: the argmax of a row; latent: the side of μ along the line between the groups' mean μ."""
    if users != "latent":
        return table.argmax(dim=-1).tolist()
    mean = table[:, : table.shape[1] // 2]
    direction = mean[group == 1].mean(dim=0) - mean[group == 0].mean(dim=0)
    return ((mean - mean.mean(dim=0)) @ direction > 0).long().tolist()


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def minority_accuracy(users: str, heads: torch.Tensor, row: torch.Tensor) -> float:
    """How often the user model's reward for ``row`` orders 2,000 fresh pairs as group B's true reward does."""
    generator = torch.Generator().manual_seed(100)
    return held_out_accuracy(lambda x: user_rewards(users, x @ heads, row), group_rewards()[1], generator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=5)
    seeds = range(parser.parse_args().seeds)
    torch.set_num_threads(1)
    single = []
    for seed in seeds:
        weights = train_bradley_terry(seed)
        generator = torch.Generator().manual_seed(100)
        single.append(held_out_accuracy(lambda x, w=weights: x @ w, group_rewards()[1], generator))
    print("| objective | group ARI | minority accuracy, own row | Bradley-Terry | seeds |\n|---|---|---|---|---|")
    for name, options in RUNS:
        users = get_objective(name).users
        ari, own = [], []
        for seed in seeds:
            group, heads, table = train_linear(name, seed, **options)
            ari.append(adjusted_rand_index(groups_from_rows(users, table, group), group.tolist()))
            own.append(minority_accuracy(users, heads, table[group == 1][0]))
        summary = f"{mean(ari):.3f} (min {min(ari):.2f}) | {mean(own):.3f} | {mean(single):.3f}"
        print(f"| {name} | {summary} | {len(seeds)} |")
    table = torch.cat([group_rewards(), torch.zeros(2, 4)], dim=-1)
    print("\n| k pairs | mean posterior σ | accuracy of the posterior mean |\n|---|---|---|")
    for k in (0, 1, 4, 16, 64, 256):
        spread = accuracy = 0.0
        for seed in range(20):
            generator = torch.Generator().manual_seed(seed)
            truth = group_rewards()[seed % 2]
            chosen, rejected = labelled_pairs(truth.expand(k, 4), generator)
            row = user_model("latent").fit(chosen, rejected, table)
            spread += row[4:].exp().mean().item() / 20
            accuracy += held_out_accuracy(lambda x, r=row: user_rewards("latent", x, r), truth, generator) / 20
        print(f"| {k} | {spread:.3f} | {accuracy:.3f} |")


if __name__ == "__main__":
    main()
