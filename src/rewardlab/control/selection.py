"""Reward-guided action selection (DeformPAM: "Data-Efficient Learning for Long-horizon Deformable Object
Manipulation via Preference-based Action Alignment", 2024): sample K candidate actions from a
stochastic generative policy, score each with a reward model learned from preferences over actions, and
execute the best.

    a* = argmax_{a_i ∈ {a_1..a_K} ~ π(·|o)} r̂(o, a_i)

The policy alone can put mass on bad actions (a multimodal diffusion policy's anomalous samples); the
reward model, trained on human preferences between actions taken from the same state, filters them out at
inference without retraining the policy. K = 1 is the raw policy.

For the demonstration on a Gymnasium environment, ``action_outcome`` plays the human who judges an action
by what it leads to: the true return of taking it and then following a fixed policy for a few steps, from
a copy of the environment; ``action_preferences`` turns pairs of candidate actions into judgements.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rewardlab.control.gym_env import Policy, action_value, observation_list, preference_probability
from rewardlab.control.reward_net import RewardNet
from rewardlab.control.segments import Segment, SegmentPreference

if TYPE_CHECKING:
    import gymnasium

Sampler = Callable[[np.ndarray, int], Sequence[Any]]
"""(observation, k) → k candidate actions drawn from the policy."""
Scorer = Callable[[np.ndarray, Sequence[Any]], Sequence[float]]
"""(observation, candidates) → one score per candidate, higher better."""


@dataclass(frozen=True)
class SelectionOutput:
    action: Any
    index: int
    """Which candidate was chosen (the first of equal best scores)."""
    candidates: tuple[Any, ...]
    scores: tuple[float, ...]


def select_action(policy_sampler: Sampler, reward_fn: Scorer, observation: np.ndarray, k: int) -> SelectionOutput:
    """Best of ``k`` candidates from ``policy_sampler`` under ``reward_fn``; with k = 1 the reward is not
    consulted (the raw policy)."""
    if k < 1:
        raise ValueError(f"k must be at least 1 (got {k})")
    candidates = tuple(policy_sampler(observation, k))
    if len(candidates) != k:
        raise ValueError(f"the policy sampler returned {len(candidates)} candidates for k = {k}")
    if k == 1:
        return SelectionOutput(candidates[0], 0, candidates, (float("nan"),))
    scores = tuple(float(s) for s in reward_fn(observation, candidates))
    if len(scores) != k:
        raise ValueError(f"the reward function returned {len(scores)} scores for {k} candidates")
    index = int(np.argmax(scores))
    return SelectionOutput(candidates[index], index, candidates, scores)


def selecting_policy(policy_sampler: Sampler, reward_fn: Scorer, k: int) -> Policy:
    """An observation → action policy that acts by ``select_action`` (for ``episode_returns``)."""
    return lambda observation: select_action(policy_sampler, reward_fn, observation, k).action


def reward_scorer(reward: RewardNet) -> Scorer:
    """Score candidates by a learned r̂(o, a), all K in one batch."""

    @torch.no_grad()
    def score(observation: np.ndarray, candidates: Sequence[Any]) -> list[float]:
        obs = torch.as_tensor(np.asarray(observation, dtype=np.float32)).reshape(1, -1).expand(len(candidates), -1)
        dtype = torch.long if reward.config.discrete else torch.float32
        actions = torch.as_tensor(np.asarray(candidates), dtype=dtype).reshape(len(candidates), -1)
        return reward(obs, actions.squeeze(-1) if reward.config.discrete else actions).tolist()

    return score


def action_outcome(env: gymnasium.Env, action: Any, horizon: int, follow: Policy) -> float:
    """The true return of ``action`` from ``env``'s current state and then ``horizon`` steps of ``follow``,
    played on a deep copy (the environment itself does not move): what a person judging an action by its
    result sees. Classic-control environments copy exactly (state and random generator)."""
    sandbox = copy.deepcopy(env)
    observation, reward, terminated, truncated, _ = sandbox.step(action)
    total = float(reward)
    for _ in range(horizon):
        if terminated or truncated:
            break
        observation, reward, terminated, truncated, _ = sandbox.step(follow(np.asarray(observation)))
        total += float(reward)
    return total


def action_preferences(
    env_id: str,
    policy_sampler: Sampler,
    visit: Policy,
    n_states: int,
    horizon: int,
    follow: Policy,
    seed: int = 0,
    rationality: float | None = None,
) -> list[SegmentPreference]:
    """Judgements between two actions sampled from the policy at the same state, DeformPAM's data.

    States are visited by playing ``visit``; at each, two candidates from ``policy_sampler`` are compared
    by ``action_outcome`` (Bradley-Terry with ``rationality`` β, None: always the better outcome). Each
    side is a one-step segment (o, a, o′) whose o′ is the state the action leads to.
    """
    from rewardlab.control.gym_env import make_env

    rng = np.random.default_rng(seed)
    env = make_env(env_id)
    env.action_space.seed(seed)
    observation, _ = env.reset(seed=seed)
    records = []
    while len(records) < n_states:
        pair = list(policy_sampler(np.asarray(observation), 2))
        sides, outcomes = [], []
        for action in pair:
            sandbox = copy.deepcopy(env)
            after, *_ = sandbox.step(action)
            sides.append(Segment((observation_list(observation), observation_list(after)), (action_value(action),)))
            outcomes.append(action_outcome(env, action, horizon, follow))
        if rationality is None:
            preferred = "a" if outcomes[0] > outcomes[1] else "b" if outcomes[1] > outcomes[0] else "equal"
        else:
            preferred = "a" if rng.random() < preference_probability(*outcomes, rationality) else "b"
        records.append(SegmentPreference(sides[0], sides[1], preferred, env_id))
        observation, _, terminated, truncated, _ = env.step(visit(np.asarray(observation)))
        if terminated or truncated:
            observation, _ = env.reset()
    env.close()
    return records
