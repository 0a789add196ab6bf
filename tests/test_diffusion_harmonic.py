"""The λ-Harmonic reward (Miao et al. 2024) against hand-computed values, its properties, its Bradley-Terry labels
and the exemplar-similarity reward."""

import math

import pytest
import torch

from rewardlab.diffusion.align import Feedback
from rewardlab.diffusion.harmonic import (
    exemplar_similarity,
    harmonic_mean,
    harmonic_preference_probability,
    harmonic_reward,
    to_unit_interval,
)
from rewardlab.diffusion.images import digits
from rewardlab.diffusion.known_rewards import ink_reward

pytestmark = pytest.mark.usefixtures("one_thread")


def test_harmonic_mean_hand_computed():
    """λ = 0.5, a = 0.8, b = 0.2: 1 / (0.5/0.8 + 0.5/0.2) = 1 / (0.625 + 2.5) = 0.32;
    λ = 0.25, a = 0.5, b = 1.0: 1 / (0.25/0.5 + 0.75/1) = 1 / 1.25 = 0.8."""
    h = harmonic_mean(torch.tensor([0.8, 0.5]), torch.tensor([0.2, 1.0]), 0.5)
    assert h[0].item() == pytest.approx(0.32, abs=1e-6)
    assert harmonic_mean(torch.tensor(0.5), torch.tensor(1.0), 0.25).item() == pytest.approx(0.8, abs=1e-6)


def test_endpoints_give_one_score():
    """λ = 1 → a, λ = 0 → b."""
    a, b = torch.tensor([0.3, 0.9, 0.01]), torch.tensor([0.7, 0.2, 0.5])
    assert torch.allclose(harmonic_mean(a, b, 1.0), a)
    assert torch.allclose(harmonic_mean(a, b, 0.0), b)


def test_between_min_and_max_and_punishes_imbalance():
    """min(a, b) ≤ H ≤ max(a, b), and H ≤ λ·a + (1-λ)·b (weighted harmonic ≤ arithmetic mean), with equality
    only when a = b: a balanced pair (0.5, 0.5) beats an unbalanced one (0.9, 0.1) of the same arithmetic mean
    (0.5 against 1/(0.5/0.9 + 0.5/0.1) = 0.18)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1000, generator=g) * 0.99 + 0.01, torch.rand(1000, generator=g) * 0.99 + 0.01
    for lam in (0.1, 0.5, 0.9):
        h = harmonic_mean(a, b, lam)
        assert bool((h >= torch.minimum(a, b) - 1e-6).all()) and bool((h <= torch.maximum(a, b) + 1e-6).all())
        assert bool((h <= lam * a + (1 - lam) * b + 1e-6).all())
    balanced = harmonic_mean(torch.tensor(0.5), torch.tensor(0.5), 0.5).item()
    unbalanced = harmonic_mean(torch.tensor(0.9), torch.tensor(0.1), 0.5).item()
    assert balanced == pytest.approx(0.5) and unbalanced == pytest.approx(0.18, abs=1e-6)


def test_dominated_by_the_smaller_score():
    """Raising the larger score to 1 barely helps when the other is 0.05 (H ≤ 2·0.05 = 0.1 at λ = 1/2), while
    raising the smaller one from 0.05 to 0.5 moves H from 0.0952 to 0.6667."""
    low = harmonic_mean(torch.tensor(0.05), torch.tensor(1.0), 0.5).item()
    assert low == pytest.approx(1 / (0.5 / 0.05 + 0.5), abs=1e-6)  # 0.0952
    assert low < 0.1
    assert harmonic_mean(torch.tensor(0.5), torch.tensor(1.0), 0.5).item() == pytest.approx(2 / 3, abs=1e-6)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="lam"):
        harmonic_mean(torch.tensor(0.5), torch.tensor(0.5), 1.5)
    with pytest.raises(ValueError, match="positive"):
        harmonic_mean(torch.tensor(0.0), torch.tensor(0.5), 0.5)
    with pytest.raises(ValueError, match="map_b"):
        harmonic_reward(ink_reward, ink_reward, 0.5, map_b="softplus")
    with pytest.raises(ValueError, match="temperature"):
        harmonic_preference_probability(
            torch.tensor(0.5), torch.tensor(0.5), torch.tensor(0.5), torch.tensor(0.5), 0.5, temperature=0.0
        )
    with pytest.raises(ValueError, match="exemplars"):
        exemplar_similarity(lambda x: x.flatten(1), torch.zeros(0, 1, 8, 8))


def test_score_maps():
    """cosine: (s + 1)/2, so -1 → floor, 0 → 0.5, 1 → 1; sigmoid: σ(0) = 0.5, σ(ln 3) = 0.75."""
    mapped = to_unit_interval(torch.tensor([-1.0, 0.0, 1.0]), "cosine")
    assert mapped.tolist() == pytest.approx([1e-6, 0.5, 1.0])
    assert to_unit_interval(torch.tensor([0.0, math.log(3)]), "sigmoid").tolist() == pytest.approx([0.5, 0.75])


def test_preference_probability_hand_computed_and_matches_feedback():
    """first (0.8, 0.2) → H = 0.32; second (0.5, 0.5) → H = 0.5: P(first ≻ second) = σ(-0.18) = 0.45512;
    with τ = 0.1, σ(-1.8) = 0.14185. The simulated annotator of ``Feedback`` on ``harmonic_reward`` agrees."""
    p = harmonic_preference_probability(torch.tensor(0.8), torch.tensor(0.2), torch.tensor(0.5), torch.tensor(0.5), 0.5)
    assert p.item() == pytest.approx(1 / (1 + math.exp(0.18)), abs=1e-6)
    sharp = harmonic_preference_probability(
        torch.tensor(0.8), torch.tensor(0.2), torch.tensor(0.5), torch.tensor(0.5), 0.5, temperature=0.1
    )
    assert sharp.item() == pytest.approx(0.1418511, abs=1e-6)
    # first: pixels (-0.6, 0.6, 0.6, 1.4) → brightness 0.5 → a = 0.75, pixel (0, 0) = -0.6 → b = 0.2;
    # second: all 0 → a = b = 0.5
    first = torch.tensor([-0.6, 0.6, 0.6, 1.4]).view(1, 1, 2, 2)
    second = torch.zeros(1, 1, 2, 2)

    def pixel(images: torch.Tensor) -> torch.Tensor:
        return images[:, 0, 0, 0]

    reward = harmonic_reward(ink_reward, pixel, 0.5, map_a="cosine", map_b="cosine")
    expected = harmonic_preference_probability(
        torch.tensor(0.75), torch.tensor(0.2), torch.tensor(0.5), torch.tensor(0.5), 0.5, temperature=0.1
    )
    got = Feedback(reward, temperature=0.1).preference_probability(first, second)
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)


def test_exemplar_similarity_hand_computed():
    """f = flatten; x = (1, 0), exemplars (1, 0) and (0, 1): mean cosine = (1 + 0)/2 = 0.5; x = (1, 1): (0.7071 +
    0.7071)/2 = 0.7071; x = (-1, 0): (-1 + 0)/2 = -0.5."""
    exemplars = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(2, 1, 1, 2)
    reward = exemplar_similarity(lambda x: x.flatten(1), exemplars)
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]]).view(3, 1, 1, 2)
    assert reward(x).tolist() == pytest.approx([0.5, math.sqrt(0.5), -0.5], abs=1e-6)


def test_like_the_exemplars_and_bright():
    """Exemplars: 20 zeros of the digit set; b = brightness. On the other digits, brightness alone ranks no zero
    in its top 10 (they are 1s and 8s), similarity alone ranks only zeros but dim ones, and the λ = 1/2 harmonic
    reward's top 10 is mostly zeros and brighter than similarity's top 10."""
    images, labels = digits()
    similar = exemplar_similarity(lambda x: x.flatten(1), images[labels == 0][:20])
    pool, pool_labels = images[20:], labels[20:]
    reward = harmonic_reward(similar, ink_reward, 0.5, map_a="cosine", map_b="cosine")

    def top(scores: torch.Tensor) -> torch.Tensor:
        return scores.argsort(descending=True)[:10]

    brightness = ink_reward(pool)
    assert int((pool_labels[top(brightness)] == 0).sum()) == 0
    assert bool((pool_labels[top(similar(pool))] == 0).all())
    harmonic_top = top(reward(pool))
    assert int((pool_labels[harmonic_top] == 0).sum()) >= 5
    assert brightness[harmonic_top].mean() > brightness[top(similar(pool))].mean() + 0.05
