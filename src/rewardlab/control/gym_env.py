"""Segments of behaviour from Gymnasium environments, judged by a simulated human, and a wrapper that
swaps the environment's reward for a learned one.

Christiano et al. (2017, "Deep reinforcement learning from human preferences", sec. 2.2) learn a reward
from a person's choices between short clips of behaviour and train the agent on it; to measure that loop
without people, their synthetic labeller prefers the clip with the higher true return. Here the true
rewards of every step are recorded beside each segment (``RolledSegment.true_rewards``) for that labeller
and for evaluation only; nothing learned reads them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium
import numpy as np

from rewardlab.control.segments import Segment, SegmentPreference

if TYPE_CHECKING:
    from rewardlab.control.reward_net import RewardNet, RewardNetConfig

Policy = Callable[[np.ndarray], Any]
"""An observation → an action the environment accepts (None in ``collect_segments``: uniform random)."""


@dataclass(frozen=True)
class RolledSegment:
    """A segment and the true reward of each of its steps (kept aside: for the simulated labeller and for
    evaluation, never for learning)."""

    segment: Segment
    true_rewards: tuple[float, ...]
    task: str | None = None

    @property
    def true_return(self) -> float:
        """The segment's partial return Σ_t r(o_t, a_t), the quantity Christiano et al.'s labeller compares."""
        return float(sum(self.true_rewards))


def make_env(env_id: str, **kwargs: Any) -> gymnasium.Env:
    """``gymnasium.make(env_id)``, with an unknown id named with the close matches instead of a traceback."""
    try:
        return gymnasium.make(env_id, **kwargs)
    except gymnasium.error.Error as error:
        raise ValueError(f"unknown Gymnasium environment {env_id!r} ({error})") from None


def observation_list(observation: Any) -> tuple[float, ...]:
    """A flat tuple of floats: the segments file's form of a Box observation."""
    return tuple(float(x) for x in np.asarray(observation, dtype=float).ravel())


def action_value(action: Any) -> int | tuple[float, ...]:
    """An int for a Discrete action, a flat tuple of floats for a Box one (the segments file's forms)."""
    array = np.asarray(action)
    if array.ndim == 0 and np.issubdtype(array.dtype, np.integer):
        return int(array)
    return tuple(float(x) for x in array.ravel())


def collect_segments(
    env_id: str,
    n: int,
    length: int,
    policy: Policy | None = None,
    seed: int = 0,
) -> list[RolledSegment]:
    """``n`` segments of up to ``length`` steps, played by ``policy`` (None: uniform random actions).

    Segments follow one another along the episodes; one never crosses an episode's end, so a segment
    that reaches a terminal state (a fallen pole) is shorter than ``length``, and the next one starts a
    new episode. The environment and the random actions are seeded from ``seed``.
    """
    if n < 1 or length < 1:
        raise ValueError(f"n and length must be positive (got n={n}, length={length})")
    env = make_env(env_id)
    env.action_space.seed(seed)
    observation, _ = env.reset(seed=seed)
    segments: list[RolledSegment] = []
    while len(segments) < n:
        observations, actions, rewards = [observation_list(observation)], [], []
        done = False
        while len(actions) < length and not done:
            action = env.action_space.sample() if policy is None else policy(np.asarray(observation))
            observation, reward, terminated, truncated, _ = env.step(action)
            observations.append(observation_list(observation))
            actions.append(action_value(action))
            rewards.append(float(reward))
            done = terminated or truncated
        segments.append(RolledSegment(Segment(tuple(observations), tuple(actions)), tuple(rewards), env_id))
        if done:
            observation, _ = env.reset()
    env.close()
    return segments


def preference_probability(return_a: float, return_b: float, rationality: float = 1.0) -> float:
    """P(a ≻ b) = σ(β·(R_a − R_b)) = 1 / (1 + exp(−β·(R_a − R_b))): Bradley-Terry over partial returns
    (Christiano et al. 2017, eq. 1), β the labeller's rationality (∞: always the higher return)."""
    gap = rationality * (return_a - return_b)
    return 1.0 / (1.0 + math.exp(-gap)) if gap >= 0 else math.exp(gap) / (1.0 + math.exp(gap))


def simulate_segment_preferences(
    segments: Sequence[RolledSegment],
    n_pairs: int,
    seed: int = 0,
    rationality: float | None = 1.0,
    tie_margin: float = 0.0,
    error_rate: float = 0.0,
) -> list[SegmentPreference]:
    """``n_pairs`` judgements of random pairs of distinct ``segments`` by a simulated human.

    The labeller says ``equal`` when the true returns differ by at most ``tie_margin`` (Christiano et
    al. let the person say the clips are equally good); otherwise it prefers ``a`` with probability
    σ(β·(R_a − R_b)) (``rationality`` β; None: always the higher return), and with probability
    ``error_rate`` answers uniformly at random instead (their synthetic oracle's 10 % error, sec. 2.2.3).
    """
    if len(segments) < 2:
        raise ValueError(f"need at least 2 segments to compare (got {len(segments)})")
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate must be in [0, 1] (got {error_rate})")
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n_pairs):
        i, j = rng.choice(len(segments), size=2, replace=False)
        a, b = segments[int(i)], segments[int(j)]
        gap = a.true_return - b.true_return
        if abs(gap) <= tie_margin:
            preferred = "equal"
        elif rng.random() < error_rate:
            preferred = "a" if rng.random() < 0.5 else "b"
        elif rationality is None:
            preferred = "a" if gap > 0 else "b"
        else:
            preferred = "a" if rng.random() < preference_probability(a.true_return, b.true_return, rationality) else "b"
        records.append(SegmentPreference(a.segment, b.segment, preferred, a.task))
    return records


class LearnedReward(gymnasium.Wrapper):
    """The environment with its reward replaced by a learned r̂(o, a), optionally normalised as
    (r̂ − shift) / scale (Christiano et al. normalise r̂ to zero mean and a fixed spread).

    The true reward stays in ``info["true_reward"]``. Beware shifting a reward to zero mean in an
    environment whose episodes end on failure (CartPole): steps worth less than nothing make ending
    the episode early the best policy.
    """

    def __init__(self, env: gymnasium.Env, reward: RewardNet, shift: float = 0.0, scale: float = 1.0):
        super().__init__(env)
        if not scale > 0:
            raise ValueError(f"scale must be positive (got {scale})")
        self.reward_net, self.shift, self.scale = reward, float(shift), float(scale)
        self._observation: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        observation, info = self.env.reset(**kwargs)
        self._observation = observation
        return observation, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if self._observation is None:
            raise RuntimeError("call reset() before step()")
        learned = self.reward_net.reward(self._observation, action)
        observation, true_reward, terminated, truncated, info = self.env.step(action)
        self._observation = observation
        info = {**info, "true_reward": float(true_reward)}
        return observation, (learned - self.shift) / self.scale, terminated, truncated, info


def episode_returns(env_id: str, policy: Policy | None, episodes: int, seed: int = 0) -> list[float]:
    """The true (undiscounted) return of each of ``episodes`` episodes played by ``policy`` (None: uniform
    random), episode ``i`` reset with seed ``seed + i`` so that two policies meet the same starts."""
    if episodes < 1:
        raise ValueError(f"episodes must be positive (got {episodes})")
    env = make_env(env_id)
    env.action_space.seed(seed)
    returns = []
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            action = env.action_space.sample() if policy is None else policy(np.asarray(observation))
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def reward_config(env_id: str, hidden: tuple[int, ...] = (64, 64)) -> RewardNetConfig:
    """A ``RewardNetConfig`` sized from the environment's spaces (a flat Box observation; a Discrete or
    flat Box action), rather than guessed from the actions some segments happen to hold."""
    from rewardlab.control.reward_net import RewardNetConfig

    env = make_env(env_id)
    observation_space, action_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(observation_space, gymnasium.spaces.Box):
        raise ValueError(f"{env_id}: a learned reward needs a Box observation space (got {observation_space})")
    if isinstance(action_space, gymnasium.spaces.Discrete):
        return RewardNetConfig(int(np.prod(observation_space.shape)), int(action_space.n), True, hidden)
    if isinstance(action_space, gymnasium.spaces.Box):
        return RewardNetConfig(int(np.prod(observation_space.shape)), int(np.prod(action_space.shape)), False, hidden)
    raise ValueError(f"{env_id}: a learned reward needs a Discrete or Box action space (got {action_space})")
