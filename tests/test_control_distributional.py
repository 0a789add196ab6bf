"""Stock-augmented distributional DP (Ávila Pires et al. 2025): exact CVaRs on hand-made MDPs, the paper's
claim that the stock matters, and its policies' returns checked by exact propagation and by rollouts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardlab.control.distributional import (
    cvar,
    cvar_interval,
    cvar_of_distribution,
    cvar_optimal_policy,
    mean_interval,
    mean_optimal_policy,
    per_transition,
    reachable_stocks,
    return_distribution,
    return_samples,
    stock_augmented_value_iteration,
    transition_rewards,
)
from rewardlab.control.environments import LAYOUTS
from rewardlab.control.mdp import DELIVERY_WEIGHTS, TabularMDP, gridworld, value_iteration

W = np.array(DELIVERY_WEIGHTS)
SAFE, RISKY = 0, 1


def hand_made(edges: dict[tuple[int, int], list[tuple[int, float, float]]], n: int, start: int = 0):
    """An MDP of ``n`` states and 2 actions from {(s, a): [(s', P, r), ...]}; states with no edges are terminal."""
    P, r = np.zeros((n, 2, n)), np.zeros((n, 2, n))
    terminal = np.ones(n, dtype=bool)
    for (s, a), outcomes in edges.items():
        terminal[s] = False
        for following, p, reward in outcomes:
            P[s, a, following], r[s, a, following] = p, reward
    P[terminal, :, :] = 0.0
    for s in np.flatnonzero(terminal):
        P[s, :, s] = 1.0
    start_dist = np.eye(n)[start]
    return TabularMDP(P, np.zeros((n, 2, 1)), terminal, start_dist, gamma=1.0), r


def one_decision():
    """State 0 decides once: safe pays 1; risky pays 10 w.p. 0.4 and −2 w.p. 0.6 (states 1-3 end)."""
    return hand_made({(0, SAFE): [(1, 1.0, 1.0)], (0, RISKY): [(2, 0.4, 10.0), (3, 0.6, -2.0)]}, 4)


@pytest.mark.parametrize("horizon", [1, 4])
def test_mean_and_cvar_choose_differently_with_the_values_worked_by_hand(horizon):
    """Mean: safe 1 < risky 0.4·10 − 0.6·2 = 2.8. CVaR_0.25 (the worst quarter): safe 1 > risky −2, with
    VaR b* = 1. CVaR_0.9: risky (0.6·(−2) + 0.3·10)/0.9 = 2 > safe 1, with b* = 10 (the Rockafellar-Uryasev
    objective at b = 10 is 10 − 0.6·12/0.9 = 2). CVaR_1 is the mean, 2.8. Steps after the end add nothing."""
    mdp, r = one_decision()
    mean = mean_optimal_policy(mdp, r, horizon)
    assert mean.value == pytest.approx(2.8)
    assert mean.policy.act(0, np.array([0]), np.array([0.0])).tolist() == [RISKY]
    for alpha, value, var, action in [(0.25, 1.0, 1.0, SAFE), (0.9, 2.0, 10.0, RISKY), (1.0, 2.8, None, RISKY)]:
        plan = cvar_optimal_policy(mdp, r, alpha, horizon)
        assert plan.value == pytest.approx(value, abs=1e-12)
        if var is not None:
            assert plan.var == pytest.approx(var)
        assert plan.policy.act(0, np.array([0]), np.array([plan.policy.initial_stock])).tolist() == [action]
        values, probs = return_distribution(mdp, plan.policy, r)
        assert cvar_of_distribution(values, probs, alpha) == pytest.approx(value, abs=1e-12)


def test_an_expected_utility_is_the_utility_of_the_stock_at_the_end():
    """f(c) = −exp(−c/2): safe −e^{−1/2} = −0.6065 beats risky 0.4·(−e^{−5}) + 0.6·(−e^{1}) = −1.634; from a
    stock of 20 the same gamble is judged at 20 + G: risky 0.4·(−e^{−15}) + 0.6·(−e^{−9}) vs safe −e^{−10.5}."""
    mdp, r = one_decision()
    grid = np.arange(-2.0, 31.0)
    solved = stock_augmented_value_iteration(mdp, r, 1, lambda c: -np.exp(-c / 2), grid)
    at = {c: int(np.flatnonzero(grid == c)[0]) for c in (0.0, 20.0)}
    assert solved.values[0, 0, at[0.0]] == pytest.approx(-math.exp(-0.5))
    risky_20 = 0.4 * -math.exp(-15) + 0.6 * -math.exp(-9)
    assert solved.values[0, 0, at[20.0]] == pytest.approx(max(risky_20, -math.exp(-10.5)), rel=1e-12)
    assert solved.policy.act(0, np.array([0, 0]), np.array([0.0, 20.0])).tolist() == [SAFE, SAFE]
    assert solved.values[0, 1].tolist() == (-np.exp(-grid / 2)).tolist()  # a terminal state: f(c) itself


def luck_then_decision():
    """s0 pays 3 (via L, state 1) or 0 (via U, state 2) with probability 1/2 each; both lead to s1 (state 3),
    where safe pays 0 and risky +2 or −1 with probability 1/2 each. s1 cannot tell which way it was reached."""
    luck = [(1, 0.5, 3.0), (2, 0.5, 0.0)]
    edges = {(0, SAFE): luck, (0, RISKY): luck}
    for s in (1, 2):
        edges[(s, SAFE)] = edges[(s, RISKY)] = [(3, 1.0, 0.0)]
    edges[(3, SAFE)] = [(4, 1.0, 0.0)]
    edges[(3, RISKY)] = [(5, 0.5, 2.0), (6, 0.5, -1.0)]
    return hand_made(edges, 7)


def markov_cvar(p_risky: float, alpha: float) -> float:
    """CVaR of the policy of s alone that is risky in s1 with probability p: returns 0 or 3 (safe), −1, 2, 2 or
    5 (risky), all from the luck's 1/2 and the bet's 1/2."""
    p = p_risky
    values = [0.0, 3.0, -1.0, 2.0, 2.0, 5.0]
    probs = [(1 - p) / 2, (1 - p) / 2, p / 4, p / 4, p / 4, p / 4]
    return cvar_of_distribution(np.array(values), np.array(probs), alpha)


def test_the_stock_dependent_policy_strictly_beats_every_policy_of_the_state_alone():
    """CVaR_0.75. A policy of s alone plays s1 the same after good or bad luck: for any P(risky) = p the top
    quarter is 5·p/4 + 3·(1 − p)/4 of E[G] = 1.5 + p/2, so CVaR = (1.5 + p/2 − 3/4 − p/2)/0.75 = 1 for every p.
    With the stock: safe after the lucky 3, risky after 0: returns 3, 2, −1 w.p. 1/2, 1/4, 1/4, top quarter 3/4,
    CVaR = (1.75 − 0.75)/0.75 = 4/3, at b* = 3. The paper's point: the augmentation is what makes it reachable."""
    mdp, r = luck_then_decision()
    plan = cvar_optimal_policy(mdp, r, 0.75, horizon=3)
    assert plan.value == pytest.approx(4 / 3, abs=1e-12)
    assert plan.var == pytest.approx(3.0)
    c0 = plan.policy.initial_stock
    assert plan.policy.act(2, np.array([3, 3]), np.array([c0 + 3, c0 + 0])).tolist() == [SAFE, RISKY]
    values, probs = return_distribution(mdp, plan.policy, r)
    assert dict(zip(values.tolist(), probs.tolist(), strict=True)) == {-1.0: 0.25, 2.0: 0.25, 3.0: 0.5}
    best_markov = max(markov_cvar(p, 0.75) for p in np.linspace(0, 1, 101))
    assert best_markov == pytest.approx(1.0, abs=1e-12)
    assert plan.value > best_markov + 0.3


def cliff(slip: float = 0.1, gamma: float = 1.0):
    mdp = gridworld(LAYOUTS["cliff"], gamma=gamma, slip=slip)
    return mdp, transition_rewards(mdp, W)


def test_a_slip_into_a_hazard_pays_the_hazard_and_the_expectation_is_the_mdps_reward():
    """From the cell above the cliff's second cell, down enters a hazard: −1 − 50 = −51; with slip 0.1 the
    sideways slips (1/30 each) enter plain cells (−1) and the up slip too. The expectation is mdp.reward."""
    mdp, r = cliff()
    assert np.allclose((mdp.transitions * r).sum(-1), mdp.reward(W))
    above = 2 * 12 + 1  # row 2, column 1
    hazard = 3 * 12 + 1
    assert r[above, 1, hazard] == -51.0 and r[above, 1, above - 12] == -1.0
    assert not r[mdp.terminal].any()


def test_the_dp_value_is_the_cvar_of_its_own_policy_exactly_and_by_rollouts():
    """γ = 1 and integer rewards: every stock is on the grid, so the programme's CVaR is the exact CVaR of the
    returned policy's return distribution; 20,000 rollouts put it inside their 95 % bootstrap interval."""
    mdp, r = cliff(slip=0.1)
    plan = cvar_optimal_policy(mdp, r, 0.25, horizon=30)
    values, probs = return_distribution(mdp, plan.policy, r)
    assert probs.sum() == pytest.approx(1.0)
    assert cvar_of_distribution(values, probs, 0.25) == pytest.approx(plan.value, abs=1e-9)
    samples = return_samples(mdp, plan.policy, r, 20_000, np.random.default_rng(0))
    estimate = cvar_interval(samples, 0.25)
    assert estimate.ci_low <= plan.value <= estimate.ci_high
    assert estimate.ci_high - estimate.ci_low < 2.0


def test_cvar_at_one_is_the_mean_optimum_and_the_mean_optimum_is_value_iterations():
    """CVaR_1 = E[G], so its optimum is the mean optimum; that in turn equals H backups of the lead's
    value_iteration on the expected reward (the finite-horizon optimum from zero)."""
    mdp, r = cliff(slip=0.1)
    mean = mean_optimal_policy(mdp, r, horizon=25)
    V, _ = value_iteration(mdp, mdp.reward(W), iterations=25)
    assert mean.value == pytest.approx(float(mdp.start @ V.numpy()), abs=1e-9)
    assert cvar_optimal_policy(mdp, r, 1.0, horizon=25).value == pytest.approx(mean.value, abs=1e-9)


def test_on_the_bridge_each_policy_wins_its_own_objective():
    """With a slight slip (0.01) the mean-optimal route crosses the bridge between hazards (11 steps, a fall
    w.p. about 6 %); the CVaR_0.1 policy takes the 17-step way round, whose worst tenth still reaches the goal.
    Each is best at what it optimises, by the exact return distributions of both policies."""
    mdp = gridworld(LAYOUTS["bridge"], gamma=1.0, slip=0.01)
    r = transition_rewards(mdp, W)
    mean, risk = mean_optimal_policy(mdp, r, 30), cvar_optimal_policy(mdp, r, 0.1, 30)
    exact = {name: return_distribution(mdp, plan.policy, r) for name, plan in [("mean", mean), ("cvar", risk)]}
    means = {k: float(v @ p) for k, (v, p) in exact.items()}
    cvars = {k: cvar_of_distribution(v, p, 0.1) for k, (v, p) in exact.items()}
    assert means["mean"] == pytest.approx(mean.value) and cvars["cvar"] == pytest.approx(risk.value)
    assert means["mean"] > means["cvar"] + 0.5
    assert cvars["cvar"] > cvars["mean"] + 40.0


def test_with_discounting_the_interpolated_value_is_close_to_the_policys_exact_cvar():
    """γ < 1 puts stocks between grid points; interpolation makes the programme approximate, and a finer stock
    step brings it closer to the CVaR its policy really has (cliff, slip 0.1, γ = 0.95, α = 0.25: a gap of about
    0.54 at step 1 and 0.02 at step 1/4)."""
    mdp, r = cliff(slip=0.1, gamma=0.95)
    gaps = []
    for step in (1.0, 0.25):
        plan = cvar_optimal_policy(mdp, r, 0.25, horizon=30, stock_step=step)
        values, probs = return_distribution(mdp, plan.policy, r)
        gaps.append(abs(cvar_of_distribution(values, probs, 0.25) - plan.value))
    assert gaps[1] < 0.05 and gaps[1] < gaps[0] / 5


def test_rollouts_sample_the_exact_distribution():
    """Risky from the one-decision MDP: 10 w.p. 0.4 over 10,000 rollouts (binomial sd 0.005)."""
    mdp, r = one_decision()
    policy = mean_optimal_policy(mdp, r, 1).policy
    samples = return_samples(mdp, policy, r, 10_000, np.random.default_rng(1))
    assert set(np.unique(samples).tolist()) == {-2.0, 10.0}
    assert np.mean(samples == 10.0) == pytest.approx(0.4, abs=0.02)
    estimate = mean_interval(samples)
    assert estimate.ci_low < 2.8 < estimate.ci_high


def test_empirical_cvar_counts_the_boundary_sample_in_part():
    """[1, 2, 3, 4]: CVaR_0.5 = (1 + 2)/2 = 1.5; CVaR_0.3 covers 1.2 samples: (1 + 0.2·2)/1.2 = 7/6;
    CVaR_1 is the mean 2.5. Equal samples have a zero-width interval."""
    samples = np.array([4.0, 2.0, 1.0, 3.0])
    assert cvar(samples, 0.5) == pytest.approx(1.5)
    assert cvar(samples, 0.3) == pytest.approx(7 / 6)
    assert cvar(samples, 1.0) == pytest.approx(2.5)
    flat = cvar_interval(np.full(50, 3.0), 0.1)
    assert (flat.cvar, flat.ci_low, flat.ci_high) == pytest.approx((3.0, 3.0, 3.0), abs=1e-12)


def test_the_reachable_range_bounds_every_path():
    """One decision: partial sums from 0 to the reward at step 1, returns from −2 to 10."""
    mdp, r = one_decision()
    assert reachable_stocks(mdp, r, 2) == ((-2.0, 10.0), (-2.0, 10.0))


def test_bad_input_is_refused_with_what_was_expected():
    mdp, r = one_decision()
    with pytest.raises(ValueError, match="alpha must be in"):
        cvar_optimal_policy(mdp, r, 0.0, 1)
    with pytest.raises(ValueError, match="reward must have shape"):
        per_transition(mdp, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="evenly spaced"):
        stock_augmented_value_iteration(mdp, r, 1, lambda c: c, np.array([0.0, 1.0, 3.0]))
    with pytest.raises(ValueError, match="needs an MDP built by gridworld"):
        transition_rewards(mdp, W)
    with pytest.raises(ValueError, match="another MDP"):
        return_samples(cliff()[0], mean_optimal_policy(mdp, r, 1).policy, cliff()[1], 5, np.random.default_rng(0))
