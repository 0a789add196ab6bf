"""Scoring: left truncation, batch-size invariance, and the CLI's score / eval / data check."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from synthetic import synthetic_pairs, write_jsonl
from transformers import AutoTokenizer

from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.compare import compare_models
from rewardlab.evaluate.paired import mcnemar_exact_p
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.sequences import Tile, encode_texts, pad_tile, scoring_tiles


@pytest.fixture(scope="module")
def encoder_model(tiny_encoder_dir, tmp_path_factory) -> Path:
    """A tiny reward model saved in rewardlab's format (untrained head: scores still differ per text)."""
    path = tmp_path_factory.mktemp("rm") / "model"
    RewardModel.from_backbone(str(tiny_encoder_dir), max_length=24).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def negated_model(encoder_model, tmp_path_factory) -> Path:
    """``encoder_model`` with its head negated: every reward is exactly minus the original one."""
    model = RewardModel.from_pretrained(encoder_model)
    model.model.classifier.weight.data.neg_()
    model.model.classifier.bias.data.neg_()
    return model.save_pretrained(tmp_path_factory.mktemp("rm-negated") / "model")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rewardlab", *args], capture_output=True, text=True, timeout=300)


def test_left_truncation_keeps_the_end_and_special_tokens(tiny_encoder_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    text = " ".join(f"w{i}" for i in range(50)) + " final answer"
    encoded = encode_texts(tokenizer, [text, "short"], max_length=10, add_special_tokens=True)
    ids = encoded.ids[0]
    assert len(ids) == 10 and encoded.truncated == [True, False]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.decode(ids[1:-1]).endswith("final answer")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("backbone", ["tiny_encoder_dir", "tiny_decoder_dir"])
def test_scores_do_not_depend_on_what_else_is_scored(backbone, precision, request):
    """Bit-identical scores for a text alone, in a crowd, in any order, and with any tile size."""
    model = RewardModel.from_backbone(str(request.getfixturevalue(backbone)), max_length=40)
    head = getattr(model.model, "classifier", None) or model.model.score
    head.weight.data *= 100  # spread the untrained scores beyond bf16's resolution
    rows = synthetic_pairs(40, seed=3)
    prompts = [r["prompt"] for r in rows] * 2
    replies = [r["chosen"] for r in rows] + [r["rejected"] + " extra words here" * (i % 4) for i, r in enumerate(rows)]
    together = model.score(prompts, replies, precision=precision)
    assert len(set(together)) > 10, "scores must differ between texts for the test to mean anything"
    alone = [model.score([p], [r], precision=precision)[0] for p, r in zip(prompts[:12], replies[:12], strict=True)]
    assert alone == together[:12]
    order = list(reversed(range(len(prompts))))
    reversed_scores = model.score([prompts[i] for i in order], [replies[i] for i in order], precision=precision)
    assert [reversed_scores[order.index(i)] for i in range(len(prompts))] == together


def test_tiles_have_a_shape_fixed_by_length():
    tiles = scoring_tiles([5, 40, 33, 64, 1, 31], tile_tokens=128, granularity=32)
    assert sorted(i for t in tiles for i in t.indices) == list(range(6))
    assert [(t.width, t.rows) for t in tiles] == [(64, 2), (64, 2), (32, 4)]
    assert all(len(t.indices) <= t.rows for t in tiles)
    ids, mask = pad_tile([[1, 2, 3]], Tile([0], rows=2, width=4), pad_id=0)
    assert ids.tolist() == [[1, 2, 3, 0], [0, 0, 0, 0]] and mask.tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]


def test_score_cli_writes_rewards_and_matches_python(encoder_model, tmp_path):
    rows = [
        {"prompt": "question 1", "response": "helpful clear", "id": 1},
        {"prompt": [{"role": "user", "content": "hi"}], "response": "hello there", "id": 2},
    ]
    source = write_jsonl(rows, tmp_path / "in.jsonl")
    done = run_cli("score", str(encoder_model), str(source), "--output", str(tmp_path / "out.jsonl"))
    assert done.returncode == 0, done.stderr
    scored = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in scored] == [1, 2]
    model = RewardModel.from_pretrained(encoder_model)
    expected = model.score(["question 1", ({"role": "user", "content": "hi"},)], ["helpful clear", "hello there"])
    assert [r["reward"] for r in scored] == pytest.approx(expected, abs=1e-5)


def test_score_cli_bad_row_names_line_and_field_and_writes_nothing(encoder_model, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"prompt": "q", "response": "fine"}\n{"prompt": "q", "response": ["not", "text"]}\n')
    target = tmp_path / "out.jsonl"
    done = run_cli("score", str(encoder_model), str(source), "--output", str(target))
    assert done.returncode == 2  # a blank reply is scored (tests/test_faults_inputs.py); a list is not text
    assert "in.jsonl:2" in done.stderr and '"response"' in done.stderr and "a list of 2 items" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not target.exists()


def test_eval_cli_reports_accuracy_ci_subsets_and_writes_files(encoder_model, tmp_path):
    rows = [{**r, "subset": "even" if i % 2 == 0 else "odd"} for i, r in enumerate(synthetic_pairs(30, seed=4))]
    data = write_jsonl(rows, tmp_path / "pairs.jsonl")
    done = run_cli("eval", str(encoder_model), str(data), "--report", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report" / "eval.json").read_text())
    overall = report["overall"]
    assert overall["n"] == 30 and overall["ci_low"] <= overall["accuracy"] <= overall["ci_high"]
    assert set(report["per_subset"]) == {"even", "odd"}
    assert sum(s["n"] for s in report["per_subset"].values()) == 30
    markdown = (tmp_path / "report" / "eval.md").read_text()
    assert "pairwise accuracy" in markdown
    assert done.stdout.startswith(markdown)  # printed as written (rows whole, no progress bar) when piped


def test_eval_cli_reports_calibration_and_length_bias(encoder_model, tmp_path):
    data = write_jsonl(synthetic_pairs(30, seed=6), tmp_path / "pairs.jsonl")
    done = run_cli("eval", str(encoder_model), str(data), "--report", str(tmp_path / "report"), "--precision", "fp32")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report" / "eval.json").read_text())
    calibration = report["calibration"]
    assert calibration["temperature"] == 1.0 and calibration["n"] == 30 and calibration["bins"] == 10
    assert 0 <= calibration["ece"] <= 0.5 and 0 <= calibration["brier"] <= 1 and calibration["nll"] > 0
    assert report["calibrated"] is None  # no validation scores given: no temperature fitted
    bias = report["length_bias"]
    assert bias["unit"] == "characters" and -1 <= bias["reward_length_spearman"] <= 1
    assert bias["chosen_longer"]["n"] + bias["chosen_shorter"]["n"] + bias["equal_length"] == 30
    markdown = (tmp_path / "report" / "eval.md").read_text()
    assert "ECE" in markdown and "Brier" in markdown and "chosen reply is longer" in markdown


def test_compare_cli_against_the_negated_model(encoder_model, negated_model, tmp_path):
    """B = −A: B is right exactly where A is wrong, so acc(A) + acc(B) = 1 and the STARC distance is 1."""
    data = write_jsonl(synthetic_pairs(40, seed=7), tmp_path / "pairs.jsonl")
    report_dir = tmp_path / "report"
    args = ("compare", str(encoder_model), str(negated_model), str(data), "--report", str(report_dir))
    done = run_cli(*args, "--precision", "fp32")
    assert done.returncode == 0, done.stderr
    result = json.loads((report_dir / "compare.json").read_text())
    paired = result["paired"]
    assert paired["n"] == 40 and paired["half_right"] == 0, "untrained head: no exact ties expected"
    assert paired["a_only"] + paired["b_only"] == 40 and paired["both_right"] == paired["both_wrong"] == 0
    assert paired["accuracy_a"] + paired["accuracy_b"] == pytest.approx(1.0)
    assert paired["accuracy_a"] == result["a"]["overall"]["accuracy"]
    assert paired["difference"] == pytest.approx(2 * paired["accuracy_a"] - 1)
    assert paired["ci_low"] <= paired["difference"] <= paired["ci_high"]
    assert paired["mcnemar_p"] == pytest.approx(mcnemar_exact_p(paired["a_only"], paired["b_only"]))
    assert result["starc_distance"] == pytest.approx(1.0, abs=1e-6)
    for text in ("McNemar exact p", "paired bootstrap CI", "verdict:", paired["verdict"]):
        assert text in done.stdout and text in (report_dir / "compare.md").read_text()
    assert not list(report_dir.glob(".*.tmp")), "reports are written through a temporary file and a rename"


def test_a_model_compared_with_itself_shows_no_difference(encoder_model):
    model = RewardModel.from_pretrained(encoder_model)
    pairs = [PreferencePair(**row) for row in synthetic_pairs(20, seed=8)]
    result = compare_models(model, model, pairs, precision="fp32")
    assert result.paired.difference == 0 and result.paired.mcnemar_p == 1.0
    assert result.paired.verdict == "no significant difference at the 5 % level"
    assert result.starc_distance == pytest.approx(0.0, abs=1e-12)


def test_data_check_summarises_the_embedded_data():
    done = run_cli("data", "check", "default")
    assert done.returncode == 0, done.stderr
    assert "1850" in done.stdout


def test_user_errors_are_one_line_not_a_traceback(tmp_path):
    folder = tmp_path / "a-folder-whose-name-takes-the-path-past-the-eighty-columns-of-a-pipe"
    folder.mkdir()
    empty = folder / "empty.jsonl"
    empty.write_text("")
    cases = (
        ["data", "check", str(empty)],
        ["train", "--data", str(empty)],
        ["train", "optim.lr=fast"],
        ["train", "--backbone", "org/not-here"],
        ["eval", str(tmp_path / "nothing"), "default"],
        ["compare", str(tmp_path / "nothing"), str(tmp_path / "nothing"), "default"],
    )
    with ThreadPoolExecutor(len(cases)) as pool:  # the commands are independent: start them together
        results = list(pool.map(lambda args: run_cli(*args), cases))
    for args, done in zip(cases, results, strict=True):
        assert done.returncode == 2, (args, done.stderr)
        assert "error:" in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    assert str(empty) in results[0].stderr  # whole: a path cut across lines cannot be copied
