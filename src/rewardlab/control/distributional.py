"""Policies that optimise a statistic of the whole return distribution (CVaR, an expected utility), not only
its mean, by dynamic programming on the state augmented with the *stock* (Ávila Pires et al. 2025,
"Optimizing Return Distributions with Distributional Dynamic Programming", sec. 3-5).

The mean of the return obeys Bellman's equation; its CVaR does not, because how much risk is worth taking at
step t depends on what was already earned. Carrying the stock along restores dynamic programming. Here the
stock is the discounted reward accumulated so far, plus a starting stock c₀:

    c_0 = c₀,   c_{t+1} = c_t + γ^t·r(s_t, a_t, s_{t+1}),   so that   c_H = c₀ + G,   G = Σ_{t<H} γ^t r_t.

(The paper's stock is γ^{-t} times this one, c'_{t+1} = (c'_t + r_t)/γ; with a finite horizon H the unscaled
form keeps the utility's argument the return itself.) For a utility f, over a finite horizon,

    V_H(s, c) = f(c),   Q_t(s, a, c) = Σ_s' P(s' | s, a)·V_{t+1}(s', c + γ^t r(s, a, s')),   V_t = max_a Q_t,

and V_0(s, c₀) = max_π E[f(c₀ + G) | s_0 = s] over all history-dependent policies: the stock is all of the
history that f(c₀ + G) needs. The policy that attains it, π_t(s, c), depends on the stock (and the step): it is
**not Markov in s alone**, and in general no policy of s alone, even a randomised one, does as well.

CVaR (Rockafellar & Uryasev 2000): CVaR_α(G) = max_b { b − E[(b − G)^+]/α }, the mean of the worst α of the
returns. With c₀ = −b and u(x) = min(x, 0)/α, b − E[(b − G)^+]/α = −c₀ + E[u(c₀ + G)], so ONE dynamic
programme with utility u serves every b at once:

    CVaR*_α = max_{c₀} { Σ_s μ(s)·V_0(s, c₀) − c₀ },

and the optimal policy starts with the maximising stock c₀* = −VaR_α and follows π_t(s, c).

Rewards are per transition, r(s, a, s'): a risk measure needs the reward an outcome actually pays, not its
expectation over the outcomes (``TabularMDP.reward`` of a slippery gridworld is the latter; use
``transition_rewards``). Stocks live on an evenly spaced grid; values between grid points are interpolated
linearly and stocks beyond its ends are clamped. With γ = 1 and rewards that are multiples of the grid step,
every reachable stock lies on the grid and the programme is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from rewardlab.control.mdp import CELL_FEATURES, TabularMDP

Utility = Callable[[np.ndarray], np.ndarray]
"""f(c): the utility of ending with stock c, vectorised over an array of stocks."""

MAX_GRID = 20_000
"""The most stock grid points a programme may use: beyond it the step is too fine for the reward's range."""


@dataclass(frozen=True)
class StockPolicy:
    """π_t(s, c): the action at step t in state s with stock c, greedy in ``q`` (interpolated at c); among
    actions within rounding of the best, the one with the larger expected return (``tiebreak``), so that
    where the objective is indifferent (every outcome already past the CVaR's threshold) the policy still
    heads for the reward rather than wandering."""

    q: np.ndarray  # (H, S, A, C) the objective's action values on the stock grid
    tiebreak: np.ndarray  # (H, S, A, C) expected discounted reward still to come under this policy
    stock_grid: np.ndarray  # (C,) evenly spaced
    initial_stock: float
    gamma: float

    @property
    def horizon(self) -> int:
        return self.q.shape[0]

    def act(self, t: int, states: np.ndarray, stocks: np.ndarray) -> np.ndarray:
        """The actions for each (state, stock) pair at step ``t``, shape (N,)."""
        rows = np.arange(len(states))
        if len(self.stock_grid) == 1:
            return _greedy(self.q[t, states, :, 0], self.tiebreak[t, states, :, 0], axis=1)
        i0, w = _positions(self.stock_grid, np.asarray(stocks, dtype=float))
        w = w[:, None]

        def at(table: np.ndarray) -> np.ndarray:
            values = table[t, states]  # (N, A, C)
            return values[rows, :, i0] * (1 - w) + values[rows, :, i0 + 1] * w

        return _greedy(at(self.q), at(self.tiebreak), axis=1)


@dataclass(frozen=True)
class StockValues:
    """V_t(s, c) on the stock grid, shape (H + 1, S, C), and the policy that attains it."""

    values: np.ndarray
    policy: StockPolicy


@dataclass(frozen=True)
class Plan:
    """A policy and the optimal value of its objective from the start distribution (for CVaR also the
    value-at-risk b* = −c₀*, the threshold below which its worst α of returns lie)."""

    policy: StockPolicy
    value: float
    objective: str
    var: float | None = None


@dataclass(frozen=True)
class CVaREstimate:
    """CVaR_α of sampled returns with a percentile-bootstrap interval."""

    cvar: float
    ci_low: float
    ci_high: float
    alpha: float
    n: int


def transition_rewards(mdp: TabularMDP, weights: np.ndarray) -> np.ndarray:
    """r(s, a, s') = φ(s')·w of a ``gridworld``: the features of the cell actually entered, shape (S, A, S).

    ``mdp.reward(w)`` is its expectation over slip outcomes, right for the mean but not for risk: a slip
    into a hazard pays the hazard. Checked against ``mdp.features`` (their expectation must agree)."""
    if not mdp.layout or mdp.feature_names != CELL_FEATURES:
        raise ValueError("transition_rewards needs an MDP built by gridworld (a layout over CELL_FEATURES)")
    cells = [ch for row in mdp.layout for ch in row if ch != "#"]
    if len(cells) != mdp.n_states:
        raise ValueError(f"the layout has {len(cells)} open cells but the MDP {mdp.n_states} states")
    entered = np.array([[1.0, ch == "c", ch == "m", ch == "G", ch == "X"] for ch in cells])  # (S, F)
    expected = np.einsum("sat,tf->saf", mdp.transitions, entered) * ~mdp.terminal[:, None, None]
    if not np.allclose(expected, mdp.features):
        raise ValueError("the MDP's features are not the entered cells' features of its layout")
    reward = np.broadcast_to(entered @ np.asarray(weights, dtype=float), mdp.transitions.shape).copy()
    reward[mdp.terminal] = 0.0
    return reward


def per_transition(mdp: TabularMDP, reward: np.ndarray) -> np.ndarray:
    """``reward`` as r(s, a, s') (S, A, S): an (S, A) reward pays the same whatever the outcome. Zero from
    terminal states, which absorb."""
    reward = np.asarray(reward, dtype=float)
    S, A = mdp.n_states, mdp.n_actions
    if reward.shape == (S, A):
        reward = np.repeat(reward[:, :, None], S, axis=2)
    elif reward.shape != (S, A, S):
        raise ValueError(f"reward must have shape (S, A) = {(S, A)} or (S, A, S) = {(S, A, S)} (got {reward.shape})")
    if not np.all(np.isfinite(reward)):
        raise ValueError("reward has non-finite entries")
    return np.where(mdp.terminal[:, None, None], 0.0, reward)


def stock_augmented_value_iteration(
    mdp: TabularMDP, reward: np.ndarray, horizon: int, utility: Utility, stock_grid: np.ndarray
) -> StockValues:
    """V_t(s, c) = max_π E[f(c + Σ_{k≥t} γ^k r_k) | s_t = s] for t = H..0 by the backward recursion of the module
    docstring, on ``stock_grid``; ``values[0][s, c₀]`` is the best E[f(c₀ + G)] from s. The policy starts with
    stock 0 (``dataclasses.replace`` it to start elsewhere)."""
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 (got {horizon})")
    grid = _check_grid(stock_grid)
    final = np.asarray(utility(grid), dtype=float)
    if final.shape != grid.shape or not np.all(np.isfinite(final)):
        raise ValueError(f"utility must map the {len(grid)} stocks to as many finite values")
    _, nxt, prob, rew, starts = _transitions(mdp, per_transition(mdp, reward))
    S, A, C = mdp.n_states, mdp.n_actions, len(grid)
    values = np.empty((horizon + 1, S, C))
    values[horizon] = final
    to_go = np.zeros((S, C))  # expected discounted reward still to come under the policy chosen so far
    q = np.empty((horizon, S, A, C))
    tiebreak = np.empty((horizon, S, A, C))
    for t in reversed(range(horizon)):
        gain = mdp.gamma**t * rew
        i0, w = _positions(grid, grid[None, :] + gain[:, None])
        after = _gather(values[t + 1, nxt], i0, w)
        more = gain[:, None] + _gather(to_go[nxt], i0, w)
        q[t] = np.add.reduceat(prob[:, None] * after, starts, axis=0).reshape(S, A, C)
        tiebreak[t] = np.add.reduceat(prob[:, None] * more, starts, axis=0).reshape(S, A, C)
        choice = _greedy(q[t], tiebreak[t], axis=1)[:, None, :]
        values[t] = np.take_along_axis(q[t], choice, axis=1)[:, 0]
        to_go = np.take_along_axis(tiebreak[t], choice, axis=1)[:, 0]
    return StockValues(values, StockPolicy(q, tiebreak, grid, 0.0, mdp.gamma))


def cvar_optimal_policy(
    mdp: TabularMDP, reward: np.ndarray, alpha: float, horizon: int, stock_step: float = 1.0
) -> Plan:
    """The policy maximising CVaR_α of G = Σ_{t<H} γ^t r_t over all history-dependent policies, by one
    stock-augmented programme with u(x) = min(x, 0)/α and the best starting stock (module docstring).
    ``value`` is CVaR*_α (exact when γ = 1 and the rewards are multiples of ``stock_step``), ``var`` the b*."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1] (got {alpha})")
    (low, high), (worst, best) = reachable_stocks(mdp, reward, horizon)
    first, last = np.floor(-best / stock_step), np.ceil(-worst / stock_step)  # c₀ = −b, b within the returns
    grid = stock_step * np.arange(first + np.floor(low / stock_step), last + np.ceil(high / stock_step) + 1)
    solved = stock_augmented_value_iteration(mdp, reward, horizon, lambda c: np.minimum(c, 0.0) / alpha, grid)
    objective = mdp.start @ solved.values[0] - grid
    candidates = (grid >= first * stock_step - stock_step / 2) & (grid <= last * stock_step + stock_step / 2)
    k = int(np.argmax(np.where(candidates, objective, -np.inf)))
    policy = replace(solved.policy, initial_stock=float(grid[k]))
    return Plan(policy, float(objective[k]), f"CVaR_{alpha:g}", var=float(-grid[k]))


def mean_optimal_policy(mdp: TabularMDP, reward: np.ndarray, horizon: int) -> Plan:
    """The policy maximising E[G] over the horizon, by finite-horizon value iteration on the expected
    transition reward: Markov in (t, s), so its stock grid is a single point it ignores."""
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 (got {horizon})")
    expected = (mdp.transitions * per_transition(mdp, reward)).sum(-1)  # (S, A)
    V = np.zeros(mdp.n_states)
    q = np.empty((horizon, mdp.n_states, mdp.n_actions))
    for t in reversed(range(horizon)):
        q[t] = mdp.gamma**t * expected + mdp.transitions @ V
        V = q[t].max(axis=1)
    table = q[..., None]
    return Plan(StockPolicy(table, table, np.zeros(1), 0.0, mdp.gamma), float(mdp.start @ V), "mean")


def reachable_stocks(mdp: TabularMDP, reward: np.ndarray, horizon: int) -> tuple[tuple[float, float], ...]:
    """((lowest, highest) partial discounted sum Σ_{k<t} γ^k r_k over every step t ≤ H, (lowest, highest)
    return G) over every path from a start state with positive probability: the range a stock grid must
    cover. Worst and best paths, whatever the policy."""
    origin, nxt, _, rew, _ = _transitions(mdp, per_transition(mdp, reward))
    low = np.where(mdp.start > 0, 0.0, np.inf)
    high = np.where(mdp.start > 0, 0.0, -np.inf)
    partial = [0.0, 0.0]
    for t in range(horizon):
        new_low, new_high = np.full_like(low, np.inf), np.full_like(high, -np.inf)
        np.minimum.at(new_low, nxt, low[origin] + mdp.gamma**t * rew)
        np.maximum.at(new_high, nxt, high[origin] + mdp.gamma**t * rew)
        low, high = new_low, new_high
        partial = [min(partial[0], float(low.min())), max(partial[1], float(high.max()))]
    return (partial[0], partial[1]), (float(low.min()), float(high.max()))


def return_samples(
    mdp: TabularMDP, policy: StockPolicy, reward: np.ndarray, episodes: int, rng: np.random.Generator
) -> np.ndarray:
    """Monte Carlo returns G = Σ_{t<H} γ^t r_t of ``episodes`` rollouts of the stock-dependent ``policy`` from
    the start distribution, all episodes stepped together; the stock c_t = c₀ + Σ_{k<t} γ^k r_k is what the
    policy sees. Shape (episodes,)."""
    _check_policy(mdp, policy)
    r = per_transition(mdp, reward)
    cumulative = np.cumsum(mdp.transitions, axis=-1)
    cumulative /= cumulative[..., -1:]
    states = rng.choice(mdp.n_states, size=episodes, p=mdp.start)
    returns = np.zeros(episodes)
    for t in range(policy.horizon):
        actions = policy.act(t, states, policy.initial_stock + returns)
        u = 1.0 - rng.random(episodes)  # in (0, 1]: the first s' whose cumulative probability reaches u
        following = (cumulative[states, actions] < u[:, None]).sum(axis=1)
        returns += mdp.gamma**t * r[states, actions, following]
        states = following
    return returns


def return_distribution(mdp: TabularMDP, policy: StockPolicy, reward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact distribution of G under ``policy``: (values ascending, probabilities), by carrying the
    probability of every (state, return so far) pair forward, merging equal pairs (to 9 decimals)."""
    _check_policy(mdp, policy)
    r = per_transition(mdp, reward)
    states = np.flatnonzero(mdp.start > 0)
    mass, earned = mdp.start[states], np.zeros(len(states))
    for t in range(policy.horizon):
        actions = policy.act(t, states, policy.initial_stock + earned)
        p = mdp.transitions[states, actions] * mass[:, None]  # (N, S)
        row, following = np.nonzero(p)
        gained = earned[row] + mdp.gamma**t * r[states[row], actions[row], following]
        keys, inverse = np.unique(np.stack([following, np.round(gained, 9)]), axis=1, return_inverse=True)
        states, earned = keys[0].astype(int), keys[1]
        mass = np.bincount(inverse.ravel(), weights=p[row, following], minlength=keys.shape[1])
    values, inverse = np.unique(earned, return_inverse=True)
    return values, np.bincount(inverse.ravel(), weights=mass, minlength=len(values))


def cvar_of_distribution(values: np.ndarray, probs: np.ndarray, alpha: float) -> float:
    """CVaR_α = (1/α)·∫_0^α F⁻¹(u) du, the mean of the worst α of the probability mass (an atom on the
    boundary counts in part)."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1] (got {alpha})")
    values, probs = np.asarray(values, dtype=float), np.asarray(probs, dtype=float)
    order = np.argsort(values, kind="stable")
    values, probs = values[order], probs[order] / probs.sum()
    before = np.cumsum(probs) - probs
    return float((values * np.clip(alpha - before, 0.0, probs)).sum() / alpha)


def cvar(samples: np.ndarray, alpha: float) -> float:
    """The empirical CVaR_α of ``samples``: the mean of their worst α fraction (the boundary sample in part)."""
    samples = np.asarray(samples, dtype=float)
    if samples.size == 0:
        raise ValueError("cvar needs at least one sample")
    return cvar_of_distribution(samples, np.ones(samples.size), alpha)


def cvar_interval(
    samples: np.ndarray, alpha: float, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> CVaREstimate:
    """Empirical CVaR_α with a percentile-bootstrap interval (Efron & Tibshirani 1993, ch. 13): the samples are
    resampled as multinomial counts over their distinct values, which is exact and cheap for the few distinct
    returns of a gridworld. Seeded."""
    samples = np.asarray(samples, dtype=float)
    point = cvar(samples, alpha)
    values, counts = np.unique(samples, return_counts=True)
    n, rng, estimates = samples.size, np.random.default_rng(seed), []
    for chunk in np.array_split(np.arange(resamples), max(1, resamples * len(values) // 2_000_000)):
        draws = rng.multinomial(n, counts / n, size=len(chunk))  # (R, U)
        before = np.cumsum(draws, axis=1) - draws
        estimates.append((values * np.clip(alpha * n - before, 0.0, draws)).sum(axis=1) / (alpha * n))
    tail = (1 - confidence) / 2
    low, high = np.quantile(np.concatenate(estimates), [tail, 1 - tail])
    return CVaREstimate(point, float(low), float(high), alpha, n)


def mean_interval(samples: np.ndarray, confidence: float = 0.95, seed: int = 0) -> CVaREstimate:
    """The sample mean with its percentile-bootstrap interval: CVaR at α = 1 is the mean, so this is
    ``cvar_interval`` at α = 1 (the multinomial resampling spares the (resamples × n) index matrix)."""
    return cvar_interval(samples, 1.0, confidence=confidence, seed=seed)


def _check_grid(stock_grid: np.ndarray) -> np.ndarray:
    grid = np.asarray(stock_grid, dtype=float)
    if grid.ndim != 1 or len(grid) < 2:
        raise ValueError("stock_grid must be a 1-d array of at least 2 stocks")
    if len(grid) > MAX_GRID:
        raise ValueError(f"stock_grid has {len(grid)} points (at most {MAX_GRID}); use a coarser stock step")
    steps = np.diff(grid)
    if steps.min() <= 0 or not np.allclose(steps, steps[0]):
        raise ValueError("stock_grid must be evenly spaced and increasing")
    return grid


def _check_policy(mdp: TabularMDP, policy: StockPolicy) -> None:
    if policy.q.shape[1:3] != (mdp.n_states, mdp.n_actions) or policy.gamma != mdp.gamma:
        raise ValueError("the policy was planned for another MDP (its states, actions or γ differ)")


def _transitions(mdp: TabularMDP, reward: np.ndarray) -> tuple[np.ndarray, ...]:
    """The transitions with positive probability as flat arrays (origin s, next s', P, r), ordered by (s, a),
    and where each (s, a)'s run starts (for ``np.add.reduceat``)."""
    s, a, following = np.nonzero(mdp.transitions > 0)
    pair = s * mdp.n_actions + a
    starts = np.searchsorted(pair, np.arange(mdp.n_states * mdp.n_actions))
    return s, following, mdp.transitions[s, a, following], reward[s, a, following], starts


def _positions(grid: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each stock in ``x``: the grid cell i0 below it and the weight w of the point above (clamped)."""
    position = np.clip((x - grid[0]) / (grid[1] - grid[0]), 0.0, len(grid) - 1)
    i0 = np.minimum(np.floor(position).astype(int), len(grid) - 2)
    return i0, position - i0


def _gather(rows: np.ndarray, i0: np.ndarray, w: np.ndarray) -> np.ndarray:
    """rows[k] (K, C) interpolated at the positions (i0, w) (K, C)."""
    below = np.take_along_axis(rows, i0, axis=1)
    above = np.take_along_axis(rows, i0 + 1, axis=1)
    return below * (1 - w) + above * w


def _greedy(q: np.ndarray, tiebreak: np.ndarray, axis: int) -> np.ndarray:
    """argmax of ``q`` along ``axis``; among the actions within rounding of the best, the larger ``tiebreak``."""
    best = q.max(axis=axis, keepdims=True)
    near = q >= best - 1e-9 * np.maximum(1.0, np.abs(best))
    return np.where(near, tiebreak, -np.inf).argmax(axis=axis)
