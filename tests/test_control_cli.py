"""``rewardlab control``: the whole loop from the command line, on gridworlds (exact) and on CartPole (SB3)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.control.distributional import cvar_of_distribution, cvar_optimal_policy, return_distribution
from rewardlab.control.distributional import transition_rewards as per_transition_rewards
from rewardlab.control.environments import tabular_env
from rewardlab.control.mdp import DELIVERY_WEIGHTS
from rewardlab.control.segments import read_preferences


def invoke(*args: str):
    return CliRunner().invoke(app, ["control", *args], env={"COLUMNS": "200"})


def test_regret_preferences_teach_an_optimal_reward_from_the_command_line(tmp_path):
    """prefs → learn-reward → train-policy on the shipped delivery grid: 200 regret labels give a reward whose
    optimal policy is the true one's (normalised return 1, the same true return), as Knox et al. find."""
    prefs, reward, run = tmp_path / "prefs.jsonl", tmp_path / "reward", tmp_path / "policy"
    made = invoke("prefs", "--output", str(prefs), "--env", "delivery", "--n", "200")
    assert made.exit_code == 0, made.output
    records = read_preferences(prefs)
    assert len(records) == 200 and {r.task for r in records} == {"delivery"}
    learned = invoke("learn-reward", str(prefs), "--output", str(reward), "--no-progress")
    assert learned.exit_code == 0, learned.output
    saved = json.loads((reward / "reward.json").read_text())
    assert saved["model"] == "regret" and saved["pairs"] == 200 and saved["normalized_return"] == 1.0
    assert saved["weights"]["goal"] > 0 > saved["weights"]["hazard"]
    trained = invoke("train-policy", "--output", str(run), "--reward", str(reward))
    assert trained.exit_code == 0, trained.output
    report = json.loads((run / "report.json").read_text())
    learned_row, true_row = report["policies"]["learned"], report["policies"]["true"]
    assert learned_row["true_return"] == pytest.approx(true_row["true_return"])
    assert learned_row["normalized_return"] == pytest.approx(1.0)
    assert report["correlation"]["spearman"] > 0.9
    assert json.loads((run / "policy.json").read_text())["actions"] == learned_row["actions"]


@pytest.mark.parametrize("model", ["heron", "partial-return"])
def test_other_labellers_write_labels_and_learn(tmp_path, model):
    prefs, reward = tmp_path / "prefs.jsonl", tmp_path / "reward"
    assert invoke("prefs", "--output", str(prefs), "--model", model, "--n", "50").exit_code == 0
    learned = invoke("learn-reward", str(prefs), "--output", str(reward), "--model", model, "--no-progress")
    assert learned.exit_code == 0, learned.output
    saved = json.loads((reward / "reward.json").read_text())
    assert saved["model"] == model and -1.0 <= saved["normalized_return"] <= 1.0 + 1e-9


def test_pearl_carries_a_source_tasks_labels(tmp_path):
    source, target, reward = tmp_path / "source.jsonl", tmp_path / "target.jsonl", tmp_path / "reward"
    assert invoke("prefs", "--output", str(source), "--env", "random:5", "--seed", "1", "--n", "60").exit_code == 0
    assert invoke("prefs", "--output", str(target), "--n", "40").exit_code == 0
    learned = invoke(
        "learn-reward", str(target), "--output", str(reward), "--model", "pearl",
        "--source", str(source), "--source-env", "random:5", "--steps", "30", "--no-progress",
    )  # fmt: skip
    assert learned.exit_code == 0, learned.output
    saved = json.loads((reward / "reward.json").read_text())
    assert saved["source_env"] == "random:5" and set(saved["weights"]) == {"step", "coin", "mud", "goal", "hazard"}


def test_cvar_reports_the_exact_values_of_its_policies(tmp_path):
    """The table's exact CVaR of the CVaR-optimal policy is the distributional DP's optimum, computed here
    independently from the library, and beats the mean-optimal policy's on the slippery cliff."""
    table = tmp_path / "cvar.json"
    ran = invoke("cvar", "--env", "cliff", "--alpha", "0.1", "--episodes", "500", "--output", str(table))
    assert ran.exit_code == 0, ran.output
    rows = {row["policy"]: row for row in json.loads(table.read_text())["rows"]}
    mdp = tabular_env("cliff", gamma=1.0, slip=0.1)
    reward = per_transition_rewards(mdp, np.array(DELIVERY_WEIGHTS))
    plan = cvar_optimal_policy(mdp, reward, 0.1, 40)
    values, probs = return_distribution(mdp, plan.policy, reward)
    assert rows["CVaR 0.1-optimal"]["cvar_0.1"]["exact"] == pytest.approx(cvar_of_distribution(values, probs, 0.1))
    assert rows["CVaR 0.1-optimal"]["cvar_0.1"]["exact"] > rows["mean-optimal"]["cvar_0.1"]["exact"]
    assert rows["mean-optimal"]["mean"] > rows["CVaR 0.1-optimal"]["mean"]


def test_cartpole_from_preferences_to_a_policy_and_best_of_k(tmp_path):
    """The Gymnasium path end to end at a tiny size: labels from true returns, an MLP reward, PPO on it and on
    the true reward (saved without pickle), each judged by its true return, then best-of-K selection."""
    prefs, reward, run = tmp_path / "prefs.jsonl", tmp_path / "reward", tmp_path / "run"
    made = invoke("prefs", "--output", str(prefs), "--env", "CartPole-v1", "--n", "60", "--segment-length", "10")
    assert made.exit_code == 0, made.output
    assert (
        invoke("learn-reward", str(prefs), "--output", str(reward), "--env", "CartPole-v1", "--no-progress").exit_code
        == 0
    )
    assert {p.name for p in reward.iterdir()} == {"reward.json", "reward.safetensors"}
    trained = invoke(
        "train-policy", "--output", str(run), "--reward", str(reward), "--env", "CartPole-v1",
        "--timesteps", "256", "--n-envs", "1", "--episodes", "2", "--no-progress",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    report = json.loads((run / "report.json").read_text())
    assert set(report["policies"]) == {"learned", "true"} and report["correlation"]["n"] == 200
    assert all(row["true_return"] >= 8 for row in report["policies"].values())  # CartPole pays 1 a step, ≥ 8 steps
    actions, action_reward = tmp_path / "actions.jsonl", tmp_path / "action-reward"
    made = invoke(
        "prefs", "--output", str(actions), "--env", "CartPole-v1", "--actions-of", str(run / "policy-learned"),
        "--n", "8", "--lookahead", "3",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert all(len(r.a) == len(r.b) == 1 for r in read_preferences(actions))  # one-step segments: (o, a, o')
    assert invoke("learn-reward", str(actions), "--output", str(action_reward), "--env", "CartPole-v1").exit_code == 0
    wrong = invoke(
        "prefs",
        "--output",
        str(tmp_path / "x.jsonl"),
        "--env",
        "Acrobot-v1",
        "--actions-of",
        str(run / "policy-learned"),
    )
    assert wrong.exit_code == 2 and "was trained on CartPole-v1" in wrong.output
    selected = invoke(
        "select", str(action_reward), str(run / "policy-learned"), "--k", "1", "--k", "2", "--episodes", "2"
    )
    assert selected.exit_code == 0, selected.output
    assert "best of   1" in selected.output and "best of   2" in selected.output


def test_lare_with_an_mlp_decoder_and_verification_from_the_command_line(tmp_path, tiny_decoder_dir):
    """The tiny decoder's factor code does not run, as written or after verification: recorded, not fatal."""
    results = tmp_path / "lare.json"
    ran = invoke(
        "lm-reward", "lare", "--output", str(results), "--env", "corridor", "--lm", str(tiny_decoder_dir),
        "--candidates", "1", "--decoder", "mlp", "--verify", "--max-new-tokens", "8", "--no-progress",
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    assert "0 of 1 candidates ran as written" in ran.output
    (candidate,) = json.loads(results.read_text())["result"]["candidates"]
    assert candidate["error"] and candidate["verification"]["prompt"]


def test_lm_reward_runs_a_local_model_and_records_every_candidate(tmp_path, tiny_decoder_dir):
    """A tiny random decoder writes no usable reward code: ICPL records each candidate's reason."""
    results = tmp_path / "icpl.json"
    ran = invoke(
        "lm-reward", "icpl", "--output", str(results), "--env", "corridor", "--lm", str(tiny_decoder_dir),
        "--iterations", "1", "--candidates", "2", "--max-new-tokens", "8", "--no-progress",
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    row = json.loads(results.read_text())
    (iteration,) = row["result"]["iterations"]
    assert len(iteration["candidates"]) == 2 and all(c["error"] for c in iteration["candidates"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prefs", "--output", "x.jsonl", "--env", "random:2"], "SIZE from 3 to 30"),
        (["prefs", "--output", "x.jsonl", "--env", "CartPole-v1", "--model", "regret"], "labeller is partial-return"),
        (["prefs", "--output", "x.jsonl", "--model", "heron", "--heron-order", "goal,speed"], "speed"),
        (["prefs", "--output", "x.jsonl", "--weights", "1,2"], "needs 5 numbers"),
        (["prefs", "--output", "x.jsonl", "--env", "CartPole-v1", "--ask"], "simulated only"),
        (["learn-reward", "missing.jsonl", "--output", "r"], "missing.jsonl"),
        (["learn-reward", "missing.jsonl", "--output", "r", "--model", "pearl"], "missing.jsonl"),
        (["train-policy", "--output", "p", "--reward", "nothere"], "--reward nothere"),
        (["lm-reward", "eureka", "--output", "r.json"], "unknown method 'eureka'"),
    ],
)
def test_mistakes_are_one_line_and_write_nothing(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    ran = invoke(*args)
    assert ran.exit_code == 2 and message in ran.output and "Traceback" not in ran.output
    assert list(tmp_path.iterdir()) == []


def test_learn_reward_refuses_a_bad_preference_file_naming_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": {"observations": [0, 1], "actions": [3]}, "b": 7, "preferred": "a"}\n')
    ran = invoke("learn-reward", str(bad), "--output", str(tmp_path / "reward"))
    assert ran.exit_code == 2 and f'{bad}:1: field "b"' in ran.output
    assert not (tmp_path / "reward").exists()


def test_a_person_judges_gridworld_segments_in_the_terminal(tmp_path):
    """--ask draws each pair and keeps the answers: a, an invalid answer asked again, b, equal, a skip, then
    stop; three judgements are written, in order."""
    prefs = tmp_path / "asked.jsonl"
    ran = CliRunner().invoke(
        app,
        ["control", "prefs", "--ask", "--output", str(prefs), "--n", "6", "--segment-length", "4"],
        input="a\nx\nb\ne\ns\nq\n",
        env={"COLUMNS": "200"},
    )
    assert ran.exit_code == 0, ran.output
    assert "'x' is not an answer" in ran.output and "pair 5 of 6" in ran.output and "pair 6 of 6" not in ran.output
    assert [r.preferred for r in read_preferences(prefs)] == ["a", "b", "equal"]


def test_a_segment_is_drawn_with_its_steps_numbered():
    """The corridor ``S....G``: from its fourth cell, right twice: 0 where it starts, 1 next, 2 on the goal."""
    from rewardlab.control.ask import draw_segment
    from rewardlab.control.segments import Segment

    mdp = tabular_env("corridor")
    assert draw_segment(mdp, Segment((3, 4, 5), (3, 3))) == ["...012", "entered: empty, goal"]


def test_oni_online_compares_with_the_sparse_reward_alone(tmp_path, tiny_decoder_dir):
    """The tiny decoder's labels parse as neither yes nor no, so ONI's agent is the sparse one: same seed, same
    first goal episode and return."""
    results = tmp_path / "oni.json"
    ran = invoke(
        "lm-reward", "oni", "--online", "--output", str(results), "--env", "corridor", "--lm", str(tiny_decoder_dir),
        "--episodes", "5", "--no-progress",
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    report = json.loads(results.read_text())
    assert report["method"] == "oni-online" and set(report) >= {"sparse", "oni"}
    assert report["oni"]["normalized_return"] == report["sparse"]["normalized_return"]


def test_the_command_lines_heron_order_is_the_librarys():
    from rewardlab.cli.control import HERON_ORDER
    from rewardlab.control.heron import DEFAULT_ORDER

    assert HERON_ORDER == DEFAULT_ORDER
