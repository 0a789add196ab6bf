"""Policies trained with Stable-Baselines3 on a Gymnasium environment's true reward or on a learned one,
and judged by the true reward.

The last step of Christiano et al.'s loop (2017, sec. 2.2.1): an ordinary RL algorithm optimises the
learned reward r̂ as if it were the environment's, and what counts is the true return the policy then earns.
A policy is saved as its network's ``state_dict`` in safetensors plus a JSON config (environment,
algorithm, hyperparameters) from which ``load_policy`` rebuilds it; SB3's own ``.save`` pickles, so it is
not used for anything a user loads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save

from rewardlab.atomic import write_files_atomic
from rewardlab.control.gym_env import episode_returns, make_env
from rewardlab.control.reward_net import RewardNet
from rewardlab.evaluate.cv_report import MeanInterval, t_interval
from rewardlab.progress import progress_bar

ALGORITHMS = {"ppo": "PPO", "a2c": "A2C", "dqn": "DQN", "sac": "SAC", "td3": "TD3", "ddpg": "DDPG"}
"""Stable-Baselines3 algorithms by name (DQN needs a Discrete action; SAC, TD3 and DDPG a Box one)."""

POLICY_WEIGHTS = "policy.safetensors"
POLICY_CONFIG = "policy.json"


@dataclass
class TrainedPolicy:
    model: Any
    """The Stable-Baselines3 model (``model.predict`` acts)."""
    env_id: str
    algorithm: str
    hyperparams: dict[str, Any] = field(default_factory=dict)
    reward: str = "true"
    """What it was trained on: ``true`` or a description of the learned reward."""

    def act(self, observation: np.ndarray, deterministic: bool = True) -> Any:
        action, _ = self.model.predict(observation, deterministic=deterministic)
        return action


def _algorithm_class(algorithm: str) -> type:
    import stable_baselines3

    name = ALGORITHMS.get(algorithm.lower())
    if name is None:
        raise ValueError(f"unknown algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")
    return getattr(stable_baselines3, name)


def _check_hyperparams(hyperparams: Mapping[str, Any]) -> dict[str, Any]:
    """Only JSON values: they are saved beside the weights to rebuild the policy, and nothing loaded runs code."""
    try:
        return json.loads(json.dumps(dict(hyperparams)))
    except TypeError as error:
        raise ValueError(f"hyperparameters must be JSON values (numbers, strings, lists, objects): {error}") from None


def _progress_callback(advance: Any, total: int) -> Any:
    """Advance the bar by the environment steps taken, up to ``total``: SB3 finishes its last rollout, so it
    may run past ``total`` by up to one rollout."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Progress(BaseCallback):
        def _on_step(self) -> bool:
            shown = self.num_timesteps - self.training_env.num_envs
            if shown < total:
                advance(min(self.training_env.num_envs, total - shown))
            return True

    return Progress()


def train_policy(
    env_id: str,
    reward: RewardNet | None = None,
    algorithm: str = "ppo",
    timesteps: int = 50_000,
    seed: int = 0,
    hyperparams: Mapping[str, Any] | None = None,
    n_envs: int = 1,
    reward_shift: float = 0.0,
    reward_scale: float = 1.0,
    progress: bool = True,
) -> TrainedPolicy:
    """Train ``algorithm`` on ``env_id`` for ``timesteps`` steps, on the true reward (``reward`` None) or on
    the learned one, (r̂ − ``reward_shift``) / ``reward_scale``, through the ``LearnedReward`` wrapper.

    ``hyperparams`` go to the algorithm's constructor (``{"n_steps": 256, "policy_kwargs": {"net_arch":
    [64, 64]}}``); the device defaults to the CPU, where SB3 runs small MLP policies fastest.
    """
    from stable_baselines3.common.env_util import make_vec_env

    from rewardlab.control.gym_env import LearnedReward

    cls = _algorithm_class(algorithm)
    hyperparams = _check_hyperparams(hyperparams or {})
    make_env(env_id).close()  # an unknown id fails here, named, not deep inside SB3
    wrapper = None if reward is None else LearnedReward
    wrapper_kwargs = None if reward is None else {"reward": reward, "shift": reward_shift, "scale": reward_scale}
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed, wrapper_class=wrapper, wrapper_kwargs=wrapper_kwargs)
    model = cls("MlpPolicy", env, seed=seed, verbose=0, **{"device": "cpu", **hyperparams})
    with progress_bar(progress, f"{algorithm} on {env_id}", timesteps) as advance:
        model.learn(total_timesteps=timesteps, callback=_progress_callback(advance, timesteps))
    env.close()
    return TrainedPolicy(model, env_id, algorithm.lower(), hyperparams, "true" if reward is None else "learned")


def evaluate_policy_true_return(
    policy: TrainedPolicy, env_id: str | None = None, episodes: int = 20, seed: int = 0, deterministic: bool = True
) -> MeanInterval:
    """Mean true return over ``episodes`` episodes (seeds ``seed``, ``seed + 1``...) with its 95 % Student-t
    interval across episodes; the environment is always the unwrapped one, whatever trained the policy."""
    returns = episode_returns(
        env_id or policy.env_id, lambda o: policy.act(o, deterministic=deterministic), episodes, seed
    )
    return t_interval(returns)


def save_policy(policy: TrainedPolicy, folder: str | Path) -> Path:
    """The policy network's weights (safetensors) and what rebuilds it (JSON) into ``folder``, both or neither."""
    folder = Path(folder)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in policy.model.policy.state_dict().items()}
    config = {
        "env_id": policy.env_id,
        "algorithm": policy.algorithm,
        "hyperparams": policy.hyperparams,
        "reward": policy.reward,
    }
    write_files_atomic(
        {folder / POLICY_WEIGHTS: save(tensors), folder / POLICY_CONFIG: json.dumps(config, indent=1) + "\n"}
    )
    return folder


def load_policy(folder: str | Path) -> TrainedPolicy:
    """Rebuild a policy saved by ``save_policy``: a fresh model of the same algorithm, environment and
    hyperparameters, whose network then takes the saved weights (its optimiser state is not kept)."""
    folder = Path(folder)
    for name in (POLICY_WEIGHTS, POLICY_CONFIG):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}: a saved control policy needs {name}, and it is missing")
    try:
        config = json.loads((folder / POLICY_CONFIG).read_text(encoding="utf-8"))
        env_id, algorithm, hyperparams = config["env_id"], config["algorithm"], dict(config["hyperparams"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{folder / POLICY_CONFIG}: not a policy config ({error})") from None
    env = make_env(env_id)
    model = _algorithm_class(algorithm)("MlpPolicy", env, verbose=0, **{"device": "cpu", **hyperparams})
    try:
        model.policy.load_state_dict(load_file(folder / POLICY_WEIGHTS))
    except RuntimeError as error:
        raise ValueError(f"{folder / POLICY_WEIGHTS}: weights do not match {POLICY_CONFIG} ({error})") from None
    model.policy.set_training_mode(False)
    return TrainedPolicy(model, env_id, algorithm, hyperparams, str(config.get("reward", "true")))


@torch.no_grad()
def sample_actions(policy: TrainedPolicy, observation: np.ndarray, k: int) -> np.ndarray:
    """``k`` actions drawn from the policy's stochastic action distribution at one observation (clipped
    to the action space as SB3 does when it acts), shape (k, ...)."""
    batch = np.repeat(np.asarray(observation)[None], k, axis=0)
    actions, _ = policy.model.predict(batch, deterministic=False)
    return np.asarray(actions)
