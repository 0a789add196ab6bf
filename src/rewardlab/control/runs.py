"""What each ``rewardlab control`` command does, as functions: the command line parses, calls one and prints.

Every report is a JSON-ready dict: the policies trained and their true returns, the learned reward's
correlation with the true one, the CVaR table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.control.correlation import correlations, reward_correlation
from rewardlab.control.distributional import (
    cvar_interval,
    cvar_of_distribution,
    cvar_optimal_policy,
    mean_optimal_policy,
    return_distribution,
    return_samples,
    transition_rewards,
)
from rewardlab.control.gym_env import collect_segments, episode_returns
from rewardlab.control.mdp import TabularMDP, expected_return, greedy_policy, normalized_return
from rewardlab.control.pearl import fit_robust_reward, transfer_preferences
from rewardlab.control.policy_training import (
    evaluate_policy_true_return,
    load_policy,
    sample_actions,
    save_policy,
    train_policy,
)
from rewardlab.control.preference_models import optimal_values
from rewardlab.control.reward_net import RewardNet
from rewardlab.control.segments import SegmentPreference
from rewardlab.control.selection import action_preferences, reward_scorer, selecting_policy
from rewardlab.evaluate.cv_report import MeanInterval, t_interval


def _correlation(c: Any, over: str) -> dict[str, Any]:
    return {"over": over, "n": c.n, "pearson": c.pearson.value, "spearman": c.spearman.value}


def tabular_policy_report(mdp: TabularMDP, true: np.ndarray, learned: np.ndarray | None = None) -> dict[str, Any]:
    """The optimal policy of the learned reward (when given) and of the true one, each with its true return
    and normalised return, and the two rewards' correlation over the non-terminal transitions."""
    rewards = {"true": true} if learned is None else {"learned": learned, "true": true}
    report: dict[str, Any] = {"policies": {}}
    for name, w in rewards.items():
        policy = greedy_policy(optimal_values(mdp, torch.as_tensor(mdp.reward(w), dtype=torch.float64))[1])
        report["policies"][name] = {
            "true_return": expected_return(mdp, policy, true),
            "normalized_return": normalized_return(mdp, policy, true),
            "actions": policy.tolist(),
        }
    if learned is not None:
        alive = ~mdp.terminal
        c = correlations(mdp.reward(learned)[alive].ravel(), mdp.reward(true)[alive].ravel())
        report["correlation"] = _correlation(c, "transitions")
    return report


def gym_policy_report(
    env: str,
    net: RewardNet | None,
    output: Path,
    algorithm: str = "ppo",
    timesteps: int = 50_000,
    n_envs: int = 8,
    compare_true: bool = True,
    episodes: int = 20,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """SB3 policies on the learned reward and (``compare_true``) on the true one, saved in ``output`` as
    ``policy-learned``/``policy-true``, each with its mean true return over ``episodes`` and a 95 % interval;
    with a learned reward, its correlation with the true return over 200 random-play segments."""
    runs = {"learned": net, "true": None} if net is not None and compare_true else {"learned" if net else "true": net}
    report: dict[str, Any] = {"algorithm": algorithm, "timesteps": timesteps, "policies": {}}
    policies = {
        name: train_policy(env, learned, algorithm, timesteps, seed, n_envs=n_envs, progress=progress)
        for name, learned in runs.items()
    }
    for name, policy in policies.items():
        score = evaluate_policy_true_return(policy, episodes=episodes, seed=seed + 10_000)
        report["policies"][name] = {"true_return": score.mean, "low": score.low, "high": score.high}
    if net is not None:
        report["correlation"] = _correlation(
            reward_correlation(net, collect_segments(env, 200, 25, seed=seed + 20_000)), "random segments"
        )
    for name, policy in policies.items():  # written last: a run stopped while training leaves no folder behind
        save_policy(policy, output / f"policy-{name}")
    return report


def policy_action_preferences(folder: Path, env: str, n: int, lookahead: int, seed: int) -> list[SegmentPreference]:
    """DeformPAM's data from a saved policy: at states it visits, two of its sampled actions, the better
    outcome (the action, then ``lookahead`` steps of the policy's deterministic choice) preferred."""
    policy = load_policy(folder)
    if policy.env_id != env:
        raise ValueError(f"--actions-of {folder} was trained on {policy.env_id}, not --env {env}")
    sample = lambda observation, k: list(sample_actions(policy, observation, k))  # noqa: E731
    visit = lambda observation: sample(observation, 1)[0]  # noqa: E731
    follow = lambda observation: policy.act(np.asarray(observation))  # noqa: E731
    return action_preferences(env, sample, visit, n, lookahead, follow, seed=seed)


def selection_returns(
    net: RewardNet, folder: Path, ks: Sequence[int], episodes: int, seed: int
) -> dict[int, MeanInterval]:
    """The true return of acting by the best of K of the saved policy's sampled actions under ``net``, per K."""
    policy = load_policy(folder)
    sampler = lambda observation, n: list(sample_actions(policy, observation, n))  # noqa: E731
    return {
        k: t_interval(episode_returns(policy.env_id, selecting_policy(sampler, reward_scorer(net), k), episodes, seed))
        for k in ks
    }


def pearl_reward(
    target: Sequence[SegmentPreference],
    mdp: TabularMDP,
    source: Sequence[SegmentPreference],
    source_mdp: TabularMDP,
    steps: int,
    seed: int,
) -> np.ndarray:
    """PEARL: the source task's labels carried to the target's pairs by Gromov-Wasserstein (their own labels
    are not read), then the robust (Gaussian) reward fitted on the soft labels; its mean weights."""
    transfer = transfer_preferences(source, source_mdp, [(r.a, r.b) for r in target], mdp)
    return fit_robust_reward(mdp, transfer.preferences, transfer.labels, steps=steps, seed=seed).weights


def cvar_table(
    mdp: TabularMDP,
    weights: np.ndarray,
    alphas: Sequence[float],
    horizon: int,
    stock_step: float = 1.0,
    episodes: int = 10_000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The mean-optimal policy and each α's CVaR-optimal one: mean and CVaR_α of each, exact (from the return
    distribution) and from ``episodes`` rollouts with a bootstrap interval."""
    reward = transition_rewards(mdp, weights)
    plans = {"mean-optimal": mean_optimal_policy(mdp, reward, horizon)}
    for a in alphas:
        plans[f"CVaR {a:g}-optimal"] = cvar_optimal_policy(mdp, reward, a, horizon, stock_step=stock_step)
    rows = []
    for name, plan in plans.items():
        values, probs = return_distribution(mdp, plan.policy, reward)
        samples = return_samples(mdp, plan.policy, reward, episodes, np.random.default_rng(seed))
        row: dict[str, Any] = {"policy": name, "mean": float(values @ probs)}
        for a in alphas:
            estimate = cvar_interval(samples, a, seed=seed)
            row[f"cvar_{a:g}"] = {
                "exact": cvar_of_distribution(values, probs, a),
                "rollouts": estimate.cvar,
                "low": estimate.ci_low,
                "high": estimate.ci_high,
            }
        rows.append(row)
    return rows


def oni_online_report(mdp: TabularMDP, generate: Any, weights: np.ndarray, config: Any) -> dict[str, Any]:
    """ONI's learning agent beside the same agent, seed and episodes on the sparse reward alone (β = 0): the
    first episode that reached the goal, the share that did, the final greedy policy's normalised return."""
    from dataclasses import replace

    from rewardlab.control.oni import oni_online

    report: dict[str, Any] = {}
    for name, beta in (("sparse", 0.0), ("oni", config.beta)):
        run = oni_online(mdp, generate, weights, replace(config, beta=beta))
        report[name] = {
            "first_goal_episode": run.first_goal_episode,
            "share_reaching_goal": float(np.mean(run.reached_goal)),
            "normalized_return": run.normalized,
            "labels": run.labels,
            "errors": run.errors,
        }
    return report
