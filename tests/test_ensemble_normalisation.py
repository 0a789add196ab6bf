"""Ensemble members on different reward scales are standardised before they are aggregated (issue 27)."""

from __future__ import annotations

import copy

import pytest
import torch

from rewardlab.models.ensemble import RawEnsembleWarning, RewardEnsemble
from rewardlab.models.reward_model import RewardModel
from rewardlab.rewards.aggregate import AGGREGATIONS, aggregate_ensemble, standardise_members

torch.set_num_threads(1)


def test_standardise_members_hand_computed():
    """Member 1: (3 − 1)/2 = 1 and (0 − 1)/2 = −0.5; member 2: (−500 − (−700))/100 = 2 and (−800 + 700)/100 = −1."""
    rewards = torch.tensor([[3.0, -500.0], [0.0, -800.0]])
    z = standardise_members(rewards, [1.0, -700.0], [2.0, 100.0])
    assert z.tolist() == [[1.0, 2.0], [-0.5, -1.0]]


def test_wco_picks_by_both_members_once_normalised():
    """Three replies; in standard units A rates them (2, −1, 0.5) and B (−1, 2, 0.5): the worst case is
    (−1, −1, 0.5), so wco picks reply 3, the one neither member dislikes. B is saved as 100·z − 500:
    raw, its rewards are always the lower ones and wco is B alone, which picks B's favourite, reply 2."""
    z_a, z_b = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-1.0, 2.0, 0.5])
    raw = torch.stack([z_a, 100 * z_b - 500], dim=-1)
    assert int(aggregate_ensemble(raw, "wco")[0].argmax()) == 1  # the old behaviour: B decides
    normalised = standardise_members(raw, [0.0, -500.0], [1.0, 100.0])
    worst, _ = aggregate_ensemble(normalised, "wco")
    assert worst.tolist() == pytest.approx([-1.0, -1.0, 0.5])
    assert int(worst.argmax()) == 2


@pytest.mark.parametrize("method", AGGREGATIONS)
def test_aggregation_is_invariant_to_each_members_affine_rescaling(method):
    """R_m → a_m·R_m + b_m (a_m > 0) with its statistics rescaled alike leaves z_m, and so every
    aggregate and the variance, unchanged."""
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(50, 3, generator=g, dtype=torch.float64)
    means, stds = [0.3, -1.0, 2.0], [1.5, 0.2, 3.0]
    a, b = torch.tensor([100.0, 0.01, 7.0], dtype=torch.float64), torch.tensor([-500.0, 3.0, 0.0], dtype=torch.float64)
    rescaled = rewards * a + b
    new_means = (torch.tensor(means, dtype=torch.float64) * a + b).tolist()
    new_stds = (torch.tensor(stds, dtype=torch.float64) * a).tolist()
    before = aggregate_ensemble(standardise_members(rewards, means, stds), method, 0.5)
    after = aggregate_ensemble(standardise_members(rescaled, new_means, new_stds), method, 0.5)
    for x, y in zip(before, after, strict=True):
        torch.testing.assert_close(x, y)


def test_standardise_members_refuses_bad_statistics():
    with pytest.raises(ValueError, match="one mean and one std per member"):
        standardise_members(torch.zeros(4, 2), [0.0], [1.0])
    with pytest.raises(ValueError, match="std > 0"):
        standardise_members(torch.zeros(4, 2), [0.0, 0.0], [1.0, 0.0])


@pytest.fixture(scope="module")
def members(tiny_encoder_dir) -> tuple[RewardModel, RewardModel]:
    """A member and its copy with the head's rewards scaled by 100 and shifted by 7, statistics alike."""
    torch.manual_seed(0)
    a = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=32)
    a.model.classifier.weight.data *= 50
    b = RewardModel(copy.deepcopy(a.model), a.tokenizer, copy.deepcopy(a.info))
    b.model.classifier.weight.data *= 100
    b.model.classifier.bias.data = 100 * b.model.classifier.bias.data + 7
    scores = torch.tensor(a.score(["q"] * 4, ["one", "two two", "three", "a longer reply"], precision="fp32"))
    a.info.reward_mean, a.info.reward_std = float(scores.mean()), float(scores.std())
    b.info.reward_mean, b.info.reward_std = 100 * a.info.reward_mean + 7, 100 * a.info.reward_std
    return a, b


REPLIES = ["helpful kind", "rude wrong", "the answer", "no"]


@pytest.mark.parametrize("method", AGGREGATIONS)
def test_a_rescaled_member_counts_as_itself(members, method):
    """B = 100·A + 7: standardised they are one member, so the ensemble is A's z-score with no variance."""
    a, b = members
    ensemble = RewardEnsemble([a, b], aggregation=method, uncertainty_weight=1.0)
    reward, variance = ensemble.score_with_uncertainty(["q"] * 4, REPLIES, precision="fp32")
    expected = (torch.tensor(a.score(["q"] * 4, REPLIES, precision="fp32")) - a.info.reward_mean) / a.info.reward_std
    assert reward == pytest.approx(expected.tolist(), abs=1e-4)
    assert max(variance) < 1e-8


def test_a_member_without_statistics_leaves_all_raw_with_a_warning(members):
    a, b = members
    bare = RewardModel(b.model, b.tokenizer, copy.deepcopy(b.info))
    bare.info.reward_mean = bare.info.reward_std = None
    with pytest.warns(RawEnsembleWarning, match=r"second.*no saved reward statistics.*raw scale"):
        ensemble = RewardEnsemble([a, bare], names=["first", "second"])
    assert ensemble.statistics is None
    raw = torch.tensor([m.score(["q"] * 4, REPLIES, precision="fp32") for m in (a, bare)])
    assert ensemble.score(["q"] * 4, REPLIES, precision="fp32") == pytest.approx(raw.mean(0).tolist(), rel=1e-5)


def test_normalise_false_aggregates_raw_scores_without_a_warning(members, recwarn):
    a, b = members
    ensemble = RewardEnsemble([a, b], aggregation="wco", normalise=False)
    raw = torch.tensor([m.score(["q"] * 4, REPLIES, precision="fp32") for m in (a, b)])
    assert ensemble.score(["q"] * 4, REPLIES, precision="fp32") == pytest.approx(raw.min(0).values.tolist())
    assert not [w for w in recwarn if issubclass(w.category, RawEnsembleWarning)]
