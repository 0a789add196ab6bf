"""Tabular MDPs with a known true reward: the ground on which every claim about learned rewards is measured.

A ``TabularMDP`` has deterministic or stochastic transitions ``P[s, a, s']``, a reward that is linear in
per-transition features, ``r(s, a) = φ(s, a)·w``, and absorbing terminal states (every action there stays
there with reward 0). Linear rewards are what the preference-model literature learns (Knox et al.'s
delivery domain: cost per step, coins, mild hazards, a goal and a deadly cell), and they let one MDP carry
several candidate rewards: the true one, a learned one, each factor alone (HERON).

``value_iteration`` is written in torch so that a reward's optimal values can be differentiated with
respect to ``w`` (the regret preference model learns through it); everything else is plain numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))
"""Up, down, left, right, on a grid whose first index is the row."""

ACTION_NAMES = ("up", "down", "left", "right")

CELL_NAMES = {".": "empty", "S": "empty", "c": "coin", "m": "mud", "G": "goal", "X": "hazard"}
"""What a gridworld cell holds, by its layout character, in words."""

CELL_FEATURES = ("step", "coin", "mud", "goal", "hazard")
"""What entering a gridworld cell counts: every move costs a ``step``; the cell entered may hold a ``coin``,
``mud`` (a mild cost), the ``goal`` or a ``hazard`` (both end the episode)."""

DELIVERY_WEIGHTS = (-1.0, 1.0, -5.0, 50.0, -50.0)
"""The delivery domain's true reward over ``CELL_FEATURES`` (Knox et al. 2022, sec. 5: −1 a step, +1 a coin,
a mild penalty for bricks, +50 the destination, −50 a sheep)."""


@dataclass(frozen=True)
class TabularMDP:
    """States ``0..S-1``, actions ``0..A-1``; ``transitions[s, a]`` is the distribution of the next state,
    ``features[s, a]`` the transition's features φ(s, a) (zero from a terminal state), ``terminal[s]``
    marks absorbing states and ``start`` the distribution of the first state."""

    transitions: np.ndarray  # (S, A, S), rows sum to 1
    features: np.ndarray  # (S, A, F)
    terminal: np.ndarray  # (S,) bool
    start: np.ndarray  # (S,) sums to 1
    gamma: float = 0.99
    feature_names: tuple[str, ...] = ()
    layout: tuple[str, ...] = field(default=(), compare=False)
    """The grid it was built from, one string a row, for display; empty for MDPs not built from a grid."""

    def __post_init__(self) -> None:
        S, A, S2 = self.transitions.shape
        if S != S2 or self.features.shape[:2] != (S, A) or self.terminal.shape != (S,) or self.start.shape != (S,):
            raise ValueError(
                f"inconsistent shapes: transitions {self.transitions.shape}, features {self.features.shape}, "
                f"terminal {self.terminal.shape}, start {self.start.shape}"
            )
        if not np.allclose(self.transitions.sum(-1), 1.0):
            raise ValueError("each transitions[s, a] must sum to 1")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1] (got {self.gamma})")

    @property
    def n_states(self) -> int:
        return self.transitions.shape[0]

    @property
    def n_actions(self) -> int:
        return self.transitions.shape[1]

    @property
    def n_features(self) -> int:
        return self.features.shape[2]

    @property
    def deterministic(self) -> bool:
        return bool(np.all(self.transitions.max(-1) == 1.0))

    def reward(self, weights: np.ndarray) -> np.ndarray:
        """r(s, a) = φ(s, a)·w, shape (S, A)."""
        return self.features @ np.asarray(weights, dtype=float)

    def next_state(self, state: int, action: int, rng: np.random.Generator) -> int:
        return int(rng.choice(self.n_states, p=self.transitions[state, action]))


def value_iteration(
    mdp: TabularMDP, reward: torch.Tensor | np.ndarray, iterations: int = 200
) -> tuple[torch.Tensor, torch.Tensor]:
    """(V*, Q*) of ``reward`` (S, A) by ``iterations`` Bellman backups from zero,

        Q(s, a) = r(s, a) + γ·Σ_s' P(s' | s, a)·V(s'),   V(s) = max_a Q(s, a),

    with V = 0 at terminal states. Differentiable in ``reward`` (the max passes its gradient to the argmax).
    With γ < 1 the error after k backups is at most γ^k·max|r|/(1-γ); with γ = 1 it is exact for every
    policy that ends within ``iterations`` steps."""
    r = torch.as_tensor(reward, dtype=torch.float64)
    P = torch.as_tensor(mdp.transitions, dtype=torch.float64)
    alive = torch.as_tensor(~mdp.terminal, dtype=torch.float64)
    V = torch.zeros(mdp.n_states, dtype=torch.float64)
    Q = r
    for _ in range(iterations):
        Q = r + mdp.gamma * torch.einsum("sat,t->sa", P, V)
        V = Q.max(dim=1).values * alive
    return V, Q


def greedy_policy(Q: torch.Tensor | np.ndarray) -> np.ndarray:
    """The deterministic policy that takes argmax_a Q(s, a) (the first on ties), shape (S,)."""
    return np.asarray(torch.as_tensor(Q).argmax(dim=1))


def policy_values(mdp: TabularMDP, policy: np.ndarray, reward: np.ndarray, iterations: int = 1000) -> np.ndarray:
    """V^π(s) of a deterministic ``policy`` (S,) under ``reward`` (S, A), by iterative evaluation."""
    states = np.arange(mdp.n_states)
    r = reward[states, policy]
    P = mdp.transitions[states, policy]  # (S, S)
    alive = ~mdp.terminal
    V = np.zeros(mdp.n_states)
    for _ in range(iterations):
        V = np.where(alive, r + mdp.gamma * P @ V, 0.0)
    return V


def expected_return(mdp: TabularMDP, policy: np.ndarray, weights: np.ndarray) -> float:
    """E_{s0 ~ start}[V^π(s0)] under the reward with ``weights``: how well ``policy`` does on that reward."""
    return float(mdp.start @ policy_values(mdp, policy, mdp.reward(weights)))


def normalized_return(mdp: TabularMDP, policy: np.ndarray, weights: np.ndarray) -> float:
    """(J(π) − J(uniform)) / (J(π*) − J(uniform)) under the true ``weights``: 1 for an optimal policy, 0 for one
    no better than acting at random (Knox et al. 2022's measure of a learned reward)."""
    reward = mdp.reward(weights)
    _, Q = value_iteration(mdp, reward, iterations=1000)
    best = expected_return(mdp, greedy_policy(Q), weights)
    uniform = uniform_return(mdp, reward)
    if np.isclose(best, uniform):
        return 1.0
    return (expected_return(mdp, policy, weights) - uniform) / (best - uniform)


def uniform_return(mdp: TabularMDP, reward: np.ndarray, iterations: int = 1000) -> float:
    """Expected return of the policy that picks each action with equal probability."""
    r = reward.mean(axis=1)
    P = mdp.transitions.mean(axis=1)
    V = np.zeros(mdp.n_states)
    for _ in range(iterations):
        V = np.where(~mdp.terminal, r + mdp.gamma * P @ V, 0.0)
    return float(mdp.start @ V)


def gridworld(layout: list[str] | tuple[str, ...], gamma: float = 0.99, slip: float = 0.0) -> TabularMDP:
    """An MDP from a grid of characters: ``.`` empty, ``c`` coin, ``m`` mud, ``G`` goal, ``X`` hazard,
    ``#`` wall, ``S`` a start cell (empty; every non-terminal, non-wall cell is a start if none is marked).

    Moving into a wall or off the grid stays put (and still costs a step). With ``slip`` > 0 a move goes
    to a uniformly chosen other direction with that probability. Features over ``CELL_FEATURES``."""
    rows = [list(row) for row in layout]
    if not rows or any(len(row) != len(rows[0]) for row in rows):
        raise ValueError("a gridworld layout needs rows of equal length")
    unknown = {ch for row in rows for ch in row} - set(".cmGX#S")
    if unknown:
        raise ValueError(f"unknown cell characters {sorted(unknown)} (expected . c m G X # S)")
    cells = [(i, j) for i, row in enumerate(rows) for j, ch in enumerate(row) if ch != "#"]
    index = {cell: k for k, cell in enumerate(cells)}
    S, A, F = len(cells), len(MOVES), len(CELL_FEATURES)
    transitions = np.zeros((S, A, S))
    features = np.zeros((S, A, F))
    terminal = np.array([rows[i][j] in "GX" for i, j in cells])
    marked = np.array([rows[i][j] == "S" for i, j in cells])
    for s, (i, j) in enumerate(cells):
        if terminal[s]:
            transitions[s, :, s] = 1.0
            continue
        for a in range(A):
            outcomes = [(a, 1.0 - slip)] + [(b, slip / (A - 1)) for b in range(A) if b != a and slip > 0]
            for move, p in outcomes:
                di, dj = MOVES[move]
                target = (i + di, j + dj)
                s2 = index.get(target, s)
                transitions[s, a, s2] += p
                ch = rows[cells[s2][0]][cells[s2][1]]
                features[s, a] += p * np.array([1.0, ch == "c", ch == "m", ch == "G", ch == "X"])
    start = marked if marked.any() else ~terminal
    return TabularMDP(
        transitions, features, terminal, start / start.sum(), gamma, CELL_FEATURES, tuple("".join(r) for r in rows)
    )


def grid_cells(mdp: TabularMDP) -> list[tuple[int, int]]:
    """The (row, col) of each state of a gridworld, in ``gridworld``'s state order."""
    if not mdp.layout:
        raise ValueError("this needs a gridworld (an MDP built by mdp.gridworld, with a layout)")
    return [(i, j) for i, row in enumerate(mdp.layout) for j, ch in enumerate(row) if ch != "#"]


def random_gridworld(rng: np.random.Generator, size: int = 6, gamma: float = 0.99) -> TabularMDP:
    """A random delivery-style grid: one goal, a few hazards, coins and mud, the rest empty; the kind of
    random MDP over which Knox et al. average their learning curves."""
    cells = rng.permutation(size * size)
    grid = np.full(size * size, ".")
    n = size * size
    grid[cells[0]] = "G"
    counts = {"X": max(1, n // 12), "c": max(1, n // 8), "m": max(1, n // 6)}
    k = 1
    for ch, count in counts.items():
        grid[cells[k : k + count]] = ch
        k += count
    layout = ["".join(grid[r * size : (r + 1) * size]) for r in range(size)]
    return gridworld(layout, gamma=gamma)


def rollout(
    mdp: TabularMDP, policy: np.ndarray | None, start: int, length: int, rng: np.random.Generator
) -> tuple[list[int], list[int]]:
    """States s_0..s_T and actions a_0..a_{T-1} of ``length`` steps from ``start``, following the deterministic
    ``policy`` (S,) or, with None, acting uniformly at random. A segment that reaches a terminal state stays
    there (absorbing), so every segment has the same length."""
    states, actions = [start], []
    for _ in range(length):
        s = states[-1]
        a = int(rng.integers(mdp.n_actions)) if policy is None else int(policy[s])
        actions.append(a)
        states.append(mdp.next_state(s, a, rng))
    return states, actions
