"""DRAGON and the set-level measures: hand-computed values, and on a two-mode toy (all-bright vs all-dark
4×4 images) the paper's point that a distribution-level reward steers the set's mix to a target while a
per-sample reward overshoots it."""

import math

import pytest
import torch
from diffusion_toys import two_mode_denoiser

from rewardlab.diffusion.align import AlignConfig, Feedback, align
from rewardlab.diffusion.denoiser import Denoiser, UNetSize, small_unet
from rewardlab.diffusion.distribution import class_mix_distance, frechet_distance, mean_pairwise_distance, vendi_score
from rewardlab.diffusion.methods.dragon import Dragon, demonstration_pairs, leave_one_out_contributions
from rewardlab.diffusion.sampling import sample

pytestmark = pytest.mark.usefixtures("one_thread")

torch.set_num_threads(1)


# --- distribution measures -------------------------------------------------------------------------------


def test_frechet_distance_of_identical_sets_is_zero():
    features = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_hand_computed():
    """a = (±1, 0), (0, ±2): μ = 0, Σ = diag(2/3, 8/3) (unbiased); b = 2a + (1, 1): μ = (1, 1),
    Σ = diag(8/3, 32/3). The covariances commute, so FD = ‖Δμ‖² + Σ_k (√λ_a - √λ_b)²
    = 2 + (√(2/3) - √(8/3))² + (√(8/3) - √(32/3))² = 2 + 2/3 + 8/3 = 16/3."""
    a = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    b = 2 * a + torch.tensor([1.0, 1.0])
    assert frechet_distance(a, b) == pytest.approx(16 / 3, abs=1e-6)
    assert frechet_distance(b, a) == pytest.approx(16 / 3, abs=1e-6)


def test_frechet_distance_matches_the_gaussian_closed_form():
    """N(0, I) vs N(μ, 4I) in 2-D: FD = ‖μ‖² + 2·(1 - 2)² = 5 + 2 = 7 (up to sampling error)."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(20000, 2, generator=g, dtype=torch.float64)
    b = 2 * torch.randn(20000, 2, generator=g, dtype=torch.float64) + torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert frechet_distance(a, b) == pytest.approx(7.0, abs=0.15)


def test_vendi_score_counts_distinct_items():
    """Identical items: K/n = (1/n)·11ᵀ, one eigenvalue 1 → VS = 1. Orthogonal items: K/n = I/n, n eigenvalues
    1/n → VS = exp(log n) = n. Two equal halves along e1 and e2: eigenvalues ½, ½ → VS = 2."""
    assert vendi_score(torch.ones(6, 4)) == pytest.approx(1.0, abs=1e-6)
    assert vendi_score(torch.eye(5)) == pytest.approx(5.0, abs=1e-6)
    halves = torch.cat([torch.tensor([[1.0, 0.0]]).repeat(3, 1), torch.tensor([[0.0, 2.0]]).repeat(3, 1)])
    assert vendi_score(halves) == pytest.approx(2.0, abs=1e-6)
    with pytest.raises(ValueError, match="all zeros"):
        vendi_score(torch.zeros(2, 3))


def test_mean_pairwise_distance_hand_computed():
    """(0,0), (3,4), (0,0): distances 5, 0, 5 → mean 10/3."""
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    assert mean_pairwise_distance(x) == pytest.approx(10 / 3, abs=1e-6)


def test_class_mix_distance_is_total_variation():
    """Rows (1,0),(0,1),(1,0),(1,0): mix (¾, ¼); vs (½, ½) TV = ½(¼ + ¼) = ¼. Soft rows (.6,.4),(.2,.8): mean
    (.4, .6); vs (1, 0) TV = ½(.6 + .6) = .6. Hard labels of the same rows: (½, ½) → TV ½."""
    hard_rows = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    assert class_mix_distance(hard_rows, [0.5, 0.5]) == pytest.approx(0.25)
    soft = torch.tensor([[0.6, 0.4], [0.2, 0.8]])
    assert class_mix_distance(soft, [1.0, 0.0]) == pytest.approx(0.6)
    assert class_mix_distance(soft, [1.0, 0.0], hard=True) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="sum to 1"):
        class_mix_distance(soft, [0.5, 0.6])
    with pytest.raises(ValueError, match="3 classes"):
        class_mix_distance(soft, [0.2, 0.3, 0.5])


# --- DRAGON's pieces ---------------------------------------------------------------------------------------


def constant_images(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()


def test_leave_one_out_contributions_hand_computed():
    """R(S) = mean pixel of the set. S = {1, 2, 3, 6}: R = 3. Without 1: 11/3 → c = 3 - 11/3 = -2/3; without 2:
    10/3 → -1/3; without 3: 3 → 0; without 6: 2 → 1."""
    contributions = leave_one_out_contributions(constant_images([1, 2, 3, 6]), lambda x: float(x.mean()))
    assert contributions.tolist() == pytest.approx([-2 / 3, -1 / 3, 0.0, 1.0], abs=1e-6)


def test_demonstration_pairs_pair_best_with_worst_and_drop_ties():
    """8 scores, fraction ¼ → k = 2: D⁺ = {1 (0.9), 6 (0.8)}, D⁻ = {0 (0.1), 5 (0.2)}; pairs (1, 0), (6, 5)."""
    scores = torch.tensor([0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4])
    positive, negative = demonstration_pairs(scores, 0.25)
    assert positive.tolist() == [1, 6] and negative.tolist() == [0, 5]
    tied = demonstration_pairs(torch.tensor([1.0, 1.0, 1.0, 0.0]), 0.5)
    assert tied[0].tolist() == [0] and tied[1].tolist() == [3]  # the (1, 1) pair carries no preference


def tiny_denoiser() -> Denoiser:
    torch.manual_seed(0)
    return Denoiser(small_unet(4, 1, UNetSize(channels=(4, 8))), train_steps=50)


def test_loss_at_the_reference_is_log_two():
    """Policy = reference: both error differences are 0, so each pair's loss is -log σ(0) = log 2."""
    policy = tiny_denoiser()
    config = AlignConfig(method="dragon", batch_size=8, sampling_steps=2)
    feedback = Feedback(reward=lambda x: x.flatten(1).mean(1))
    method = Dragon()
    with torch.no_grad():
        batch = method.collect(policy, policy, feedback, config, torch.Generator().manual_seed(0))
    assert batch.winners.shape[0] == 2 and bool((batch.score_gap > 0).all())
    assert float(method.loss(policy, policy.copy(), batch, config).detach()) == pytest.approx(math.log(2), abs=1e-5)


@pytest.mark.parametrize(
    ("options", "feedback", "message"),
    [
        ({"fractoin": 0.2}, Feedback(reward=lambda x: x.mean((1, 2, 3))), "no option"),
        ({"fraction": 0.6}, Feedback(reward=lambda x: x.mean((1, 2, 3))), "fraction must be in"),
        ({}, Feedback(), "needs a reward"),
    ],
)
def test_bad_settings_are_rejected(options, feedback, message):
    config = AlignConfig(method="dragon", batch_size=4, sampling_steps=1, options=options)
    with pytest.raises(ValueError, match=message), torch.no_grad():
        Dragon().collect(tiny_denoiser(), tiny_denoiser(), feedback, config, torch.Generator().manual_seed(0))


# --- the paper's claim on a two-mode toy ------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_base() -> Denoiser:
    return two_mode_denoiser()


def bright_fraction(denoiser: Denoiser) -> float:
    images = sample(denoiser, 256, 5, 1.0, generator=torch.Generator().manual_seed(123)).images
    return float((images.flatten(1).mean(1) > 0).float().mean())


TARGET_BRIGHT = 0.75


def mix_reward(images: torch.Tensor) -> float:
    """-TV(class mix, 75 % bright / 25 % dark); a toy image's class is the sign of its mean."""
    bright = (images.flatten(1).mean(1) > 0).float()
    return -class_mix_distance(torch.stack([bright, 1 - bright], 1), [TARGET_BRIGHT, 1 - TARGET_BRIGHT])


def dragon(base: Denoiser, feedback: Feedback) -> float:
    config = AlignConfig(
        method="dragon", updates=50, batch_size=32, sampling_steps=5, beta=50.0, learning_rate=1e-3, seed=0
    )
    return bright_fraction(align(base.copy(), feedback, config, progress=False).policy)


def test_set_reward_steers_the_mix_to_its_target(toy_base):
    """The base is about half bright; DRAGON on -TV(mix, 75/25) brings the bright fraction near 0.75."""
    before = bright_fraction(toy_base)
    assert 0.3 < before < 0.7  # the base keeps both modes
    after = dragon(toy_base, Feedback(set_reward=mix_reward))
    assert abs(after - TARGET_BRIGHT) < abs(before - TARGET_BRIGHT) - 0.1, (before, after)
    assert abs(after - TARGET_BRIGHT) < 0.15, (before, after)


def test_per_sample_reward_overshoots_the_target(toy_base):
    """The same run with r(x) = brightness: every bright image beats every dark one, so the mix runs past 0.75."""
    after = dragon(toy_base, Feedback(reward=lambda x: x.flatten(1).mean(1)))
    assert after > TARGET_BRIGHT + 0.1, after
