"""Davidson's tie model: hand-computed values, ν → 0 is Bradley-Terry, and tie rates predicted from data."""

import math

import pytest
import torch
from fitting import minimise

from rewardlab.objectives import davidson_probabilities
from rewardlab.objectives.bradley_terry import bradley_terry_loss
from rewardlab.objectives.davidson import davidson_log_probabilities, davidson_loss


def test_davidson_hand_computed():
    """r_c = 2·ln 2, r_r = 0, ν = 1: π = (4, 1), ν·√(π_c·π_r) = 2, so P(c) = 4/7, P(tie) = 2/7, P(r) = 1/7.
    Loss -ln(4/7) = 0.5596158 for a preference, -ln(2/7) = 1.2527630 for a tie."""
    chosen, rejected = torch.tensor([2 * math.log(2)] * 2), torch.zeros(2)
    p_c, p_tie, p_r = davidson_probabilities(chosen, rejected, nu=1.0)
    assert p_c.tolist() == pytest.approx([4 / 7] * 2) and p_tie.tolist() == pytest.approx([2 / 7] * 2)
    assert p_r.tolist() == pytest.approx([1 / 7] * 2)
    out = davidson_loss(chosen, rejected, tie=torch.tensor([False, True]), nu=1.0)
    assert out.losses.tolist() == pytest.approx([0.5596158, 1.2527630], abs=1e-6)
    # the tied pair is not accurate: winning (4/7) is likelier than the tie (2/7)
    assert out.metrics["accuracy"].tolist() == [1.0, 0.0]


def test_equal_rewards_make_three_equally_likely_outcomes_at_nu_one():
    """d = 0, ν = 1: each outcome 1/3, loss ln 3 = 1.0986123 either way; a tie is then the (joint) likeliest."""
    out = davidson_loss(torch.zeros(2), torch.zeros(2), tie=torch.tensor([False, True]))
    assert out.losses.tolist() == pytest.approx([1.0986123] * 2, abs=1e-6)
    assert out.metrics["accuracy"].tolist() == [0.0, 1.0]
    assert out.metrics["tie_probability"].tolist() == pytest.approx([1 / 3] * 2)


def test_probabilities_sum_to_one_and_swap_with_the_replies():
    torch.manual_seed(0)
    a, b = torch.randn(50) * 3, torch.randn(50) * 3
    p_a, p_tie, p_b = davidson_probabilities(a, b, nu=0.7)
    torch.testing.assert_close(p_a + p_tie + p_b, torch.ones(50))
    q_b, q_tie, q_a = davidson_probabilities(b, a, nu=0.7)
    torch.testing.assert_close((q_a, q_tie, q_b), (p_a, p_tie, p_b))


def test_nu_to_zero_is_bradley_terry():
    """ν = 0 is Bradley-Terry exactly (P(c) = e^{d/2}/(e^{d/2} + e^{-d/2}) = σ(d)); small ν is close to it."""
    torch.manual_seed(0)
    chosen, rejected = torch.randn(20) * 3, torch.randn(20) * 3
    bt = bradley_terry_loss(chosen, rejected).losses
    torch.testing.assert_close(davidson_loss(chosen, rejected, nu=0.0).losses, bt)
    torch.testing.assert_close(davidson_loss(chosen, rejected, nu=1e-6).losses, bt, atol=1e-5, rtol=0)


def test_davidson_rejects_bad_nu():
    one = torch.ones(1)
    with pytest.raises(ValueError, match="nu must be ≥ 0"):
        davidson_loss(one, one, nu=-0.1)
    with pytest.raises(ValueError, match="nu = 0 gives ties probability zero"):
        davidson_loss(one, one, tie=torch.tensor([True]), nu=0.0)


def sample_comparisons(rewards: torch.Tensor, nu: float, count: int, generator: torch.Generator):
    """Random pairs of distinct items and a Davidson outcome for each: 0 = a wins, 1 = tie, 2 = b wins."""
    a = torch.randint(len(rewards), (count,), generator=generator)
    b = (a + torch.randint(1, len(rewards), (count,), generator=generator)) % len(rewards)
    probabilities = torch.stack(davidson_probabilities(rewards[a], rewards[b], nu), dim=1)
    outcome = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
    return a, b, outcome


def test_fitted_model_predicts_the_tie_rate_of_new_comparisons():
    """Six items with rewards -3…3 and ν = 0.7 generate 3,000 training and 20,000 test comparisons.

    Rewards fitted with the true ν (the objective's option), and rewards and ν fitted together, both
    predict the test tie rate, overall and for close (adjacent) versus distant pairs. Tolerance:
    the test rate's standard error is √(p(1-p)/n) ≈ 0.003 overall and ≈ 0.005 in a bin (6,700
    and 8,000 comparisons); the fitted model's own error from 3,000 comparisons is about
    √(0.2·0.8/3000) ≈ 0.007. 0.03 is three times their combined size; the close and distant
    rates (0.22 and 0.08) differ by far more than that.
    """
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    truth, nu = torch.linspace(-3, 3, 6, dtype=torch.float64), 0.7
    a, b, outcome = sample_comparisons(truth, nu, 3000, g)
    chosen = torch.where(outcome == 2, b, a)
    rejected = torch.where(outcome == 2, a, b)
    tie = outcome == 1

    rewards = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    minimise(lambda: davidson_loss(rewards[chosen], rewards[rejected], tie=tie, nu=nu).losses.mean(), [rewards])

    joint = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    log_nu = torch.zeros((), dtype=torch.float64, requires_grad=True)

    def joint_loss() -> torch.Tensor:
        log_win, log_tie, _ = davidson_log_probabilities(joint[chosen], joint[rejected], log_nu.exp())
        return -torch.where(tie, log_tie, log_win).mean()

    minimise(joint_loss, [joint, log_nu])
    assert log_nu.exp().item() == pytest.approx(nu, abs=0.1)

    test_a, test_b, test_outcome = sample_comparisons(truth, nu, 20000, g)
    distance = (test_a - test_b).abs()
    for fitted, fitted_nu in ((rewards.detach(), nu), (joint.detach(), log_nu.exp().item())):
        predicted = davidson_probabilities(fitted[test_a], fitted[test_b], fitted_nu)[1]
        for subset in (distance > 0, distance == 1, distance >= 3):
            empirical = (test_outcome[subset] == 1).double().mean().item()
            assert predicted[subset].mean().item() == pytest.approx(empirical, abs=0.03)
    close, far = ((test_outcome[s] == 1).double().mean().item() for s in (distance == 1, distance >= 3))
    assert close - far > 0.1  # the bins really differ, so matching both is not matching one average
