"""The tabular MDPs and the segment-preference file that every control method builds on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rewardlab.control.mdp import (
    DELIVERY_WEIGHTS,
    expected_return,
    greedy_policy,
    gridworld,
    normalized_return,
    policy_values,
    random_gridworld,
    rollout,
    uniform_return,
    value_iteration,
)
from rewardlab.control.segments import Segment, SegmentPreference, read_preferences, write_preferences
from rewardlab.data.records import DataError

W = np.array(DELIVERY_WEIGHTS)
UP, DOWN, LEFT, RIGHT = range(4)


def test_a_corridor_has_the_values_written_by_hand():
    """``S.G`` with γ = 1: states 0, 1 and the goal 2. From 1, right enters the goal: −1 + 50 = 49; from 0,
    right then right: −1 − 1 + 50 = 48. Any other move stays put (−1) or goes back."""
    mdp = gridworld(["S.G"], gamma=1.0)
    V, Q = value_iteration(mdp, mdp.reward(W))
    assert V.tolist() == [48.0, 49.0, 0.0]
    assert Q[0].tolist() == [47.0, 47.0, 47.0, 48.0]  # up, down, left: stay (−1) then 48
    assert greedy_policy(Q)[:2].tolist() == [RIGHT, RIGHT]
    assert mdp.start.tolist() == [1.0, 0.0, 0.0]  # only the marked start


def test_optimal_values_are_differentiable_in_the_reward_weights():
    """V*(0) = φ(path)·w along the optimal path: two steps and one goal, so ∂V*(0)/∂w = (2, 0, 0, 1, 0)."""
    mdp = gridworld(["S.G"], gamma=1.0)
    w = torch.tensor(DELIVERY_WEIGHTS, dtype=torch.float64, requires_grad=True)
    V, _ = value_iteration(mdp, torch.as_tensor(mdp.features) @ w)
    V[0].backward()
    assert w.grad.tolist() == [2.0, 0.0, 0.0, 1.0, 0.0]


def test_slip_spreads_a_move_over_the_other_directions():
    """With slip 0.3 a move goes to each of the three other directions with 0.1: from the middle of ``S.G``,
    right reaches the goal w.p. 0.7, up and down hit the edge (stay, 0.2) and left goes back (0.1)."""
    mdp = gridworld(["S.G"], slip=0.3)
    assert mdp.transitions[1, RIGHT].round(12).tolist() == [0.1, 0.2, 0.7]
    assert mdp.features[1, RIGHT, 3] == pytest.approx(0.7)  # the goal feature is expected over outcomes
    assert not mdp.deterministic


def test_policy_evaluation_agrees_with_value_iteration_and_the_normalised_return_spans_zero_to_one():
    mdp = random_gridworld(np.random.default_rng(3), size=5)
    reward = mdp.reward(W)
    V, Q = value_iteration(mdp, reward, iterations=1000)
    best = greedy_policy(Q)
    assert np.allclose(policy_values(mdp, best, reward), V.numpy(), atol=1e-6)
    assert normalized_return(mdp, best, W) == pytest.approx(1.0)
    assert expected_return(mdp, best, W) > uniform_return(mdp, reward)
    worst = greedy_policy(-Q)  # the action each state values least
    assert normalized_return(mdp, worst, W) < 0.5


def test_terminal_states_absorb_and_rollouts_keep_their_length():
    mdp = gridworld(["SG"], gamma=1.0)
    states, actions = rollout(mdp, np.array([RIGHT, RIGHT]), 0, 4, np.random.default_rng(0))
    assert states == [0, 1, 1, 1, 1] and len(actions) == 4
    assert not mdp.features[1].any()  # nothing is earned after the end


@pytest.mark.parametrize(
    ("layout", "message"),
    [(["S.", "S"], "equal length"), (["S?G"], "unknown cell characters")],
)
def test_bad_layouts_are_refused(layout, message):
    with pytest.raises(ValueError, match=message):
        gridworld(layout)


def test_segment_preferences_round_trip(tmp_path):
    record = SegmentPreference(
        Segment((0, 1, 2), (RIGHT, RIGHT)), Segment(((0.5, -1.0), (0.25, 2.0)), ((1.0,),)), "b", task="corridor"
    )
    path = write_preferences(tmp_path / "prefs.jsonl", [record])
    (back,) = read_preferences(path)
    assert (back.a, back.b, back.preferred, back.task, back.label) == (record.a, record.b, "b", "corridor", 0.0)


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ({"b": {"observations": [0, 1], "actions": [0]}, "preferred": "a"}, "a", "expected an object"),
        (
            {
                "a": {"observations": [0], "actions": [0]},
                "b": {"observations": [0, 1], "actions": [0]},
                "preferred": "a",
            },
            "a.observations",
            "expected one more observation",
        ),
        ({"a": {"observations": [0], "actions": []}, "b": {}, "preferred": "a"}, "a.actions", "at least one step"),
        (
            {
                "a": {"observations": [0, 1], "actions": [0]},
                "b": {"observations": [0, 1], "actions": [0]},
                "preferred": 1,
            },
            "preferred",
            "expected one of a, b, equal",
        ),
    ],
)
def test_a_bad_row_names_its_line_and_field(tmp_path, row, field, reason):
    good = {
        "a": {"observations": [0, 1], "actions": [0]},
        "b": {"observations": [1, 2], "actions": [3]},
        "preferred": "a",
    }
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError) as caught:
        read_preferences(path)
    assert caught.value.location == f"{path}:2" and caught.value.field == field and reason in caught.value.reason


def test_an_empty_file_is_refused(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="holds no rows"):
        read_preferences(tmp_path / "empty.jsonl")
