"""Ensembles: hand-computed values, conservative aggregation by construction, and disagreement off the data."""

import pytest
import torch
from fitting import minimise

from rewardlab.objectives import bootstrap_weights, get_objective
from rewardlab.objectives.bradley_terry import bradley_terry_loss
from rewardlab.objectives.ensemble import ensemble_bradley_terry_loss
from rewardlab.rewards.aggregate import aggregate_ensemble


def test_ensemble_bradley_terry_hand_computed():
    """Members' gaps 1 - 0 and 0 - 2: (-log σ(1) - log σ(-2)) / 2 = (0.3132617 + 2.1269280) / 2 = 1.2200949.
    The mean reward (0.5 vs 1) orders the pair wrong; one member of two orders it right."""
    out = ensemble_bradley_terry_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]), members=2)
    assert out.losses.item() == pytest.approx(1.2200949, abs=1e-6)
    assert out.metrics["accuracy"].tolist() == [0.0] and out.metrics["member_accuracy"].tolist() == [0.5]


def test_each_member_gets_bradley_terry_and_bootstrap_weights_it():
    torch.manual_seed(0)
    chosen, rejected, tie = torch.randn(16, 3), torch.randn(16, 3), torch.rand(16) < 0.3
    per_member = torch.stack([bradley_terry_loss(chosen[:, m], rejected[:, m], tie=tie).losses for m in range(3)], 1)
    plain = ensemble_bradley_terry_loss(chosen, rejected, tie=tie, members=3)
    torch.testing.assert_close(plain.losses, per_member.mean(dim=1))
    weighted = ensemble_bradley_terry_loss(chosen, rejected, tie=tie, members=3, bootstrap="poisson", seed=7)
    torch.testing.assert_close(weighted.losses, (per_member * bootstrap_weights(16, 3, seed=7)).mean(dim=1))


def test_bootstrap_weights_are_reproducible_resampling_weights():
    poisson = bootstrap_weights(20000, 4, seed=1)
    assert torch.equal(poisson, bootstrap_weights(20000, 4, seed=1))
    assert not torch.equal(poisson, bootstrap_weights(20000, 4, seed=2))
    # Poisson(1): mean 1 and P(0) = e⁻¹ ≈ 0.368; standard errors ≈ 0.004 on 80,000 draws
    assert poisson.mean().item() == pytest.approx(1.0, abs=0.02)
    assert (poisson == 0).double().mean().item() == pytest.approx(0.3679, abs=0.01)
    halves = bootstrap_weights(20000, 4, seed=1, kind="bernoulli")
    assert set(halves.unique().tolist()) == {0.0, 2.0} and halves.mean().item() == pytest.approx(1.0, abs=0.02)


def test_aggregate_hand_computed():
    """Members (1, 2, 6): mean 3, population variance (4 + 1 + 9)/3 = 14/3, wco 1, uwo(λ = 0.5) = 3 - 7/3 = 2/3."""
    rewards = torch.tensor([1.0, 2.0, 6.0])
    mean, variance = aggregate_ensemble(rewards)
    assert mean.item() == pytest.approx(3.0) and variance.item() == pytest.approx(14 / 3)
    assert aggregate_ensemble(rewards, "wco")[0].item() == pytest.approx(1.0)
    assert aggregate_ensemble(rewards, "uwo", uncertainty_weight=0.5)[0].item() == pytest.approx(2 / 3)


def test_conservative_aggregates_never_exceed_the_mean_or_the_best_member():
    """By construction, on random scores of 1 to 8 members (stacked on the last dimension, as for M
    separately trained models): wco ≤ mean ≤ max member, uwo ≤ mean, variance ≥ 0."""
    g = torch.Generator().manual_seed(0)
    for members in range(1, 9):
        rewards = torch.randn(64, 5, members, generator=g) * torch.rand(1, 1, members, generator=g) * 10
        mean, variance = aggregate_ensemble(rewards, "mean")
        wco, _ = aggregate_ensemble(rewards, "wco")
        uwo, _ = aggregate_ensemble(rewards, "uwo", uncertainty_weight=0.3)
        assert mean.shape == (64, 5) and variance.shape == (64, 5)
        assert (wco <= mean + 1e-5).all() and (mean <= rewards.amax(dim=-1) + 1e-5).all()
        assert (uwo <= mean).all() and (variance >= 0).all()
        torch.testing.assert_close(variance, rewards.var(dim=-1, unbiased=False))


def test_ensemble_rejects_bad_options():
    objective = get_objective("ensemble_bradley_terry")
    assert objective.outputs({}) == 4 and objective.outputs({"members": 7}) == 7
    with pytest.raises(ValueError, match="members must be a positive integer"):
        objective.outputs({"members": 0})
    with pytest.raises(ValueError, match=r"needs \(B, 4\) rewards"):
        ensemble_bradley_terry_loss(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="bootstrap must be"):
        ensemble_bradley_terry_loss(torch.zeros(2, 4), torch.zeros(2, 4), bootstrap="jackknife")
    with pytest.raises(ValueError, match="method must be one of"):
        aggregate_ensemble(torch.zeros(3), "median")
    with pytest.raises(ValueError, match="uncertainty_weight must be ≥ 0"):
        aggregate_ensemble(torch.zeros(3), "uwo", uncertainty_weight=-1.0)


def fit_linear_ensemble(delta: torch.Tensor, members: int, bootstrap: str | None) -> torch.Tensor:
    """(features, members) linear member rewards, each started from its own random weights, fitted together
    with ensemble_bradley_terry on the whole data as one batch (so the bootstrap is a fixed resample)."""
    start = torch.randn(delta.shape[1], members, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    heads = start.requires_grad_()

    def loss() -> torch.Tensor:
        gaps = delta @ heads
        out = ensemble_bradley_terry_loss(gaps, torch.zeros_like(gaps), members=members, bootstrap=bootstrap)
        return out.losses.mean()

    minimise(loss, [heads])
    return heads.detach()


def test_members_disagree_more_off_the_training_distribution():
    """Training replies vary in features 1-4 and hardly at all in features 5-6 (sd 0.05); 300 pairs are
    labelled by Bradley-Terry under a true linear reward using all six. Five linear members fitted on
    Poisson bootstrap resamples agree on new replies like the training ones but disagree where
    features 5-6 vary (shifted replies): the variance there is many times larger (measured 0.17 vs
    45). Without the bootstrap every member solves the same convex problem, and different starting
    weights alone leave them in agreement."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    spread = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.05, 0.05], dtype=torch.float64)
    w = torch.randn(6, generator=g, dtype=torch.float64)
    delta = torch.randn(300, 6, generator=g, dtype=torch.float64) * spread
    flip = torch.rand(300, generator=g, dtype=torch.float64) > torch.sigmoid(delta @ w)
    delta = torch.where(flip.unsqueeze(1), -delta, delta)  # chosen - rejected, sampled labels

    in_distribution = torch.randn(2000, 6, generator=g, dtype=torch.float64) * spread
    shifted = in_distribution + torch.tensor([0, 0, 0, 0, 2.0, 2.0], dtype=torch.float64)
    bootstrapped = fit_linear_ensemble(delta, 5, "poisson")
    variance_in = aggregate_ensemble(in_distribution @ bootstrapped)[1].mean().item()
    variance_out = aggregate_ensemble(shifted @ bootstrapped)[1].mean().item()
    assert variance_out > 10 * variance_in

    same_data = fit_linear_ensemble(delta, 5, None)
    assert aggregate_ensemble(shifted @ same_data)[1].mean().item() < 1e-3 * variance_out  # measured 1.4e-5
