"""Inpainting and PrefPaint: masks and the condition against hand-built tensors, sampling that keeps the known
pixels, PrefPaint's loss, advantages and confidence weight against hand-computed values, and the property the
method exists for: aligning an inpainting model with a reward on the hole moves the holes toward that reward."""

import math

import pytest
import torch

from rewardlab.diffusion.align import ALIGN_METHODS, AlignConfig, Feedback, align
from rewardlab.diffusion.base_training import BaseConfig, train_base
from rewardlab.diffusion.denoiser import Denoiser, UNetSize, small_unet
from rewardlab.diffusion.inpainting import (
    box_mask,
    inpaint,
    inpaint_chain,
    inpainting_condition,
    paste,
)
from rewardlab.diffusion.methods.prefpaint import (
    PrefPaintBatch,
    chain_log_probs,
    confidence_weight,
    confidence_width,
    feature_precision,
    grouped_advantages,
    normalised_advantages,
    prefpaint_alpha_for,
    prefpaint_loss,
)
from rewardlab.diffusion.sampling import step_log_prob

TINY = UNetSize(channels=(8, 16), extra_channels=2)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_inpainter(seed: int = 0) -> Denoiser:
    torch.manual_seed(seed)
    return Denoiser(small_unet(4, 1, TINY), 100)


def toy(n: int, seed: int) -> torch.Tensor:
    """4×4 images: a random ±1 top half, and a bottom half all +1 (bright) or all -1 (dark), each with
    probability ½ and independent of the top: a base model should fill a bottom hole bright half the time."""
    g = torch.Generator().manual_seed(seed)
    top = torch.randint(0, 2, (n, 1, 2, 4), generator=g).float() * 2 - 1
    bright = torch.randint(0, 2, (n,), generator=g).float() * 2 - 1
    return torch.cat([top, bright.view(n, 1, 1, 1).expand(n, 1, 2, 4)], 2)


def hole_brightness(images: torch.Tensor) -> torch.Tensor:
    return images[..., 2:, :].flatten(1).mean(1)


# masks and the condition


def test_half_and_centre_masks_hand_checked():
    """4×4: bottom = rows 2-3, right = columns 2-3, centre = rows 1-2 × columns 1-2 (side 4/2 from 4/4);
    8×8 centre = rows 2-5 × columns 2-5."""
    bottom = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.float32)
    centre = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(box_mask((2, 1, 4, 4), "bottom"), bottom.expand(2, 1, 4, 4))
    assert torch.equal(box_mask((1, 3, 4, 4), "right")[0, 0], bottom.T)
    assert torch.equal(box_mask((1, 1, 4, 4), "centre")[0, 0], centre)
    big = box_mask((1, 1, 8, 8), "centre")[0, 0]
    assert big.sum() == 16 and big[2:6, 2:6].sum() == 16


def test_random_boxes_are_one_box_of_bounded_size():
    """Random boxes on 8×8: sides in [⌈8/4⌉, ⌈24/4⌉] = [2, 6], so the hole is the product of its row and column
    extents; mixed masks are each one of the four kinds."""
    g = torch.Generator().manual_seed(0)
    masks = box_mask((64, 1, 8, 8), "random", g)[:, 0]
    rows, cols = masks.amax(2).sum(1), masks.amax(1).sum(1)
    assert torch.equal(masks.sum((1, 2)), rows * cols)
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6
    assert len({tuple(m.flatten().tolist()) for m in masks}) > 10  # positions and sizes vary
    fixed = [box_mask((1, 1, 8, 8), k)[0, 0] for k in ("bottom", "right", "centre")]
    mixed = box_mask((64, 1, 8, 8), "mixed", g)[:, 0]
    is_fixed = [any(torch.equal(m, f) for f in fixed) for m in mixed]
    assert 0 < sum(is_fixed) < 64
    for m in mixed:
        assert m.sum() == m.amax(1).sum() * m.amax(0).sum()  # a single box


def test_condition_is_masked_image_and_mask():
    """Image [[0.5, -1], [1, 0.2]], hole = the right column: channels = [[0.5, 0], [1, 0]] and the mask."""
    image = torch.tensor([[[[0.5, -1.0], [1.0, 0.2]]]])
    mask = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    channels = inpainting_condition(image, mask).channels
    assert channels is not None and channels.shape == (1, 2, 2, 2)
    assert torch.equal(channels[0, 0], torch.tensor([[0.5, 0.0], [1.0, 0.0]]))
    assert torch.equal(channels[0, 1], mask[0, 0])
    filled = paste(torch.full_like(image, 9.0), image, mask)
    assert torch.equal(filled[0, 0], torch.tensor([[0.5, 9.0], [1.0, 9.0]]))


def test_bad_mask_inputs_are_value_errors():
    images = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="mask kind"):
        box_mask(images.shape, "left")
    with pytest.raises(ValueError, match="at least 2"):
        box_mask((1, 1, 1, 4), "bottom")
    with pytest.raises(ValueError, match="masks must be"):
        inpainting_condition(images, torch.zeros(2, 1, 4, 3))
    with pytest.raises(ValueError, match="only 0"):
        inpainting_condition(images, torch.full((2, 1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="condition channels"):
        inpaint(Denoiser(small_unet(4, 1, UNetSize(channels=(8, 16))), 100), images, box_mask(images.shape, "bottom"))
    with pytest.raises(ValueError, match="mask must be one of"):
        BaseConfig(mask="left")


def test_inpaint_keeps_known_pixels_exactly():
    """Only the hole changes: every known pixel of the output is bit-identical to the source; the chain's own
    final image (before pasting) does change them."""
    denoiser = tiny_inpainter()
    images = toy(8, seed=3)
    masks = box_mask(images.shape, "mixed", torch.Generator().manual_seed(1))
    chain, out = inpaint_chain(denoiser, images, masks, steps=4, generator=torch.Generator().manual_seed(2))
    known = masks == 0
    assert torch.equal(out[known], images[known])
    assert not torch.equal(out[~known], images[~known])
    assert not torch.equal(chain.images[known], images[known])
    again = inpaint(denoiser, images, masks, steps=4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(again, out)


# PrefPaint's maths


def test_prefpaint_loss_hand_computed():
    """A = [1, -2], w = [2, 1], ε = 0.2, ratios [[1, 1.5], [0.5, 1]]:
    sample 0: max(-1·1, -1·1) = -1; max(-1.5, -1·1.2) = -1.2; × w = 2 → -2, -2.4;
    sample 1: max(2·0.5, 2·0.8) = 1.6; max(2, 2) = 2; × w = 1 → 1.6, 2;
    L = (-2 - 2.4 + 1.6 + 2) / 4 = -0.2."""
    log_ratio = torch.tensor([[0.0, math.log(1.5)], [math.log(0.5), 0.0]])
    loss = prefpaint_loss(log_ratio, torch.tensor([1.0, -2.0]), torch.tensor([2.0, 1.0]), clip_range=0.2)
    assert loss.item() == pytest.approx(-0.2, abs=1e-6)


def test_prefpaint_loss_gradient_is_weighted_policy_gradient_and_clip_stops_it():
    """At ρ = 1: ∂L/∂log ρ_ik = -w_i·A_i / (N·K) → with A = [1, -2], w = [2, 1], N·K = 4: [-0.5, 0.5].
    At ρ = 1.5 > 1 + ε with A > 0 the clipped branch is the max, so no gradient flows (PPO's trust region);
    at ρ = 0.5 with A = 1 the unclipped branch is the max: gradient -A·ρ/(N·K) = -0.5/2 = -0.25."""
    log_ratio = torch.zeros(2, 2, requires_grad=True)
    prefpaint_loss(log_ratio, torch.tensor([1.0, -2.0]), torch.tensor([2.0, 1.0]), 0.2).backward()
    assert log_ratio.grad is not None
    assert log_ratio.grad.flatten().tolist() == pytest.approx([-0.5, -0.5, 0.5, 0.5], abs=1e-6)
    outside = torch.tensor([[math.log(1.5), math.log(0.5)]], requires_grad=True)
    prefpaint_loss(outside, torch.tensor([1.0]), torch.tensor([1.0]), 0.2).backward()
    assert outside.grad is not None
    assert outside.grad.flatten().tolist() == pytest.approx([0.0, -0.25], abs=1e-6)


def test_advantages_hand_computed():
    """r = [1, 2, 3]: mean 2, std 1 → A = [-1, 0, 1]; clipped to ±0.5 → [-0.5, 0, 0.5]."""
    assert normalised_advantages(torch.tensor([1.0, 2.0, 3.0]), 10.0).tolist() == pytest.approx([-1, 0, 1], abs=1e-6)
    assert normalised_advantages(torch.tensor([1.0, 2.0, 3.0]), 0.5).tolist() == pytest.approx([-0.5, 0, 0.5])
    with pytest.raises(ValueError, match="at least 2"):
        normalised_advantages(torch.tensor([1.0]), 10.0)


def test_grouped_advantages_hand_computed():
    """Groups of 2: [1, 3] → mean 2, std √2 → ∓0.7071068; [5, 5] → std 0 → 0, 0 (no signal within the group),
    although over the whole batch the second group would look better than the first."""
    a = grouped_advantages(torch.tensor([1.0, 3.0, 5.0, 5.0]), 2, 10.0)
    assert a.tolist() == pytest.approx([-0.7071068, 0.7071068, 0.0, 0.0], abs=1e-6)
    with pytest.raises(ValueError, match="group_size"):
        grouped_advantages(torch.tensor([1.0, 2.0, 3.0]), 2, 10.0)


def test_confidence_width_and_weight_hand_computed():
    """Training features [1, 0], [0, 1], ridge 1: V = I + ZᵀZ = 2I, V⁻¹ = ½I.
    z = [1, 0]: b = √(½) = 0.7071068; α = 0.5, β = 0.7: w = exp(-0.3535534 + 0.7) = exp(0.3464466) = 1.4140340.
    z = [2, 0]: b = √2; w = exp(-0.7071068 + 0.7) < 1 → clamped to 1.
    z = 0: b = 0, w = e^0.7 = 2.0137527 (under w_max 2.21), and 1.5 with w_max = 1.5."""
    precision = feature_precision(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), ridge=1.0)
    assert precision.flatten().tolist() == pytest.approx([0.5, 0.0, 0.0, 0.5], abs=1e-6)
    width = confidence_width(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 0.0]]), precision)
    assert width.tolist() == pytest.approx([0.7071068, math.sqrt(2), 0.0], abs=1e-6)
    assert confidence_weight(width, 0.5, 0.7, 2.21).tolist() == pytest.approx([1.4140340, 1.0, 2.0137527], abs=1e-6)
    assert confidence_weight(width, 0.5, 0.7, 1.5)[2].item() == pytest.approx(1.5)
    assert prefpaint_alpha_for(math.sqrt(2), beta=0.7) == pytest.approx(0.7 / math.sqrt(2))


def test_confidence_width_is_large_off_the_training_features():
    """The bound's point: features the reward model was trained on (along e₁, many times) give a small width,
    a direction it never saw (e₂) a width near 1/√λ, so the first is weighted up and the second is not."""
    g = torch.Generator().manual_seed(0)
    train = torch.stack([torch.randn(200, generator=g), 0.01 * torch.randn(200, generator=g)], 1)
    precision = feature_precision(train, ridge=1.0)
    width = confidence_width(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), precision)
    assert width[0] < 0.1 < 0.9 < width[1]
    weight = confidence_weight(width, alpha=prefpaint_alpha_for(0.9), beta=0.7, max_weight=2.21)
    assert weight[0] > 1.8 and weight[1] == 1.0


def test_batched_chain_log_probs_match_per_step():
    """One denoiser call over every step gives the per-step log π of ``step_log_prob`` (float rounding aside)."""
    denoiser = tiny_inpainter()
    images = toy(4, seed=5)
    masks = box_mask(images.shape, "bottom")
    chain, _ = inpaint_chain(denoiser, images, masks, steps=4, generator=torch.Generator().manual_seed(0))
    condition = inpainting_condition(images, masks)
    batched = chain_log_probs(denoiser, chain, torch.tensor([0, 2]), 1.0, condition)
    single = torch.stack([step_log_prob(denoiser, chain, k, 1.0, condition) for k in (0, 2)], 1)
    assert batched.shape == (4, 2)
    assert torch.allclose(batched, single, atol=1e-3, rtol=1e-5)
    assert torch.allclose(batched, torch.stack([chain.log_probs[0], chain.log_probs[2]], 1), atol=1e-3, rtol=1e-5)


# the method


def test_collect_builds_conditions_scores_and_weights():
    """A batch of on-policy inpaintings of the given sources: known pixels pasted, the reward model's weight
    per sample as the formula gives it, and at the sampling policy (ρ = 1) the loss is -mean(w·A)."""
    denoiser = tiny_inpainter()
    sources = toy(16, seed=6)
    features = lambda x: x.flatten(1)[:, 8:10]  # noqa: E731  (two pixels of the hole as "features")
    precision = feature_precision(sources.flatten(1)[:, 8:10], ridge=1.0)
    options = {"images": sources, "mask": "bottom", "features": features, "precision": precision, "alpha": 1.0}
    config = AlignConfig(method="prefpaint", batch_size=6, sampling_steps=4, options=options)
    method = ALIGN_METHODS.get("prefpaint")
    with torch.no_grad():
        batch = method.collect(denoiser, denoiser, Feedback(reward=hole_brightness), config, torch.Generator())
    assert isinstance(batch, PrefPaintBatch)
    assert batch.images.shape == (6, 1, 4, 4) and batch.steps.tolist() == [0, 1, 2]
    assert all(any(torch.equal(img[:, :2], s[:, :2]) for s in sources) for img in batch.images)
    assert torch.equal(batch.rewards, hole_brightness(batch.images))
    expected = confidence_weight(confidence_width(features(batch.images), precision), 1.0, 0.7, 2.21)
    assert torch.allclose(batch.weights, expected)
    loss = method.loss(denoiser, denoiser, batch, config)
    assert loss.item() == pytest.approx(-(batch.weights * batch.advantages).mean().item(), abs=1e-5)


def test_source_reward_reads_the_source_index():
    """options['source_reward'] gets the inpaintings and which source each completes (e.g. its label)."""
    denoiser = tiny_inpainter()
    sources = toy(5, seed=7)
    seen: list[torch.Tensor] = []

    def reward(images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        seen.append(index)
        return index.float()

    config = AlignConfig(method="prefpaint", batch_size=8, sampling_steps=3,
                         options={"images": sources, "source_reward": reward})  # fmt: skip
    with torch.no_grad():
        batch = ALIGN_METHODS.get("prefpaint").collect(denoiser, denoiser, Feedback(), config, torch.Generator())
    index = seen[0]
    assert torch.equal(batch.rewards, index.float())
    assert batch.condition.channels is not None
    masks = batch.condition.channels[:, 1:]
    assert torch.equal(batch.condition.channels[:, :1], sources[index] * (1 - masks))
    known = masks == 0
    assert torch.equal(batch.images[known], sources[index][known])


def test_groups_share_source_and_mask():
    """group_size 3, batch 6: two sources, each inpainted three times under one mask; A is normalised per group."""
    denoiser = tiny_inpainter()
    sources = toy(10, seed=8)
    seen: list[torch.Tensor] = []

    def reward(images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        seen.append(index)
        return hole_brightness(images)

    options = {"images": sources, "source_reward": reward, "group_size": 3, "mask": "random"}
    config = AlignConfig(method="prefpaint", batch_size=6, sampling_steps=3, options=options)
    with torch.no_grad():
        batch = ALIGN_METHODS.get("prefpaint").collect(denoiser, denoiser, Feedback(), config, torch.Generator())
    index = seen[0].tolist()
    assert index[0] == index[1] == index[2] and index[3] == index[4] == index[5]
    assert batch.condition.channels is not None
    masks = batch.condition.channels[:, 1:]
    assert torch.equal(masks[0], masks[2]) and torch.equal(masks[3], masks[5])
    assert torch.allclose(batch.advantages, grouped_advantages(batch.rewards, 3, 10.0))


@pytest.mark.parametrize(
    ("options", "config_change", "message"),
    [
        ({}, {}, "options\\['images'\\]"),
        ({"images": torch.zeros(3, 1, 8, 8)}, {}, "options\\['images'\\]"),
        ({"images": torch.zeros(3, 1, 4, 4), "ratio": 2}, {}, "no option 'ratio'"),
        ({"images": torch.zeros(3, 1, 4, 4), "mask": "left"}, {}, "options\\['mask'\\]"),
        ({"images": torch.zeros(3, 1, 4, 4), "features": lambda x: x}, {}, "give both"),
        ({"images": torch.zeros(3, 1, 4, 4), "train_steps": 4}, {}, "train_steps"),
        ({"images": torch.zeros(3, 1, 4, 4), "clip_range": 1.5}, {}, "clip_range"),
        ({"images": torch.zeros(3, 1, 4, 4), "group_size": 3}, {}, "group_size"),
        ({"images": torch.zeros(3, 1, 4, 4)}, {"eta": 0.0}, "eta"),
        ({"images": torch.zeros(3, 1, 4, 4), "source_reward": lambda x, i: i.float()}, {}, "exactly one reward"),
    ],
)
def test_bad_options_are_value_errors(options: dict, config_change: dict, message: str) -> None:
    config = AlignConfig(method="prefpaint", batch_size=4, sampling_steps=4, options=options, **config_change)
    with pytest.raises(ValueError, match=message), torch.no_grad():
        feedback = Feedback(reward=hole_brightness)
        ALIGN_METHODS.get("prefpaint").collect(tiny_inpainter(), tiny_inpainter(), feedback, config, torch.Generator())


# the property


@pytest.fixture(scope="module")
def toy_base() -> Denoiser:
    config = BaseConfig(
        updates=200, batch_size=32, learning_rate=3e-3, channels=(8, 16), train_steps=100, mask="bottom"
    )
    return train_base(toy(256, seed=0), config, progress=False)[0]


def test_aligning_to_hole_brightness_fills_holes_bright(toy_base: Denoiser) -> None:
    """The toy's bottom half is bright or dark with probability ½ whatever the top: the base model fills a
    bottom hole bright about half the time. PrefPaint with r = the hole's brightness for 20 updates makes
    bright fillings the rule (measured: 0.48 → 0.96 on these seeds)."""
    sources = toy(256, seed=0)
    held_out = toy(128, seed=1)
    masks = box_mask(held_out.shape, "bottom")

    def bright_fraction(denoiser: Denoiser) -> float:
        filled = inpaint(denoiser, held_out, masks, steps=5, generator=torch.Generator().manual_seed(2))
        return float((hole_brightness(filled) > 0).float().mean())

    before = bright_fraction(toy_base)
    policy = toy_base.copy()
    config = AlignConfig(method="prefpaint", updates=20, batch_size=32, sampling_steps=5, learning_rate=3e-3,
                         options={"images": sources, "mask": "bottom"})  # fmt: skip
    result = align(policy, Feedback(reward=hole_brightness), config, progress=False)
    after = bright_fraction(result.policy)
    assert 0.3 < before < 0.7
    assert after > 0.85 and after - before > 0.25
