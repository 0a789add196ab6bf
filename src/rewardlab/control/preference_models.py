"""Preference models over segments: what a person's choice between two segments of behaviour is assumed
to depend on (Knox et al. 2022, *Models of human preference for learning reward functions*, sec. 2-3).

Both models are logistic in a segment score, P(σ_a ≻ σ_b) = σ((score_a − score_b) / τ), and differ in
the score:

- ``partial_return``: the reward the segment collects, Σ_t γ^t r(s_t, a_t) (Christiano et al. 2017);
- ``regret``: how far the segment's decisions fall short of optimal, score = −regret with
  regret(σ) = V*_r(s_0) − (Σ_t γ^t r_t + γ^T V*_r(s_T)) for deterministic transitions, which telescopes to
  −Σ_t γ^t A*_r(s_t, a_t). With stochastic transitions the score is that advantage sum, the *expected*
  regret form Knox et al. use there: it does not credit or blame a segment for where chance took it.

Both are torch functions of the reward table r = φ·w, so their gradient reaches the weights; regret's
passes through the optimal values (``optimal_values``: exact, with ``value_iteration``'s gradient).

Convention for segments that reach a terminal state: they keep their length, continuing in the absorbing
state, whose steps earn 0 under *every* weight vector (``TabularMDP`` gives them zero features) and have
advantage 0. Knox et al.'s non-identifiability of partial return (a constant added to every reward changes
nothing in equal-length comparisons yet changes the optimal policy of an episodic task) therefore holds
exactly here only on segments that take no step from an absorbing state: a shift by c adds c·Σ_{t<T} γ^t to
both sides of such a pair, but only c·Σ_{t<k} γ^t to a segment absorbed after k steps, so pairs with early
endings do carry some information about the shift (rarely, and noisily: see the benchmark
``regret_vs_partial_return``). The tests check the first half exhaustively on a small grid, the second on a pair.

The module also simulates labels from a model (``simulate_preferences``): the synthetic human with a
known true reward that every claim is checked on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rewardlab.control.mdp import TabularMDP, greedy_policy, value_iteration
from rewardlab.control.segments import Segment, SegmentPreference
from rewardlab.registry import Registry

ScoreFn = Callable[[TabularMDP, Tensor, Tensor, Tensor, Tensor], Tensor]
"""(mdp, reward (S, A), states (..., L+1), actions (..., L), mask (..., L)) → segment scores (...)."""


@dataclass(frozen=True)
class PreferenceModel:
    name: str
    score: ScoreFn
    summary: str


PREFERENCE_MODELS: Registry[PreferenceModel] = Registry("preference model")


def register_preference_model(name: str) -> Callable[[ScoreFn], ScoreFn]:
    def decorate(fn: ScoreFn) -> ScoreFn:
        summary = (fn.__doc__ or "").strip().splitlines()[0]
        PREFERENCE_MODELS.add(name, PreferenceModel(PREFERENCE_MODELS.normalise(name), fn, summary))
        return fn

    return decorate


def get_preference_model(name: str) -> PreferenceModel:
    """The model registered as ``name`` ("partial-return" finds ``partial_return``); an unknown name raises
    ``UnknownNameError`` listing the known ones."""
    return PREFERENCE_MODELS.get(name)


def preference_model_names() -> list[str]:
    return PREFERENCE_MODELS.names()


def discounts(mask: Tensor, gamma: float) -> Tensor:
    """γ^t on the real steps of each segment, 0 on padding."""
    return mask * gamma ** torch.arange(mask.shape[-1], dtype=torch.float64)


@register_preference_model("partial_return")
def partial_return(mdp: TabularMDP, reward: Tensor, states: Tensor, actions: Tensor, mask: Tensor) -> Tensor:
    """Σ_t γ^t r(s_t, a_t): the reward the segment collects (Knox et al. 2022, eq. 1)."""
    return (discounts(mask, mdp.gamma) * reward[states[..., :-1], actions]).sum(-1)


def optimal_values(mdp: TabularMDP, reward: Tensor, max_iterations: int = 100) -> tuple[Tensor, Tensor]:
    """(V*, Q*) of ``reward`` (S, A), exact and differentiable in it, for γ < 1.

    The optimal policy π comes from policy iteration without gradient (exact after finitely many steps), then
    V* = (I − γ·diag(alive)·P_π)⁻¹·(alive ⊙ r_π) and Q* = r + γ·P·V* with gradient. Where the optimal action
    is unique this is V*'s true gradient (Danskin: the max passes it to the argmax), the same one that
    ``value_iteration`` gives in the limit of many backups, at the cost of one S×S solve instead of hundreds
    of backups (learning through the regret model re-solves the MDP at every step). With γ = 1 the solve
    can be singular, so there ``value_iteration`` (200 backups) is used."""
    if mdp.gamma >= 1.0:
        return value_iteration(mdp, reward)
    P = torch.as_tensor(mdp.transitions, dtype=torch.float64)
    alive = torch.as_tensor(~mdp.terminal, dtype=torch.float64)
    states = torch.arange(mdp.n_states)
    eye = torch.eye(mdp.n_states, dtype=torch.float64)

    def evaluate(r: Tensor, policy: Tensor) -> Tensor:
        return torch.linalg.solve(eye - mdp.gamma * alive[:, None] * P[states, policy], alive * r[states, policy])

    with torch.no_grad():
        r0 = reward.detach()
        policy = r0.argmax(dim=1)
        for _ in range(max_iterations):
            Q0 = r0 + mdp.gamma * torch.einsum("sat,t->sa", P, evaluate(r0, policy))
            current = Q0[states, policy]
            better = Q0.max(dim=1).values > current + 1e-10 * (1 + current.abs())
            if not better.any():
                break
            policy = torch.where(better, Q0.argmax(dim=1), policy)
    V = evaluate(reward, policy)
    return V, reward + mdp.gamma * torch.einsum("sat,t->sa", P, V)


@register_preference_model("regret")
def negative_regret(mdp: TabularMDP, reward: Tensor, states: Tensor, actions: Tensor, mask: Tensor) -> Tensor:
    """−regret(σ) = Σ_t γ^t A*_r(s_t, a_t), A* = Q* − V* (Knox et al. 2022, eq. 2-4; expected form if stochastic)."""
    V, Q = optimal_values(mdp, reward)
    before = states[..., :-1]
    return (discounts(mask, mdp.gamma) * (Q[before, actions] - V[before])).sum(-1)


def preference_probability(score_a: Tensor, score_b: Tensor, temperature: float = 1.0) -> Tensor:
    """P(σ_a ≻ σ_b) = σ((score_a − score_b) / τ): Bradley-Terry over segment scores; τ → 0 is a perfectly
    consistent judge, large τ a coin flip."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive (got {temperature})")
    return torch.sigmoid((score_a - score_b) / temperature)


@dataclass(frozen=True)
class SegmentBatch:
    """Segment pairs as index tensors; shorter pairs are padded (mask 0, last state repeated)."""

    states: Tensor  # (N, 2, L+1) long
    actions: Tensor  # (N, 2, L) long
    mask: Tensor  # (N, 2, L) float64
    labels: Tensor  # (N,) float64, P(a ≻ b) as judged


def segment_batch(mdp: TabularMDP, records: Sequence[SegmentPreference]) -> SegmentBatch:
    """Check that every segment is a path ``mdp`` can take (indices in range, each step possible) and that
    the two sides of a pair are equally long (both models compare equal-length segments); a bad record raises
    ``ValueError`` naming its ``file:line`` (or its position) and side."""
    if not records:
        raise ValueError("no segment preferences given")
    longest = max(max(len(r.a), len(r.b)) for r in records)
    states = np.zeros((len(records), 2, longest + 1), dtype=np.int64)
    actions = np.zeros((len(records), 2, longest), dtype=np.int64)
    mask = np.zeros((len(records), 2, longest))
    for i, record in enumerate(records):
        where = record.location or f"preference {i}"
        if len(record.a) != len(record.b):
            raise ValueError(
                f"{where}: segments a and b have {len(record.a)} and {len(record.b)} steps (expected equal)"
            )
        for side, segment in enumerate((record.a, record.b)):
            obs = _indices(segment.observations, mdp.n_states, where, "ab"[side], "observations")
            acts = _indices(segment.actions, mdp.n_actions, where, "ab"[side], "actions")
            T = len(acts)
            impossible = [t for t in range(T) if mdp.transitions[obs[t], acts[t], obs[t + 1]] == 0]
            if impossible:
                t = impossible[0]
                raise ValueError(
                    f"{where}: segment {'ab'[side]} steps from state {obs[t]} by action {acts[t]} to state "
                    f"{obs[t + 1]} at step {t}, which this MDP cannot do (segments from another environment?)"
                )
            states[i, side, : T + 1], states[i, side, T + 1 :] = obs, obs[-1]
            actions[i, side, :T], mask[i, side, :T] = acts, 1.0
    labels = torch.tensor([r.label for r in records], dtype=torch.float64)
    return SegmentBatch(torch.from_numpy(states), torch.from_numpy(actions), torch.from_numpy(mask), labels)


def _indices(values: Sequence, bound: int, where: str, side: str, field: str) -> list[int]:
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < bound:
            raise ValueError(f"{where}: field {side}.{field} holds {value!r} (expected integers 0..{bound - 1})")
    return [int(v) for v in values]


def pair_scores(mdp: TabularMDP, weights: Tensor | np.ndarray, batch: SegmentBatch, model: str) -> Tensor:
    """Each pair's two segment scores (N, 2) under the linear reward φ·w and the named model."""
    w = torch.as_tensor(weights, dtype=torch.float64)
    reward = torch.as_tensor(mdp.features, dtype=torch.float64) @ w
    return get_preference_model(model).score(mdp, reward, batch.states, batch.actions, batch.mask)


def model_probabilities(
    mdp: TabularMDP, weights: Tensor | np.ndarray, batch: SegmentBatch, model: str, temperature: float = 1.0
) -> Tensor:
    """P(a ≻ b) of each pair under the named model."""
    scores = pair_scores(mdp, weights, batch, model)
    return preference_probability(scores[:, 0], scores[:, 1], temperature)


def sample_segment(
    mdp: TabularMDP,
    length: int,
    rng: np.random.Generator,
    policy: np.ndarray | None = None,
    epsilon: float = 1.0,
) -> Segment:
    """``length`` steps from a uniformly chosen non-terminal state, each action random with probability
    ``epsilon`` and ``policy``'s otherwise (``policy`` None or ε = 1: uniformly random behaviour)."""
    starts = np.flatnonzero(~mdp.terminal)
    states, actions = [int(rng.choice(starts))], []
    for _ in range(length):
        s = states[-1]
        explore = policy is None or rng.random() < epsilon
        a = int(rng.integers(mdp.n_actions)) if explore else int(policy[s])
        actions.append(a)
        states.append(mdp.next_state(s, a, rng))
    return Segment(tuple(states), tuple(actions))


def sample_segment_pairs(
    mdp: TabularMDP,
    n: int,
    segment_length: int,
    rng: np.random.Generator,
    behaviour: str = "random",
    epsilon: float = 0.3,
    weights: np.ndarray | None = None,
) -> list[tuple[Segment, Segment]]:
    """``n`` pairs of equal-length segments from random starts. ``behaviour``: ``random`` (uniform actions)
    or ``epsilon_greedy`` (the optimal policy of ``weights``, random with probability ``epsilon``)."""
    if n < 1 or segment_length < 1:
        raise ValueError(f"n and segment_length must be positive (got {n}, {segment_length})")
    if behaviour == "random":
        policy, epsilon = None, 1.0
    elif behaviour == "epsilon_greedy":
        if weights is None:
            raise ValueError("epsilon_greedy behaviour needs the weights whose optimal policy it follows")
        policy = greedy_policy(optimal_values(mdp, torch.as_tensor(mdp.reward(weights), dtype=torch.float64))[1])
    else:
        raise ValueError(f"unknown behaviour {behaviour!r}; known: random, epsilon_greedy")
    return [
        (
            sample_segment(mdp, segment_length, rng, policy, epsilon),
            sample_segment(mdp, segment_length, rng, policy, epsilon),
        )
        for _ in range(n)
    ]


def label_pairs(
    mdp: TabularMDP,
    pairs: Sequence[tuple[Segment, Segment]],
    weights: np.ndarray,
    model: str,
    rng: np.random.Generator,
    temperature: float = 1.0,
    tie_threshold: float | None = None,
    task: str | None = None,
) -> list[SegmentPreference]:
    """A simulated human: each pair labelled by a draw from the model's P(a ≻ b) under the true ``weights``;
    with ``tie_threshold``, pairs whose scores differ by at most that much are labelled ``equal`` instead."""
    records = [SegmentPreference(a, b, "equal", task) for a, b in pairs]
    scores = pair_scores(mdp, weights, segment_batch(mdp, records), model)
    p = preference_probability(scores[:, 0], scores[:, 1], temperature).numpy()
    draws = rng.random(len(pairs)) < p
    gap = (scores[:, 0] - scores[:, 1]).abs().numpy()
    tied = gap <= tie_threshold if tie_threshold is not None else np.zeros(len(pairs), dtype=bool)
    return [
        SegmentPreference(a, b, "equal" if tie else ("a" if first else "b"), task)
        for (a, b), first, tie in zip(pairs, draws, tied, strict=True)
    ]


def simulate_preferences(
    mdp: TabularMDP,
    weights: np.ndarray,
    n: int,
    model: str = "partial_return",
    segment_length: int = 3,
    rng: np.random.Generator | None = None,
    temperature: float = 1.0,
    behaviour: str = "random",
    epsilon: float = 0.3,
    tie_threshold: float | None = None,
    task: str | None = None,
) -> list[SegmentPreference]:
    """``n`` labelled pairs: ``sample_segment_pairs`` then ``label_pairs`` (Knox et al.'s synthetic setup)."""
    get_preference_model(model)  # fail on an unknown name before sampling
    rng = rng if rng is not None else np.random.default_rng(0)
    pairs = sample_segment_pairs(mdp, n, segment_length, rng, behaviour, epsilon, weights)
    return label_pairs(mdp, pairs, weights, model, rng, temperature, tie_threshold, task)
