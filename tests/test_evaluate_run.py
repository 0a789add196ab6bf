"""``rewardlab eval``, ``compare`` and ``score`` called from Python: the same keywords, the same results,
the same files, as the commands that now only parse, call these and print."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch
from synthetic import write_jsonl
from typer.testing import CliRunner

from rewardlab import cli
from rewardlab.data import PreferencePair
from rewardlab.evaluate.data_split import load_pairs
from rewardlab.evaluate.pair_checks import PairChecks, evaluate_with_policy_ranking
from rewardlab.evaluate.pairwise import PairwiseEval, evaluate_pairs
from rewardlab.evaluate.run import compare_data, evaluate_data
from rewardlab.evaluate.score_file import score_file
from rewardlab.evaluate.score_ray import score_file_ray
from rewardlab.models.reward_model import RewardModel
from rewardlab.rewards.direction import direction_weights
from rewardlab.runs.data import load_split
from rewardlab.training.config import DataConfig

torch.set_num_threads(1)

ROWS = [
    {"prompt": f"question {i}", "chosen": f"a helpful answer number {i}", "rejected": "no" * (1 + i % 3)}
    for i in range(10)
]


@pytest.fixture(scope="module")
def model_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=32)
    model.model.classifier.weight.data *= 50
    return model.save_pretrained(tmp_path_factory.mktemp("run") / "model")


@pytest.mark.parametrize(
    "command, function",
    [(cli.evaluate, evaluate_data), (cli.compare, compare_data), (cli.score, score_file)],
)
def test_library_keywords_are_the_commands_options(command, function):
    """The command passes its parameters through by name, so each must be a keyword of the library
    function, with the command's default where the command has one (``score --workers``'s own options,
    unset by default, are keywords of ``score_file_ray``)."""
    library = inspect.signature(function).parameters
    distributed = inspect.signature(score_file_ray).parameters if function is score_file else {}
    for name, option in inspect.signature(command).parameters.items():
        if name in ("workers", "shard_rows", "ray_address") and distributed:
            assert name in distributed and option.default is None, name
            continue
        assert name in library, name
        if option.default is not inspect.Parameter.empty:
            assert library[name].default == option.default, name


def test_evaluate_data_is_what_eval_prints_and_writes(model_dir, tmp_path):
    data = write_jsonl(ROWS, tmp_path / "pairs.jsonl")
    evaluated = evaluate_data(str(model_dir), str(data), precision="fp32", report=tmp_path / "lib")
    assert isinstance(evaluated.result, PairwiseEval) and evaluated.result.overall.n == len(ROWS)
    pairs = [PreferencePair(**r) for r in ROWS]
    expected = evaluate_pairs(RewardModel.from_pretrained(model_dir), pairs, precision="fp32")
    assert evaluated.result.chosen_scores == pytest.approx(expected.chosen_scores, abs=1e-6)
    assert [p.name for p in evaluated.report_files] == ["eval.json", "eval.md", "eval.html", "predictions.jsonl"]
    rows = [json.loads(line) for line in (tmp_path / "lib" / "predictions.jsonl").read_text().splitlines()]
    assert [r["chosen"] for r in rows] == [r["chosen"] for r in ROWS]  # the evaluated pairs' texts, in order
    shown = CliRunner().invoke(cli.app, ["eval", str(model_dir), str(data), "--precision", "fp32"])
    assert shown.exit_code == 0, shown.output
    assert evaluated.markdown() in shown.output
    assert (tmp_path / "lib" / "eval.md").read_text(encoding="utf-8").strip() in shown.output


def test_evaluate_data_without_report_writes_nothing(model_dir, tmp_path):
    data = write_jsonl(ROWS, tmp_path / "pairs.jsonl")
    evaluated = evaluate_data(str(model_dir), str(data), precision="fp32")
    assert evaluated.report_files == () and sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl"]


def test_evaluate_data_benchmark_format_and_scorer(model_dir, tmp_path):
    rows = [
        {"prompt": "name a fruit", "responses": ["apple", "a car", "banana"], "ranking": [0, 2, 1]},
        {"prompt": "say hi", "responses": ["hello", "bye"], "ranking": [1, 0]},
    ]
    data = write_jsonl(rows, tmp_path / "k.jsonl")
    evaluated = evaluate_data(str(model_dir), str(data), data_format="kwise", report=tmp_path / "r")
    assert evaluated.name == str(model_dir) and evaluated.result.rankings == 2
    assert [p.name for p in evaluated.report_files] == ["kwise.json", "kwise.md"]
    assert "mean Kendall τ-b" in evaluated.markdown()
    pairs = write_jsonl([{**ROWS[0], "reference": ROWS[0]["chosen"]}], tmp_path / "p.jsonl")
    overlap = evaluate_data(data=str(pairs), scorer="bleu")
    assert overlap.name == "bleu()" and overlap.result.overall.accuracy == 1.0


def test_evaluate_data_lists_option_errors_at_once(tmp_path):
    data = write_jsonl(ROWS[:1], tmp_path / "pairs.jsonl")
    with pytest.raises(ValueError, match="give MODEL and DATA"):
        evaluate_data(data=str(data))
    with pytest.raises(ValueError) as raised:
        evaluate_data(str(data), scorer="implicit", beta=-1, data_format="kwise", split="test")
    for part in ("needs --policy", "--beta must be positive", "--split applies to pairs only"):
        assert part in str(raised.value)


def test_skipped_rows_are_logged_where_asked(model_dir, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:3]) + '{"prompt": "p", "chosen": ""}\n')
    notes: list[str] = []
    evaluated = evaluate_data(str(model_dir), str(data), skip_bad_rows=True, log=notes.append)
    assert evaluated.result.overall.n == 3
    assert len(notes) == 1 and notes[0].startswith("skipped 1 of 4 rows")


def test_load_pairs_splits_as_a_run_with_the_default_config_does():
    """``eval --split test`` must hold the pairs a model trained with the defaults never saw."""
    run_split = load_split(DataConfig(), say=lambda _: None).splits
    assert load_pairs(split="test") == run_split.test
    assert load_pairs(split="validation") == run_split.validation
    with pytest.raises(ValueError, match="--split must be all, train, validation or test"):
        load_pairs(split="holdout")


def test_pair_checks_with_policy_ranking_need_an_implicit_scorer():
    class Implicit:
        """Log-probabilities as an implicit-reward scorer gives them, without a model."""

        precision, beta = "fp32", 0.5

        def reply_logps(self, prompts, replies):
            class Logps:
                policy = torch.tensor([float(-len(r)) for r in replies])
                reference = None

            return Logps()

        def rewards(self, logps):
            return (self.beta * logps.policy).tolist()

    pairs = [PreferencePair("q", "short", "much longer"), PreferencePair("q", "a long reply", "no")]
    result, ranking = evaluate_with_policy_ranking(Implicit(), pairs, p=0.9)
    assert result.overall.accuracy == 0.5 and ranking.ranking_accuracy == 0.5
    checked = PairChecks(policy_ranking=True).run(Implicit(), pairs, data="", columns=None, skip=False, split="all")
    assert checked.extras["policy_ranking"].ranking_accuracy == 0.5


def test_compare_data_a_model_against_its_negation(model_dir, tmp_path):
    negated = RewardModel.from_pretrained(model_dir)
    negated.model.classifier.weight.data.neg_()
    negated.model.classifier.bias.data.neg_()
    negated_dir = negated.save_pretrained(tmp_path / "negated")
    data = write_jsonl(ROWS, tmp_path / "pairs.jsonl")
    compared = compare_data(model_dir, negated_dir, str(data), precision="fp32", report=tmp_path / "r")
    a, b = compared.comparison.a.overall, compared.comparison.b.overall
    assert a.accuracy + b.accuracy == pytest.approx(1.0)
    assert [p.name for p in compared.report_files] == ["compare.json", "compare.md"]
    assert str(negated_dir) in compared.markdown()
    with pytest.raises(ValueError, match="no pairs to compare"):
        compare_data(model_dir, negated_dir, str(write_jsonl(ROWS[:1], tmp_path / "one.jsonl")), split="test")


def test_score_file_writes_and_returns_the_rows(model_dir, tmp_path):
    rows = [{"prompt": "q1", "response": "helpful clear", "id": 1}, {"prompt": "q2", "response": "rude", "id": 2}]
    source, target = write_jsonl(rows, tmp_path / "in.jsonl"), tmp_path / "out.jsonl"
    scored = score_file(model_dir, source, target, precision="fp32")
    expected = RewardModel.from_pretrained(model_dir).score(["q1", "q2"], ["helpful clear", "rude"], precision="fp32")
    assert [r["id"] for r in scored] == [1, 2]
    assert [r["reward"] for r in scored] == pytest.approx(expected, abs=1e-6)
    assert [json.loads(line) for line in target.read_text().splitlines()] == scored


def test_direction_as_typed():
    assert direction_weights("1,0.5") == [1.0, 0.5]
    with pytest.raises(ValueError, match="direction must be numbers separated by commas"):
        direction_weights("1;2")
