"""Rating regression and Bradley-Terry + regression: hand-computed values, and the true order recovered."""

import pytest
import torch
from fitting import minimise
from scipy.stats import kendalltau, spearmanr

from rewardlab.objectives import get_objective
from rewardlab.objectives.regression import bt_regression_loss, regression_loss


def test_regression_hand_computed():
    """r = (0.5, 0.5), y = (3, 1): ½·[(0.5 - 3)² + (0.5 - 1)²] = ½·(6.25 + 0.25) = 3.25; gap 0 is not accurate."""
    out = regression_loss(torch.tensor([0.5]), torch.tensor([0.5]), torch.tensor([3.0]), torch.tensor([1.0]))
    assert out.losses.item() == pytest.approx(3.25)
    assert out.metrics["accuracy"].tolist() == [0.0]


def test_regression_standardises_ratings():
    """shift 1, scale 2: targets (3 - 1)/2 = 1 and (1 - 1)/2 = 0, met exactly by r = (1, 0) → loss 0."""
    out = regression_loss(
        torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([3.0]), torch.tensor([1.0]), scale=2.0, shift=1.0
    )
    assert out.losses.item() == 0.0 and out.metrics["accuracy"].tolist() == [1.0]


def test_bt_regression_hand_computed():
    """r = (1, 0), y = (2, 0), λ = 0.5: -log σ(1) + 0.5·½·[(1 - 2)² + 0²] = 0.3132617 + 0.25."""
    out = bt_regression_loss(
        torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([2.0]), torch.tensor([0.0]), regression_weight=0.5
    )
    assert out.losses.item() == pytest.approx(0.3132617 + 0.25, abs=1e-6)
    assert out.metrics["regression_loss"].item() == pytest.approx(0.5)


def test_unrated_replies_are_left_out_without_nan():
    """Ratings (NaN, 1) and (NaN, NaN): the first pair's loss is the rejected reply's error alone,
    (0 - 1)² = 1; the second pair has none (loss 0) and trains bt_regression on the preference only."""
    chosen = torch.tensor([5.0, 1.0], requires_grad=True)
    rejected = torch.tensor([0.0, 0.0], requires_grad=True)
    nan = float("nan")
    out = regression_loss(chosen, rejected, torch.tensor([nan, nan]), torch.tensor([1.0, nan]))
    assert out.losses.tolist() == [1.0, 0.0]
    out.losses.sum().backward()
    assert chosen.grad.tolist() == [0.0, 0.0] and rejected.grad.tolist() == [-2.0, 0.0]
    both = bt_regression_loss(chosen, rejected, torch.tensor([nan, nan]), torch.tensor([1.0, nan]))
    assert both.losses[1].item() == pytest.approx(0.3132617, abs=1e-6)


def test_regression_rejects_bad_options_and_missing_ratings():
    one = torch.tensor([1.0])
    with pytest.raises(ValueError, match="scale must be positive"):
        regression_loss(one, one, one, one, scale=0.0)
    with pytest.raises(ValueError, match="needs ratings"):
        regression_loss(one, one)
    with pytest.raises(ValueError, match="regression_weight must be ≥ 0"):
        bt_regression_loss(one, one, one, one, regression_weight=-1.0)
    with pytest.raises(ValueError, match="ratings have shape"):
        regression_loss(one, one, torch.ones(1, 2), one)


def linear_rating_data(seed: int, items: int, pairs: int, paired_items: int, features: int = 5):
    """Items with linear features, ratings = 3 + x·w + noise, and pairs among the first ``paired_items``."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(features, generator=g, dtype=torch.float64)
    x = torch.randn(items, features, generator=g, dtype=torch.float64)
    ratings = 3 + x @ w + 0.3 * torch.randn(items, generator=g, dtype=torch.float64)
    a, b = torch.randint(paired_items, (2, pairs), generator=g)
    chosen = torch.where(ratings[a] >= ratings[b], a, b)
    rejected = torch.where(ratings[a] >= ratings[b], b, a)
    return w, x, ratings, chosen, rejected


@pytest.mark.parametrize("name", ["regression", "bt_regression"])
def test_fitted_reward_recovers_the_true_order_on_held_out_items(name):
    """A linear reward fitted on 40 rated items ranks 300 new items nearly as the true reward x·w does,
    and lies on the standardised rating scale (the ratings fix the offset that preferences leave free)."""
    torch.manual_seed(0)
    w, x, ratings, chosen, rejected = linear_rating_data(seed=1, items=340, pairs=60, paired_items=40)
    shift, scale = float(ratings[:40].mean()), float(ratings[:40].std())
    theta = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    objective = get_objective(name)

    def loss() -> torch.Tensor:
        reward = x[:40] @ theta[:-1] + theta[-1]
        batch = {
            "chosen": reward[chosen],
            "rejected": reward[rejected],
            "chosen_rating": ratings[chosen],
            "rejected_rating": ratings[rejected],
            "tie": None,
        }
        return objective(batch, scale=scale, shift=shift).losses.mean()

    minimise(loss, [theta])
    held_out = x[40:] @ theta[:-1].detach() + theta[-1].detach()
    truth = x[40:] @ w
    assert spearmanr(held_out, truth).statistic > 0.95  # measured 0.991 (regression), 0.983 (bt_regression)
    assert kendalltau(held_out, truth).statistic > 0.8  # measured 0.922, 0.889
    standardised = (ratings[40:] - shift) / scale
    r_squared = 1 - (held_out - standardised).pow(2).mean() / standardised.var()
    assert r_squared.item() > 0.85  # measured 0.913, 0.901
