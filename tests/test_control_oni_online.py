"""ONI online (Zheng et al. 2024): a Q-learning agent explores a sparse-reward gridworld while a background worker
labels the captions it meets. The labeller is a real scripted function (what a capable LM would answer: coins and the
goal help the delivery task); the slow one really sleeps, the broken one really raises."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from rewardlab.control.environments import LAYOUTS
from rewardlab.control.mdp import DELIVERY_WEIGHTS, gridworld
from rewardlab.control.oni import (
    CAPTIONS,
    CaptionLabeller,
    ONIOnlineConfig,
    epsilon_greedy,
    oni_online,
    q_learning_update,
)
from rewardlab.runs.config import ConfigError

W = np.array(DELIVERY_WEIGHTS)
POCKET = LAYOUTS["pocket"]
"""10×7, the goal in the far corner, reachable only through the coin cell beside it: a random walk seldom gets there
in 50 steps, and the sparse reward (goal/hazard only) says nothing until it does."""
SMALL = ("S...", "....", "...#", "..cG")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def helpful(prompt: str) -> str:
    """The scripted labeller: yes for a coin or the goal, no for the rest."""
    caption = prompt.split('"')[1]
    return "Yes." if caption in (CAPTIONS["coin"], CAPTIONS["goal"]) else "No."


def slow_helpful(prompt: str) -> str:
    time.sleep(0.2)
    return helpful(prompt)


def broken_on_coins(prompt: str) -> str:
    if CAPTIONS["coin"] in prompt:
        raise RuntimeError("LM server down")
    return helpful(prompt)


def test_q_learning_update_by_hand():
    """Q(s, a) = 1, r = 0.5, γ = 0.9, max_a' Q(s', a') = 2, α = 0.5: δ = 0.5 + 0.9·2 − 1 = 1.3 and Q(s, a) becomes
    1 + 0.5·1.3 = 1.65. Into a terminal state the bootstrap is dropped: δ = 0.5 − 1 = −0.5, Q = 0.75."""
    q = np.array([[1.0, 0.0], [2.0, -1.0]])
    assert q_learning_update(q, 0, 0, 0.5, 1, False, alpha=0.5, gamma=0.9) == pytest.approx(1.3)
    assert q[0, 0] == pytest.approx(1.65) and q[1].tolist() == [2.0, -1.0]
    q[0, 0] = 1.0
    assert q_learning_update(q, 0, 0, 0.5, 1, True, alpha=0.5, gamma=0.9) == pytest.approx(-0.5)
    assert q[0, 0] == pytest.approx(0.75)


def test_epsilon_greedy_breaks_ties_at_random_and_explores_with_probability_epsilon():
    rng = np.random.default_rng(0)
    tied = [epsilon_greedy(np.array([0.0, 1.0, 1.0, 0.0]), 0.0, rng) for _ in range(400)]
    assert set(tied) == {1, 2} and 150 < tied.count(1) < 250
    explored = [epsilon_greedy(np.array([0.0, 5.0, 0.0, 0.0]), 0.4, rng) for _ in range(4000)]
    assert np.mean([a != 1 for a in explored]) == pytest.approx(0.4 * 3 / 4, abs=0.03)


def compare(seed: int) -> tuple:
    def config(beta: float) -> ONIOnlineConfig:
        return ONIOnlineConfig(beta=beta, episodes=150, episode_length=50, epsilon=0.2, asynchronous=False, seed=seed)

    return oni_online(gridworld(POCKET), helpful, W, config(0.0)), oni_online(
        gridworld(POCKET), helpful, W, config(0.3)
    )


def test_oni_reaches_the_goal_sooner_and_more_often_than_the_sparse_reward_alone():
    """The paper's claim, on seeds 0–9 of POCKET: with the labeller's intrinsic reward the agent is drawn back to the
    coin beside the goal, so it first reaches the goal in fewer episodes on average (never counts as 151), reaches
    it in more episodes, and its final greedy policy is better. Both agents act identically until they first meet
    the coin (same seed, nothing else differs), so per seed ONI is never later on 8 of these 10 seeds, not all."""
    runs = [compare(seed) for seed in range(10)]
    first = np.array([[r.first_goal_episode or 151 for r in pair] for pair in runs])
    reached = np.array([[sum(r.reached_goal) for r in pair] for pair in runs])
    normalized = np.array([[r.normalized for r in pair] for pair in runs])
    assert first[:, 1].mean() < first[:, 0].mean() - 10
    assert (first[:, 1] <= first[:, 0]).sum() >= 8
    assert reached[:, 1].sum() > 1.5 * reached[:, 0].sum()
    assert normalized[:, 1].mean() > normalized[:, 0].mean() + 0.2
    sparse, shaped = runs[0]
    assert sparse.labelled == [0] * 150 and not sparse.labels  # β = 0 never asks the LM
    assert shaped.labels == {CAPTIONS[k]: int(k in ("coin", "goal")) for k in ("empty", "wall", "coin", "goal")}
    assert shaped.helpful[CAPTIONS["coin"]] and not shaped.helpful[CAPTIONS["empty"]]


def test_synchronous_runs_repeat_exactly():
    config = ONIOnlineConfig(episodes=30, episode_length=30, asynchronous=False, seed=3)
    a, b = (oni_online(gridworld(SMALL), helpful, W, config) for _ in range(2))
    assert a.returns == b.returns and a.labelled == b.labelled and np.array_equal(a.q, b.q)
    assert len(a.returns) == 30 and a.first_goal_episode is not None


def test_the_agent_acts_while_a_slow_labeller_works_and_every_caption_is_labelled_by_the_end():
    """Each label takes 0.2 s; an episode of 50 steps takes milliseconds, so the first episodes end before any label
    has arrived, and the labels still queued at the last episode are waited for."""
    config = ONIOnlineConfig(episodes=20, episode_length=50, asynchronous=True, seed=0)
    started = time.perf_counter()
    out = oni_online(gridworld(SMALL), slow_helpful, W, config)
    assert out.labelled[0] == 0 and out.labelled == sorted(out.labelled)
    assert out.labels == {CAPTIONS[k]: int(k in ("coin", "goal")) for k in ("empty", "wall", "coin", "goal")}
    assert not out.errors and time.perf_counter() - started >= 0.8  # four captions, one worker, in turn


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_labeller_that_raises_is_reported_not_fatal(asynchronous):
    config = ONIOnlineConfig(episodes=20, episode_length=50, asynchronous=asynchronous, seed=0)
    out = oni_online(gridworld(SMALL), broken_on_coins, W, config)
    assert out.errors == {CAPTIONS["coin"]: "RuntimeError: LM server down"}
    assert CAPTIONS["coin"] not in out.labels and out.labels[CAPTIONS["goal"]] == 1
    assert len(out.returns) == 20 and np.isfinite(out.normalized)


def test_the_labeller_asks_once_per_caption_and_answers_in_order():
    asked: list[str] = []

    def generate(prompt: str) -> str:
        asked.append(prompt.split('"')[1])
        return "no"

    labeller = CaptionLabeller(generate, asynchronous=True)
    for caption in ("a", "b", "a", "c", "b"):
        labeller.submit(caption)
    labeller.close()
    assert asked == ["a", "b", "c"] and labeller.labels == {"a": 0, "b": 0, "c": 0}


def test_config_lists_every_problem():
    with pytest.raises(ConfigError) as error:
        ONIOnlineConfig(episodes=0, alpha=0.0, epsilon=2.0, lr=0.0).check()
    assert len(error.value.problems) == 4


def test_a_non_gridworld_mdp_is_refused_with_the_reason():
    mdp = gridworld(SMALL)
    other = type(mdp)(mdp.transitions, mdp.features[:, :, :2], mdp.terminal, mdp.start, 0.9, ("a", "b"), mdp.layout)
    with pytest.raises(ValueError, match="gridworld's features"):
        oni_online(other, helpful, [1.0, 0.0], ONIOnlineConfig(episodes=1, asynchronous=False))
