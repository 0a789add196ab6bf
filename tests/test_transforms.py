"""Reward transforms: exact values on hand-computed cases, and the property each paper claims."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.rewards.transforms import (
    RewardStats,
    TransformError,
    apply_transform,
    capped_sum,
    clip_rewards,
    combine_lsc,
    lagrangian_reward,
    lsc_rewards,
    normalize_rewards,
    par_rewards,
    returns_to_go,
    step_clip_rewards,
    step_delta_rewards,
    transform_names,
    update_multipliers,
    whiten_rewards,
)

settings.register_profile("rewardlab", max_examples=60, deadline=None)
settings.load_profile("rewardlab")

finite = st.floats(min_value=-50, max_value=50, allow_nan=False, allow_infinity=False)
reward_lists = st.lists(finite, min_size=2, max_size=20)


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# -- normalisation, clipping, whitening -----------------------------------------------------------------


def test_normalize_exact_values():
    """(3 − 1)/2 = 1 and (0 − 1)/2 = −0.5."""
    assert normalize_rewards(t([3.0, 0.0]), mean=1.0, std=2.0).tolist() == [1.0, -0.5]
    with pytest.raises(ValueError, match="std must be a positive"):
        normalize_rewards(t([1.0]), mean=0.0, std=0.0)


@given(reward_lists, finite, st.floats(min_value=0.01, max_value=10))
def test_normalize_with_the_data_statistics_gives_mean_zero_std_one(values, shift, scale):
    """Rewards whose mean and std are the saved statistics come out with mean 0 and std 1, in order."""
    rewards = t(values) * scale + shift
    if rewards.std(unbiased=False) < 1e-6:
        return
    out = normalize_rewards(rewards, float(rewards.mean()), float(rewards.std(unbiased=False)))
    assert abs(float(out.mean())) < 1e-9 and abs(float(out.std(unbiased=False)) - 1) < 1e-9
    assert bool((out[rewards.argsort()].diff() >= 0).all())


@given(reward_lists, finite, st.floats(min_value=0, max_value=20))
def test_clip_is_bounded_idempotent_and_identity_inside(values, low, width):
    high = low + width
    rewards = t(values)
    out = clip_rewards(rewards, low, high)
    assert bool(((out >= low) & (out <= high)).all())
    assert torch.equal(clip_rewards(out, low, high), out)
    inside = (rewards >= low) & (rewards <= high)
    assert torch.equal(out[inside], rewards[inside])


@given(reward_lists, finite, st.floats(min_value=0.01, max_value=100))
def test_whitening_ignores_the_reward_models_shift_and_scale(values, shift, scale):
    """A Bradley-Terry model is defined up to shift and scale; whitened rewards are not affected."""
    rewards = t(values)
    if rewards.std(unbiased=False) < 0.1:
        return  # ε = 1e-8 in the denominator is then negligible even after scaling by 0.01
    out = whiten_rewards(rewards)
    assert abs(float(out.mean())) < 1e-9 and abs(float(out.pow(2).mean().sqrt()) - 1) < 1e-6
    assert torch.allclose(whiten_rewards(rewards * scale + shift), out, atol=1e-5)


# -- LSC: log-sigmoid centring, and sums as a logical AND ----------------------------------------------------


def test_lsc_exact_values():
    """log σ(0) = −log 2; log σ(r − r_ref) = −log(1 + e^{−(r − r_ref)}), e.g. log σ(2) = −0.126928."""
    out = lsc_rewards(t([1.0, 3.0]), t([1.0, 1.0]))
    assert out[0].item() == pytest.approx(-math.log(2), abs=1e-12)
    assert out[1].item() == pytest.approx(-math.log1p(math.exp(-2)), abs=1e-12)


def test_lsc_sum_ranks_good_on_all_above_excellent_on_one_bad_on_another():
    """Reply A is somewhat better than the reference on helpfulness and harmlessness (+1, +1);
    reply B is far better on helpfulness (+10) but worse on harmlessness (−3).

    Plain sum: A = 2 < B = 7, so B wins. LSC: A = 2 log σ(1) = −0.627, B = log σ(10) + log σ(−3)
    = −0.0000454 − 3.0486 = −3.049, so A wins: the sum behaves as "good on both".
    """
    references = t([[0.0, 0.0], [0.0, 0.0]])
    rewards = t([[1.0, 1.0], [10.0, -3.0]])
    plain = rewards.sum(-1)
    lsc = combine_lsc(rewards, references)
    assert plain[1] > plain[0]
    assert lsc[0] > lsc[1]
    assert lsc[0].item() == pytest.approx(2 * math.log(1 / (1 + math.exp(-1))), abs=1e-12)


@given(
    st.lists(st.floats(min_value=0, max_value=30), min_size=2, max_size=2),
    st.floats(min_value=0, max_value=1e4),
    st.floats(min_value=2, max_value=50),
    st.lists(st.floats(min_value=-20, max_value=20), min_size=2, max_size=2),
)
def test_lsc_sum_is_a_logical_and(good_margins, excellent_margin, bad_margin, reference):
    """With two properties, a reply at least as good as the reference on both (margins ≥ 0) always
    outranks one that is excellent on one and clearly bad (margin ≤ −2) on the other.

    Why: Σ log σ(d_i) ≥ 2 log ½ = −1.386 for the first, ≤ log σ(−2) = −2.127 for the second.
    """
    references = t([reference, reference])
    good = t(reference) + t(good_margins)
    mixed = t(reference) + t([excellent_margin, -bad_margin])
    lsc = combine_lsc(torch.stack([good, mixed]), references)
    assert lsc[0] > lsc[1]


@given(reward_lists, finite)
def test_lsc_is_negative_monotone_and_concave(values, reference):
    rewards = t(sorted(values))
    out = lsc_rewards(rewards, torch.full_like(rewards, reference))
    assert bool((out <= 0).all())
    assert bool((out.diff() >= 0).all())
    # the gain of one more unit of reward never grows: improving poor replies counts most
    gains = lsc_rewards(rewards + 1, torch.full_like(rewards, reference)) - out
    assert bool((gains.diff() <= 1e-12).all())


# -- PAR: σ(r − r_ref) ------------------------------------------------------------------------------------


def test_par_exact_values():
    """σ(0) = ½; with references 0 and 2 for r = 1: (σ(1) + σ(−1))/2 = ½ exactly."""
    assert par_rewards(t([1.0]), t([1.0])).tolist() == [0.5]
    assert par_rewards(t([1.0]), t([[0.0, 2.0]])).item() == pytest.approx(0.5, abs=1e-15)


@given(reward_lists, st.lists(finite, min_size=1, max_size=5))
def test_par_is_bounded_monotone_and_saturates(values, reference_values):
    rewards = t(sorted(values))
    references = t(reference_values).expand(len(values), -1)
    out = par_rewards(rewards, references)
    assert bool(((out >= 0) & (out <= 1)).all())
    assert bool((out.diff() >= 0).all())
    # the gain saturates: far above every reference one more unit of reward adds almost nothing
    top = max(reference_values) + 40
    high = par_rewards(t([top, top + 1]), references[:2])
    assert float(high[1] - high[0]) < 1e-15 + 1e-17 * top
    # ... while near the reference it adds a lot (σ(1) − σ(0) ≈ 0.23 for one reference)
    if len(reference_values) == 1:
        near = par_rewards(t([reference_values[0], reference_values[0] + 1]), references[:2])
        assert float(near[1] - near[0]) > 0.2


# -- process rewards: Clip and Delta --------------------------------------------------------------------------


def test_step_transforms_exact_values():
    """Steps 0.7, 0.2, 0.4, 0.8 with η = 0.5: Clip gives 0, −0.3, −0.1, 0; Delta gives 0.5, −0.2, −0.4, 0."""
    steps = t([0.7, 0.2, 0.4, 0.8])
    assert torch.allclose(step_clip_rewards(steps, 0.5), t([0.0, -0.3, -0.1, 0.0]), atol=1e-15)
    assert torch.allclose(step_delta_rewards(steps), t([0.5, -0.2, -0.4, 0.0]), atol=1e-15)


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=60), st.floats(min_value=0, max_value=1))
def test_step_returns_stay_bounded_however_long_the_trajectory(values, eta):
    """Gao et al.'s point: repeating good-looking steps must not raise the return without bound.

    Raw process rewards in [0, 1] give returns up to T; Clip returns are ≤ 0; Delta returns
    telescope to r_t − r_T, inside [−1, 1] whatever T.
    """
    steps = t(values)
    assert bool((returns_to_go(step_clip_rewards(steps, eta)) <= 0).all())
    delta_returns = returns_to_go(step_delta_rewards(steps))
    assert torch.allclose(delta_returns, steps - steps[-1], atol=1e-12)
    assert bool((delta_returns.abs() <= 1 + 1e-12).all())
    # repeating a step k times does not change the Delta return of the whole trajectory
    repeated = t([values[0]] * 5 + values)
    assert returns_to_go(step_delta_rewards(repeated))[0].item() == pytest.approx(delta_returns[0].item(), abs=1e-12)


# -- constrained composition ---------------------------------------------------------------------------------


def test_capped_sum_exact_values():
    """min(3, 2) + min(1, 5) = 3; weighted by (2, 1): 2·2 + 1 = 5."""
    components, thresholds = t([[3.0, 1.0]]), t([2.0, 5.0])
    assert capped_sum(components, thresholds).tolist() == [3.0]
    assert capped_sum(components, thresholds, t([2.0, 1.0])).tolist() == [5.0]


@given(
    st.lists(finite, min_size=3, max_size=3),
    st.lists(finite, min_size=3, max_size=3),
    st.floats(min_value=0.1, max_value=100),
    st.integers(0, 2),
)
def test_capped_sum_stops_counting_past_each_threshold(values, thresholds, more, component):
    before = t([values])
    after = before.clone()
    after[0, component] += more
    gain = capped_sum(after, t(thresholds)) - capped_sum(before, t(thresholds))
    if values[component] >= thresholds[component]:
        assert gain.item() == 0.0
    elif values[component] + more <= thresholds[component]:
        assert gain.item() == pytest.approx(more, abs=1e-9)


def test_lagrangian_multiplier_rises_over_threshold_and_rests_at_zero_under_it():
    """Component 0 averages 3 against θ = 1 (over by 2), component 1 averages 0 against θ = 1.

    One step with lr 0.5 from λ = (0, 0.2): λ_0 = 0 + 0.5·2 = 1, λ_1 = max(0, 0.2 − 0.5) = 0. With
    λ_0 = 1 the first component no longer counts: the reward is r_1 + λ_0 θ_0 = r_1 + 1.
    """
    components, thresholds = t([[2.0, 0.0], [4.0, 0.0]]), t([1.0, 1.0])
    multipliers = update_multipliers(t([0.0, 0.2]), components, thresholds, lr=0.5)
    assert multipliers.tolist() == [1.0, 0.0]
    rewards = lagrangian_reward(t([[2.0, 5.0], [40.0, 5.0]]), thresholds, multipliers)
    assert rewards.tolist() == [6.0, 6.0]


# -- by name -------------------------------------------------------------------------------------------------


def test_apply_transform_by_name_and_its_errors():
    assert apply_transform("clip", [-5.0, 0.5, 5.0], args={"low": -1, "high": 1}) == [-1.0, 0.5, 1.0]
    assert apply_transform("normalize", [3.0], stats=RewardStats(1.0, 2.0)) == [1.0]
    assert apply_transform("normalize", [3.0], args={"mean": 0, "std": 3}, stats=RewardStats(1.0, 2.0)) == [1.0]
    assert apply_transform("par", [1.0, 1.0], references=[[1.0, 1.0], [0.0, 2.0]]) == pytest.approx([0.5, 0.5])
    assert apply_transform("step_delta", [0.7, 0.2]) == pytest.approx([0.5, 0.0])
    assert set(transform_names()) == {"normalize", "clip", "whiten", "lsc", "par", "step_clip", "step_delta"}
    assert apply_transform("Step-Clip", [0.5], args={"eta": 0.2}) == pytest.approx([0.0])  # names as everywhere
    cases = [
        (("nope", [1.0]), {}, "transform: unknown transform 'nope'; registered transforms: clip, lsc"),
        (("clip", [1.0]), {"args": {"lo": 1}}, "unknown option 'lo' for 'clip' (options: low, high)"),
        (("clip", [1.0]), {"args": {"low": "x"}}, "option 'low' must be a finite number"),
        (("clip", [1.0]), {"args": {"low": 2, "high": 1}}, "low must not exceed high"),
        (("step_clip", [1.0]), {}, "'step_clip' needs the option 'eta'"),
        (("normalize", [1.0]), {}, "this model has none saved"),
        (("lsc", [1.0]), {}, "items.reference: 'lsc' needs a reference reward for every reply"),
        (("lsc", [1.0]), {"references": [[0.0, 1.0]]}, "takes exactly one reference per item"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(TransformError, match=message.replace("(", r"\(").replace(")", r"\)")):
            apply_transform(*args, **kwargs)
