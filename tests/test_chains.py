"""Step-labelled reasoning chains: the record and its reader (``data/chains.py``) and the arithmetic
problems whose steps a checker verifies exactly (``data/arithmetic.py``, issue 34)."""

from __future__ import annotations

import json
import random
from fractions import Fraction

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.arithmetic import (
    KINDS,
    LEVELS,
    Problem,
    Step,
    check_steps,
    corrupt,
    evaluate_expression,
    make_chains,
    make_problem,
    reply_steps,
    step_is_right,
    write_steps,
)
from rewardlab.data.chains import StepChain, first_wrong_step, read_chains, write_chains
from rewardlab.data.records import DataError


def test_expressions_are_evaluated_exactly_with_precedence():
    """2 + 3 × 4 = 2 + 12 = 14; 10 − 4 ÷ 2 = 10 − 2 = 8; 1,000 × 3 − 7 = 2993; 7 ÷ 2 = 7/2 exactly."""
    assert evaluate_expression("2 + 3 × 4") == 14
    assert evaluate_expression("10 − 4 ÷ 2") == 8
    assert evaluate_expression("1,000 * 3 - 7") == 2993
    assert evaluate_expression("7 / 2") == Fraction(7, 2)


def test_a_step_is_right_only_when_true_and_on_the_solutions_path():
    reference, answer = frozenset(map(Fraction, (3, 5, 15, 12, 27))), Fraction(27)
    assert step_is_right("Apples in the bags: 3 × 5 = 15.", reference, answer)
    assert not step_is_right("Apples in the bags: 3 × 5 = 16.", reference, answer)  # false arithmetic
    assert not step_is_right("Apples: 3 + 5 = 8.", reference, answer)  # true, but 8 is off the path
    assert not step_is_right("Apples: 4 × 3 = 12.", reference, answer)  # 4 is not a number of the problem
    assert step_is_right("So the answer is 27.", reference, answer)
    assert not step_is_right("The answer is 26.", reference, answer)
    assert step_is_right("Now add the two amounts.", reference, answer)  # prose


@pytest.mark.parametrize("level", LEVELS)
def test_correct_chains_check_right_at_every_step(level):
    rng = random.Random(0)
    for _ in range(500):
        problem = make_problem(rng, level)
        steps = write_steps(problem)
        assert steps[-1] == f"The answer is {problem.answer}."
        assert check_steps(problem, steps) == (1.0,) * len(steps)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("kind", KINDS)
def test_the_checker_finds_exactly_the_corrupted_step(kind, level):
    """The known answer: each corruption is placed at a known step, and the checker, which never sees
    the plan, labels every step before it right and it and every later step wrong."""
    rng = random.Random(1)
    for _ in range(300):
        problem = make_problem(rng, level)
        steps, index = corrupt(problem, rng, kind)
        labels = check_steps(problem, steps)
        assert first_wrong_step(labels) == index
        assert labels == tuple(1.0 if i < index else 0.0 for i in range(len(steps)))
        assert steps[:index] == write_steps(problem)[:index]


def test_a_reply_that_stops_without_the_answer_ends_wrong():
    """Pocket problem 7 + 9 − 14 = 2. A model's reply with true steps that never states the answer is
    right up to its last step only; ``reply_steps`` cuts a reply at its answer and at an invented question."""
    problem = Problem("Q", (7, 9, 14), (Step("+", 0, 1, "after getting more"), Step("−", 3, 2, "left")))
    reply = "She gets more: 7 + 9 = 16.\nShe gives some away: 16 – 14 = 2.\nThe answer is 2.\nQuestion: more?"
    steps = reply_steps(reply)
    assert steps == ("She gets more: 7 + 9 = 16.", "She gives some away: 16 – 14 = 2.", "The answer is 2.")
    assert check_steps(problem, steps) == (1.0, 1.0, 1.0)
    assert check_steps(problem, steps[:2]) == (1.0, 0.0)
    assert check_steps(problem, steps[:2], complete=False) == (1.0, 1.0)
    assert check_steps(problem, ("16 – 14 = 3.", "The answer is 3.")) == (0.0, 0.0)


def test_make_chains_labels_and_seeds():
    chains = make_chains(200, wrong_fraction=0.5, seed=3)
    assert chains == make_chains(200, wrong_fraction=0.5, seed=3)
    assert chains != make_chains(200, wrong_fraction=0.5, seed=4)
    wrong = [c for c in chains if first_wrong_step(c.labels) is not None]
    assert 70 < len(wrong) < 130
    assert all(c.labels[-1] == 0.0 and c.steps[-1] != f"The answer is {c.answer}." for c in wrong)
    assert all(first_wrong_step(c.labels) is None for c in make_chains(50, wrong_fraction=0.0))
    assert all(first_wrong_step(c.labels) is not None for c in make_chains(50, wrong_fraction=1.0))
    with pytest.raises(ValueError, match="wrong_fraction"):
        make_chains(5, wrong_fraction=1.5)


def test_chains_round_trip_through_a_file(tmp_path):
    chains = [*make_chains(5, seed=0), StepChain(({"role": "user", "content": "Q?"},), ("a", "b"), (0.75, 0.25))]
    path = tmp_path / "chains.jsonl"
    write_chains(chains, path)
    assert read_chains(path) == chains
    assert read_chains(path, limit=2) == chains[:2]
    assert StepChain("Q?", ("one", "two")).prefix(2) == "one\ntwo"


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"steps": ["a"]}, "prompt", "is missing"),
        ({"prompt": "Q", "steps": []}, "steps", "non-empty list"),
        ({"prompt": "Q", "steps": "a"}, "steps", "non-empty list"),
        ({"prompt": "Q", "steps": ["a", " "]}, "steps[1]", "only whitespace"),
        ({"prompt": "Q", "steps": ["a", "b"], "labels": [1]}, "labels", "1 labels for 2 steps"),
        ({"prompt": "Q", "steps": ["a"], "labels": [2]}, "labels[0]", r"probability in \[0, 1\]"),
        ({"prompt": "Q", "steps": ["a"], "labels": ["1"]}, "labels[0]", r"probability in \[0, 1\]"),
    ],
)
def test_bad_rows_name_the_line_and_field(tmp_path, row, field, message):
    path = tmp_path / "chains.jsonl"
    path.write_text(json.dumps({"prompt": "fine", "steps": ["ok"]}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=message) as caught:
        read_chains(path)
    assert caught.value.location == f"{path}:2" and caught.value.field == field


def test_data_chains_command_writes_labelled_chains(tmp_path):
    cli_runner = CliRunner()
    path = tmp_path / "chains.jsonl"
    result = cli_runner.invoke(app, ["data", "chains", "--output", str(path), "--count", "40", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert read_chains(path) == make_chains(40, seed=2)
    assert "wrote 40 chains" in result.output
    refused = cli_runner.invoke(app, ["data", "chains", "--output", str(tmp_path / "c.csv")])
    assert refused.exit_code != 0 and ".jsonl" in refused.output and not (tmp_path / "c.csv").exists()
