"""Learned rewards over Gymnasium environments, SB3 policies trained on them, and DeformPAM's best-of-K."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium")
pytest.importorskip("stable_baselines3")

from rewardlab.control.correlation import correlations, fisher_interval, reward_correlation
from rewardlab.control.gym_env import (
    LearnedReward,
    collect_segments,
    make_env,
    preference_probability,
    reward_config,
    simulate_segment_preferences,
)
from rewardlab.control.policy_training import (
    evaluate_policy_true_return,
    load_policy,
    sample_actions,
    save_policy,
    train_policy,
)
from rewardlab.control.reward_net import (
    RewardNet,
    RewardNetConfig,
    RewardTrainConfig,
    reward_normalisation,
    segment_returns,
    train_reward,
)
from rewardlab.control.segments import Segment, read_preferences, write_preferences
from rewardlab.control.selection import action_outcome, action_preferences, reward_scorer, select_action


@pytest.fixture(scope="module")
def cartpole():
    """Random-play CartPole segments, BT labels on their true returns (= their lengths), and r̂ fitted to them."""
    segments = collect_segments("CartPole-v1", 160, 20, seed=0)
    prefs = simulate_segment_preferences(segments[:120], 300, seed=0, rationality=None)
    torch.manual_seed(0)
    net = train_reward(prefs, RewardTrainConfig(epochs=15), progress=False)
    return segments, prefs, net


def test_segments_have_one_more_observation_than_actions_and_end_at_episode_ends():
    segments = collect_segments("CartPole-v1", 12, 15, seed=3)
    assert len(segments) == 12
    for s in segments:
        assert 1 <= len(s.segment) <= 15
        assert len(s.segment.observations) == len(s.segment) + 1
        assert all(len(o) == 4 and all(isinstance(x, float) for x in o) for o in s.segment.observations)
        assert all(isinstance(a, int) and a in (0, 1) for a in s.segment.actions)
        assert s.true_return == len(s.segment)  # CartPole pays 1 a step, the step that ends the episode included
    assert any(len(s.segment) < 15 for s in segments)  # random play drops the pole within 15 steps sometimes
    pendulum = collect_segments("Pendulum-v1", 3, 5, seed=0)
    assert all(len(a) == 1 and isinstance(a[0], float) for s in pendulum for a in s.segment.actions)
    assert [len(s.segment) for s in pendulum] == [5, 5, 5]  # no terminal state in Pendulum


def test_same_seed_gives_the_same_segments_and_a_policy_is_used():
    assert collect_segments("CartPole-v1", 4, 10, seed=1) == collect_segments("CartPole-v1", 4, 10, seed=1)
    always_left = collect_segments("CartPole-v1", 3, 10, policy=lambda o: 0, seed=1)
    assert {a for s in always_left for a in s.segment.actions} == {0}


def test_unknown_environment_is_named_and_reward_configs_follow_the_spaces():
    with pytest.raises(ValueError, match="NoSuchEnv-v0"):
        make_env("NoSuchEnv-v0")
    assert reward_config("CartPole-v1") == RewardNetConfig(4, 2, True)
    assert reward_config("Pendulum-v1", hidden=(8,)) == RewardNetConfig(3, 1, False, (8,))
    with pytest.raises(ValueError, match="Box observation space"):
        reward_config("FrozenLake-v1")


def test_preference_probability_is_bradley_terry_on_returns():
    """σ(1·(3 − 1)) = 1/(1 + e⁻²) = 0.880797; equal returns give ½; the sign flips with the order."""
    assert preference_probability(3.0, 1.0) == pytest.approx(1 / (1 + math.exp(-2)))
    assert preference_probability(2.0, 2.0) == 0.5
    assert preference_probability(1.0, 3.0) == pytest.approx(1 - 1 / (1 + math.exp(-2)))
    assert preference_probability(0.0, 1000.0, rationality=1.0) == 0.0  # no overflow


def test_simulated_labeller_prefers_the_longer_segment_and_ties_equal_ones(tmp_path):
    segments = collect_segments("CartPole-v1", 30, 20, seed=0)
    prefs = simulate_segment_preferences(segments, 200, seed=1, rationality=None)
    by_segment = {s.segment: s.true_return for s in segments}
    for p in prefs:
        ra, rb = by_segment[p.a], by_segment[p.b]
        assert p.preferred == ("equal" if ra == rb else "a" if ra > rb else "b")
    write_preferences(tmp_path / "p.jsonl", prefs)
    assert [r.preferred for r in read_preferences(tmp_path / "p.jsonl")] == [p.preferred for p in prefs]
    assert read_preferences(tmp_path / "p.jsonl")[0].a == prefs[0].a  # lists of floats survive the file
    from_file = train_reward(read_preferences(tmp_path / "p.jsonl"), RewardTrainConfig(epochs=1), progress=False)
    assert from_file.config == RewardNetConfig(4, 2, True)
    first_row = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])
    assert isinstance(first_row["a"]["observations"][0][0], float) and isinstance(first_row["a"]["actions"][0], int)


def test_bradley_terry_on_segment_returns_recovers_the_true_ordering(cartpole):
    """Christiano et al.'s claim on a case with a known answer: r̂ learned from labels on CartPole's true
    partial returns ranks held-out segments as the true reward does (Spearman > 0.8)."""
    segments, _, net = cartpole
    held_out = reward_correlation(net, segments[120:])
    assert held_out.spearman.value > 0.8
    assert held_out.spearman.low < held_out.spearman.value < held_out.spearman.high
    assert held_out.n == 40


def test_segment_return_is_the_sum_of_step_rewards(cartpole):
    segments, _, net = cartpole
    seg = segments[0].segment
    by_step = sum(net.reward(o, a) for o, a in zip(seg.observations[:-1], seg.actions, strict=True))
    assert float(segment_returns(net, [seg]).detach()[0]) == pytest.approx(by_step, rel=1e-5, abs=1e-5)


def test_safetensors_round_trip_gives_the_same_rewards(cartpole, tmp_path):
    segments, _, net = cartpole
    net.save(tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["reward.json", "reward.safetensors"]
    again = RewardNet.load(tmp_path / "r")
    batch = [s.segment for s in segments[:10]]
    assert torch.equal(segment_returns(again, batch), segment_returns(net, batch))
    (tmp_path / "r" / "reward.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"reward\.json"):
        RewardNet.load(tmp_path / "r")
    with pytest.raises(FileNotFoundError, match=r"reward\.safetensors"):
        RewardNet.load(tmp_path / "missing")


def test_an_objective_that_needs_more_than_pairs_of_scalars_is_refused(cartpole):
    _, prefs, _ = cartpole
    for name in ("plackett_luce", "pal", "ensemble_bradley_terry"):  # rankings, users, several heads
        with pytest.raises(ValueError, match=f"objective '{name}' cannot train a segment reward"):
            train_reward(prefs[:5], RewardTrainConfig(objective=name), progress=False)
    davidson = train_reward(prefs[:20], RewardTrainConfig(objective="davidson", epochs=1), progress=False)
    assert isinstance(davidson, RewardNet)  # another pairwise objective over scalars stands in


def test_training_needs_a_non_tied_judgement():
    seg = Segment(((0.0,), (1.0,)), (0,))
    from rewardlab.control.segments import SegmentPreference

    ties = [SegmentPreference(seg, seg, "equal")]
    net = train_reward(ties, RewardTrainConfig(epochs=1), progress=False)  # bradley_terry reads ties: trains
    assert isinstance(net, RewardNet)


def test_the_wrapper_returns_the_learned_reward_and_keeps_the_true_one(cartpole):
    _, _, net = cartpole
    shift, scale = 0.5, 2.0
    env = LearnedReward(make_env("CartPole-v1"), net, shift=shift, scale=scale)
    observation, _ = env.reset(seed=0)
    for action in (0, 1, 1):
        expected = (net.reward(observation, action) - shift) / scale
        observation, reward, _, _, info = env.step(action)
        assert reward == pytest.approx(expected)
        assert info["true_reward"] == 1.0
    mean, std = reward_normalisation(net, [s.segment for s in cartpole[0][:20]])
    assert std > 0 and math.isfinite(mean)


def test_fisher_interval_matches_the_formula():
    """r = 0.5, n = 28: atanh 0.5 = 0.549306, se = 1/5 = 0.2, ± 1.959964·0.2 = ± 0.391993 →
    tanh(0.157313) = 0.156028, tanh(0.941299) = 0.735818."""
    low, high = fisher_interval(0.5, 28)
    assert (low, high) == pytest.approx((0.156028, 0.735818), abs=1e-6)
    low_s, high_s = fisher_interval(0.5, 28, rank=True)  # se ×√1.125: wider
    assert low_s < low and high_s > high
    assert math.isnan(fisher_interval(0.5, 3)[0])
    out = correlations([1, 2, 3, 4, 5], [2, 4, 6, 8, 11])
    assert out.spearman.value == pytest.approx(1.0) and out.pearson.value < 0.999  # ranks agree, values are not linear
    assert math.isnan(correlations([1, 1, 1, 1], [1, 2, 3, 4]).pearson.value)


def test_tiny_sb3_runs_train_evaluate_save_and_load(cartpole, tmp_path):
    _, _, net = cartpole
    small = {"n_steps": 64, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": [16]}}
    policy = train_policy("CartPole-v1", net, "ppo", timesteps=128, seed=0, hyperparams=small, progress=False)
    assert policy.reward == "learned"
    estimate = evaluate_policy_true_return(policy, episodes=3, seed=5)
    assert estimate.k == 3 and 8 <= estimate.mean <= 500 and estimate.low <= estimate.mean <= estimate.high
    save_policy(policy, tmp_path / "p")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["policy.json", "policy.safetensors"]
    again = load_policy(tmp_path / "p")
    observations = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    assert np.array_equal(
        again.model.predict(observations, deterministic=True)[0],
        policy.model.predict(observations, deterministic=True)[0],
    )
    assert evaluate_policy_true_return(again, episodes=3, seed=5).mean == estimate.mean
    with pytest.raises(ValueError, match="unknown algorithm 'pp0'"):
        train_policy("CartPole-v1", algorithm="pp0", timesteps=10, progress=False)
    with pytest.raises(ValueError, match="JSON"):
        train_policy(
            "CartPole-v1", timesteps=10, hyperparams={"policy_kwargs": {"activation_fn": torch.nn.ReLU}}, progress=False
        )


def test_continuous_policy_samples_k_actions_in_the_space():
    small = {"n_steps": 64, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": [16]}}
    policy = train_policy("Pendulum-v1", algorithm="ppo", timesteps=64, seed=0, hyperparams=small, progress=False)
    actions = sample_actions(policy, np.array([1.0, 0.0, 0.0], dtype=np.float32), 16)
    assert actions.shape == (16, 1) and np.all(np.abs(actions) <= 2.0)
    assert len(np.unique(actions)) > 1  # stochastic


def test_selection_with_a_known_reward_picks_the_argmax_candidate():
    """r(o, a) = −(a − o)²: at o = 0.3 the candidates −1, 0.25, 0.9, 0.31 score −1.69, −0.0025, −0.36,
    −0.0001, so the best is 0.31 (index 3); k = 1 is the raw sample, the reward unread."""
    candidates = [-1.0, 0.25, 0.9, 0.31]
    out = select_action(lambda o, k: candidates[:k], lambda o, cs: [-((a - o) ** 2) for a in cs], 0.3, 4)
    assert (out.index, out.action) == (3, 0.31)
    assert out.scores == pytest.approx((-1.69, -0.0025, -0.36, -0.0001))
    raw = select_action(lambda o, k: candidates[:k], lambda o, cs: pytest.fail("scored"), 0.3, 1)
    assert raw.action == -1.0
    with pytest.raises(ValueError, match="k must be at least 1"):
        select_action(lambda o, k: [], lambda o, cs: [], 0.3, 0)


def test_reward_scorer_scores_candidates_as_the_net_does():
    net = RewardNet(RewardNetConfig(3, 1, discrete=False, hidden=(8,)))
    obs = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    candidates = np.array([[-1.0], [0.5], [2.0]], dtype=np.float32)
    scores = reward_scorer(net)(obs, candidates)
    assert scores == pytest.approx([net.reward(obs, c) for c in candidates], abs=1e-6)  # float32 batch vs one by one


def test_action_outcome_plays_on_a_copy_and_preferences_compare_outcomes():
    env = make_env("Pendulum-v1")
    env.reset(seed=0)
    state = np.array(env.unwrapped.state)
    hold = lambda o: np.array([0.0], dtype=np.float32)  # noqa: E731
    first = action_outcome(env, np.array([2.0], dtype=np.float32), 3, hold)
    assert np.array_equal(env.unwrapped.state, state)  # the real environment did not move
    assert first == action_outcome(env, np.array([2.0], dtype=np.float32), 3, hold)  # deterministic
    sampler = lambda o, k: [np.array([-2.0], dtype=np.float32), np.array([2.0], dtype=np.float32)][:k]  # noqa: E731
    prefs = action_preferences("Pendulum-v1", sampler, hold, 5, 3, hold, seed=0)
    assert len(prefs) == 5
    for p in prefs:
        assert p.a.observations[0] == p.b.observations[0] and len(p.a) == 1
        assert p.a.actions == ((-2.0,),) and p.b.actions == ((2.0,),)


def test_a_reward_learned_from_action_preferences_ranks_held_out_actions_by_their_outcome():
    """DeformPAM's premise on a case with a known answer: judgements between two actions at the same state,
    by their true outcome, teach r̂(o, a) to order unseen pairs of actions the same way."""
    rng = np.random.default_rng(0)
    sampler = lambda o, k: rng.uniform(-2, 2, size=(k, 1)).astype(np.float32)  # noqa: E731
    hold = lambda o: np.array([0.0], dtype=np.float32)  # noqa: E731
    prefs = action_preferences("Pendulum-v1", sampler, hold, 300, 3, hold, seed=0)
    decided = [p for p in prefs if p.preferred != "equal"]
    order = np.random.default_rng(1).permutation(len(decided))  # held-out states from the same visits
    train, held_out = [decided[i] for i in order[:200]], [decided[i] for i in order[200:]]
    net = train_reward(train, RewardTrainConfig(epochs=40), progress=False)
    with torch.no_grad():
        a, b = segment_returns(net, [p.a for p in held_out]), segment_returns(net, [p.b for p in held_out])
    agree = [(x > y) == (p.preferred == "a") for x, y, p in zip(a.tolist(), b.tolist(), held_out, strict=True)]
    assert np.mean(agree) > 0.7  # chance is 1/2; 0.81 on this seed
