"""Diffusion Tree Sampling / Search (Jain et al. 2025) and best-of-N: the backup maths by hand, the compute
accounting, and the paper's claims on a tiny digit model with a known reward (mean brightness)."""

import math
from dataclasses import replace

import pytest
import torch

from rewardlab.diffusion.denoiser import NO_CONDITION, Condition, Denoiser, UNetSize, denoise_loss, small_unet
from rewardlab.diffusion.images import digits
from rewardlab.diffusion.known_rewards import ink_reward
from rewardlab.diffusion.sampling import sample
from rewardlab.diffusion.tree_search import (
    TreeSearchConfig,
    allowed_children,
    backup_value,
    best_of_n,
    boltzmann_probabilities,
    soft_value,
    tree_sample,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(one_thread: None) -> Denoiser:
    """A tiny UNet trained for 60 updates on the 8×8 digits (a few seconds): rough digits, a real chain."""
    torch.manual_seed(0)
    denoiser = Denoiser(small_unet(8, size=UNetSize().tiny()))
    images, _ = digits()
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        batch = images[torch.randint(0, len(images), (64,), generator=generator)]
        loss = denoise_loss(denoiser, batch, NO_CONDITION, generator).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return denoiser.eval().requires_grad_(False)


def test_soft_backup_hand_computed():
    """Children values 0 and ln 3: soft value log((e^0 + e^{ln 3})/2) = log 2; max backup ln 3; Boltzmann
    selection probabilities e^0/4 = 0.25 and 3/4 = 0.75. One child: its value. Large values stay finite."""
    assert soft_value([0.0, math.log(3)]) == pytest.approx(math.log(2))
    assert backup_value([0.0, math.log(3)], greedy=True) == pytest.approx(math.log(3))
    assert backup_value([0.0, math.log(3)], greedy=False) == pytest.approx(math.log(2))
    assert soft_value([5.0]) == pytest.approx(5.0)
    assert soft_value([1000.0, 1000.0 + math.log(3)]) == pytest.approx(1000.0 + math.log(2))
    probs = boltzmann_probabilities(torch.tensor([0.0, math.log(3)]))
    assert probs.tolist() == pytest.approx([0.25, 0.75])


def test_progressive_widening_count():
    """widening 1: ⌈√(N + 1)⌉ children, so 1 at N = 0, 2 at N = 3, 3 at N = 8, capped at max_children; off
    (widening 0): max_children from the start."""
    config = TreeSearchConfig(widening=1.0, max_children=3)
    assert [allowed_children(n, config) for n in (0, 3, 4, 8, 100)] == [1, 2, 3, 3, 3]
    assert allowed_children(0, TreeSearchConfig(max_children=5)) == 5


def test_bad_settings_raise(model: Denoiser):
    with pytest.raises(ValueError, match="eta"):
        tree_sample(model, ink_reward, 2, TreeSearchConfig(budget=100, sampling_steps=5, eta=0.0))
    with pytest.raises(ValueError, match="budget"):
        tree_sample(model, ink_reward, 4, TreeSearchConfig(budget=19, sampling_steps=5))
    with pytest.raises(ValueError, match="lam"):
        tree_sample(model, ink_reward, 2, TreeSearchConfig(budget=100, sampling_steps=5, lam=0.0, greedy=True))
    with pytest.raises(ValueError, match="max_children"):
        tree_sample(model, ink_reward, 2, TreeSearchConfig(budget=100, sampling_steps=5, max_children=0))
    with pytest.raises(ValueError, match="budget_calls"):
        best_of_n(model, ink_reward, 4, 19, sampling_steps=5)
    with pytest.raises(ValueError, match="condition has 3 rows"):
        tree_sample(
            model,
            ink_reward,
            2,
            TreeSearchConfig(budget=100, sampling_steps=5),
            Condition(labels=torch.zeros(3, dtype=torch.long)),
        )


def test_compute_is_counted_and_results_are_consistent(model: Denoiser):
    """Tree search spends at most its budget, counted by the denoiser; best-of-N spends exactly
    n·N·S = 3·⌊200/(3·5)⌋·5 = 195 calls; the rewards returned are those of the images returned; a seed repeats."""
    config = TreeSearchConfig(budget=200, sampling_steps=5, lam=5.0, max_children=3, seed=1)
    before = model.calls
    result = tree_sample(model, ink_reward, 3, config)
    assert result.calls == model.calls - before and 0 < result.calls <= 200
    assert result.images.shape == (3, 1, 8, 8)
    assert torch.allclose(result.rewards, ink_reward(result.images))
    assert torch.equal(tree_sample(model, ink_reward, 3, config).images, result.images)
    baseline = best_of_n(model, ink_reward, 3, 200, sampling_steps=5, seed=1)
    assert baseline.calls == 195
    assert torch.allclose(baseline.rewards, ink_reward(baseline.images))


def test_one_child_per_node_is_one_chain(model: Denoiser):
    """max_children = 1: every node is spent after one rollout, so each tree is a single chain of S calls
    however large the budget."""
    result = tree_sample(model, ink_reward, 4, TreeSearchConfig(budget=4000, sampling_steps=5, max_children=1))
    assert result.calls == 4 * 5


def test_conditions_are_per_output():
    """A class-conditional UNet: one label per output (or one label for all) reaches the denoiser."""
    denoiser = Denoiser(small_unet(8, size=UNetSize(num_classes=10).tiny())).eval()
    labels = Condition(labels=torch.tensor([1, 7]))
    result = tree_sample(denoiser, ink_reward, 2, TreeSearchConfig(budget=40, sampling_steps=4, greedy=True), labels)
    assert result.images.shape == (2, 1, 8, 8)
    one = best_of_n(denoiser, ink_reward, 2, 40, sampling_steps=4, condition=Condition(labels=torch.tensor([3])))
    assert one.images.shape == (2, 1, 8, 8)


def test_greedy_tree_search_beats_best_of_n_at_equal_compute(model: Denoiser):
    """The paper's claim for DTS*: at the same denoiser calls (16 outputs × 128 calls, 8 steps, so best-of-16
    per output), the tree finds brighter images than best-of-N, averaged over outputs and two seeds."""
    n, steps, budget = 16, 8, 16 * 128
    tree, best = [], []
    for seed in (0, 1):
        config = TreeSearchConfig(budget=budget, sampling_steps=steps, lam=10.0, max_children=4, greedy=True, seed=seed)
        searched = tree_sample(model, ink_reward, n, config)
        baseline = best_of_n(model, ink_reward, n, budget, sampling_steps=steps, seed=seed)
        assert searched.calls <= budget and baseline.calls == budget
        tree.append(searched.rewards.mean().item())
        best.append(baseline.rewards.mean().item())
    assert sum(tree) / 2 > sum(best) / 2, (tree, best)


def test_sampling_with_lambda_zero_is_the_base_model(model: Denoiser):
    """λ = 0: the target is p_θ itself and DTS's Boltzmann selection is uniform, so its outputs are base-model
    samples: their mean brightness lies within noise (3.5 standard errors) of plain sampling's. With λ = 10
    the same search tilts toward bright images, beyond that noise (so the check can tell them apart)."""
    steps = 8
    plain = ink_reward(sample(model, 256, steps, generator=torch.Generator().manual_seed(5)).images)
    n = 48
    config = TreeSearchConfig(budget=n * 4 * steps, sampling_steps=steps, lam=0.0, max_children=3, seed=3)
    neutral = tree_sample(model, ink_reward, n, config).rewards
    tilted = tree_sample(model, ink_reward, n, replace(config, lam=10.0)).rewards
    noise = math.sqrt(plain.var().item() / len(plain) + plain.var().item() / n)
    assert abs(neutral.mean().item() - plain.mean().item()) < 3.5 * noise
    assert tilted.mean().item() - plain.mean().item() > 3.5 * noise
