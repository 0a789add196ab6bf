"""``rewardlab eval`` with scorers and benchmark formats, run through the real command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import SCORER_NAMES, app
from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.likelihood_scorers import ImplicitRewardScorer
from rewardlab.evaluate.pair_checks import PairChecks
from rewardlab.evaluate.pairwise import evaluate_pairs
from rewardlab.evaluate.policy_ranking import policy_ranking
from rewardlab.evaluate.scorers import SCORERS
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import RewardModel
from rewardlab.serve.asgi import running_server
from rewardlab.serve.server import ServeConfig, create_app

torch.set_num_threads(1)


def run(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64)
    model.model.classifier.weight.data *= 50
    return model.save_pretrained(tmp_path_factory.mktemp("cli") / "model")


def test_help_names_every_scorer():
    assert SCORER_NAMES.split(", ") == SCORERS.names()


def test_bleu_scorer_on_pairs_with_a_mapped_reference_field(tmp_path):
    data = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {
                "prompt": "p1",
                "chosen": "the cat sat on the mat",
                "rejected": "a dog ran",
                "gold": "the cat sat on a mat",
            },
            {"prompt": "p2", "chosen": "paris is the capital", "rejected": "london", "gold": "the capital is paris"},
            {"prompt": "p3", "chosen": "no overlap", "rejected": "the answer is 4", "gold": "the answer is 4"},
        ],
    )
    output = run("eval", data, "--scorer", "bleu", "--columns", "reference=gold", "--report", tmp_path / "r")
    assert "pairwise accuracy: **0.6667**" in output and "model: `bleu()`" in output
    report = json.loads((tmp_path / "r" / "eval.json").read_text())
    assert report["overall"]["n"] == 3 and report["precision"] == "exact"
    assert "pairwise accuracy: **0.6667**" in run("eval", data, "--scorer", "rouge-l", "--columns", "reference=gold")


def test_rewardbench_format_reports_sections(model_dir, tmp_path):
    rows = [
        {"prompt": f"q{i}", "chosen": f"good answer {i}", "rejected": f"bad {i}", "subset": subset}
        for i, subset in enumerate(["alpacaeval-easy", "mt-bench-hard", "math-prm", "hep-go", "donotanswer", "mine"])
    ]
    data = write_jsonl(tmp_path / "rb.jsonl", rows)
    output = run("eval", model_dir, data, "--format", "rewardbench", "--report", tmp_path / "r")
    report = json.loads((tmp_path / "r" / "rewardbench.json").read_text())
    assert set(report["sections"]) == {"Chat", "Chat Hard", "Safety", "Reasoning"}
    assert report["unmapped_subsets"] == ["mine"] and report["weights"]["math-prm"] == 984
    assert f"score (mean of 4 sections): **{report['overall']:.4f}**" in output
    # the same scores as scoring the pairs directly
    model = RewardModel.from_pretrained(model_dir)
    pairs = [PreferencePair(r["prompt"], r["chosen"], r["rejected"], subset=r["subset"]) for r in rows]
    direct = evaluate_pairs(model, pairs)
    assert report["per_subset"]["mine"]["accuracy"] == direct.per_subset["mine"].accuracy
    section_map = write_jsonl(tmp_path / "map.json", [])
    section_map.write_text(json.dumps({"Everything": [r["subset"] for r in rows]}))
    output = run("eval", model_dir, data, "--format", "rewardbench", "--sections", section_map)
    assert "| Everything |" in output and "subsets in no section" not in output


def test_rewardbench2_format_with_ties(model_dir, tmp_path):
    rows = [
        {"prompt": "2+2?", "chosen": ["4"], "rejected": ["5", "22", "four hundred"], "subset": "Math", "id": "m1"},
        {"prompt": "capital of France?", "chosen": ["Paris"], "rejected": ["Lyon", "Nice"], "subset": "Factuality"},
        {"prompt": "a colour", "chosen": ["red"], "rejected": ["a dog", "seven"], "subset": "Ties", "id": "ref:1"},
        {"prompt": "a colour", "chosen": ["red", "blue"], "rejected": ["a dog"], "subset": "Ties", "id": "tied:1"},
    ]
    data = write_jsonl(tmp_path / "rb2.jsonl", rows)
    output = run("eval", model_dir, data, "--format", "rewardbench2", "--report", tmp_path / "r")
    report = json.loads((tmp_path / "r" / "rewardbench2.json").read_text())
    assert set(report["per_subset"]) == {"Factuality", "Math"} and report["ties"]["prompts"] == 2
    assert report["prompts"] == 4 and "Ties: **" in output
    means = [report["per_subset"]["Factuality"]["accuracy"], report["per_subset"]["Math"]["accuracy"]]
    assert report["overall"] == pytest.approx((sum(means) + report["ties"]["score"]) / 3)


def test_kwise_format(model_dir, tmp_path):
    rows = [
        {"prompt": "name a fruit", "responses": ["apple", "a car", "banana"], "ranking": [0, 2, 1]},
        {"prompt": "say hi", "responses": ["hello", "bye"], "ranking": [1, 0]},
    ]
    data = write_jsonl(tmp_path / "k.jsonl", rows)
    output = run("eval", model_dir, data, "--format", "kwise", "--report", tmp_path / "r")
    report = json.loads((tmp_path / "r" / "kwise.json").read_text())
    assert report["rankings"] == 2 and report["sizes"] == {"2": 1, "3": 1}
    assert "mean Kendall τ-b" in output


def test_implicit_scorer_from_the_command_line(tiny_decoder_dir, tmp_path):
    data = write_jsonl(
        tmp_path / "pairs.jsonl",
        [{"prompt": "hello", "chosen": "Hi, how can I help you today?", "rejected": "Go away."}] * 2,
    )
    output = run(
        "eval",
        data,
        "--scorer",
        "implicit-sum",
        "--policy",
        tiny_decoder_dir,
        "--beta",
        "0.5",
        "--precision",
        "fp32",
        "--policy-ranking",
        "--report",
        tmp_path / "r",
    )
    assert f"implicit-sum(policy={tiny_decoder_dir}, beta=0.5)" in output.replace("\n", "")
    report = json.loads((tmp_path / "r" / "eval.json").read_text())
    scorer = ImplicitRewardScorer(CausalLM.from_pretrained(tiny_decoder_dir), None, 0.5, "sum")
    expected = scorer.score(["hello"], ["Hi, how can I help you today?"])[0] - scorer.score(["hello"], ["Go away."])[0]
    assert report["mean_margin"] == pytest.approx(expected, abs=1e-5)
    # the policy ranks the chosen reply first exactly when its implicit reward is higher
    assert report["extras"]["policy_ranking"]["ranking_accuracy"] == float(expected > 0)
    assert report["extras"]["policy_ranking"]["idealized_ranking_accuracy"] is None
    # MODEL stands for the scorer's main model: here the policy, with the reference given; the
    # reference is the policy itself, so the ideal ranks by log π_ref(y_c|x) − log π_ref(y_r|x) + log(p/(1−p))/β
    output = run(
        "eval", tiny_decoder_dir, data, "--scorer", "implicit", "--reference", tiny_decoder_dir, "--policy-ranking",
        "--ranking-p", "0.6", "--precision", "fp32",
    )  # fmt: skip
    ideal = float(expected / 0.5 + math.log(0.6 / 0.4) / 0.1 > 0)
    assert f"idealised ranking accuracy of the DPO optimum (β = 0.1, p = 0.6): {ideal:.4f}" in output.replace("\n", "")


def test_policy_ranking_reuses_the_implicit_rewards_log_probabilities(tiny_decoder_dir):
    """--policy-ranking reads each reply's log-probabilities once, under the policy and the reference,
    and reports what plain evaluation and ``policy_ranking`` report separately."""
    pairs = [
        PreferencePair("hello", "Hi, how can I help you today?", "Go away."),
        PreferencePair("2 + 2?", "4", "It is 5, I think."),
    ]
    policy, reference = CausalLM.from_pretrained(tiny_decoder_dir), CausalLM.from_pretrained(tiny_decoder_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        for w in reference.model.parameters():
            w.add_(0.05 * torch.randn_like(w))
    passes = []
    for lm in (policy, reference):
        count = lm.continuation_logps
        lm.continuation_logps = lambda *a, _count=count, **k: passes.append(1) or _count(*a, **k)
    scorer = ImplicitRewardScorer(policy, reference, beta=0.1, mode="dpo")
    checks = PairChecks(policy_ranking=True, ranking_p=0.7)
    result = checks.run(scorer, pairs, data="", columns=None, skip=False, split="all")
    assert len(passes) == 4  # chosen and rejected replies, policy and reference
    plain = evaluate_pairs(scorer, pairs)
    assert result.chosen_scores == plain.chosen_scores and result.rejected_scores == plain.rejected_scores
    expected = policy_ranking(
        policy.model, policy.tokenizer, pairs, reference=reference.model, p=0.7, beta=0.1, fmt=policy.text_format
    )
    ranking = result.extras["policy_ranking"]
    assert ranking.ranking_accuracy == expected.ranking_accuracy
    assert ranking.idealized_ranking_accuracy == expected.idealized_ranking_accuracy


def test_judge_and_remote_scorers_from_the_command_line(tiny_decoder_dir, model_dir, tmp_path):
    rows = [{"prompt": "hello", "chosen": "Hi there.", "rejected": "No.", "subset": "alpacaeval-easy"}]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    output = run("eval", data, "--scorer", "judge", "--judge", tiny_decoder_dir, "--principle", "Be kind.")
    assert "pairwise accuracy:" in output and "judge(judge=" in output
    config = ServeConfig(warmup=False)
    with running_server(create_app(RewardModel.from_pretrained(model_dir), config=config)) as base:
        remote = run("eval", data, "--scorer", "remote", "--url", base, "--format", "rewardbench", "--tie-credit", "0")
    local = run("eval", model_dir, data, "--format", "rewardbench", "--tie-credit", "0")
    assert remote.split("- exact ties")[1] == local.split("- exact ties")[1]  # same scores, same tables


def test_eval_errors_are_listed_without_a_traceback(tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}])
    result = CliRunner().invoke(
        app, ["eval", str(data), "--scorer", "implicit", "--beta", "-1", "--format", "kwise", "--split", "test"]
    )
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    for part in ("needs --policy", "needs --reference", "--beta must be positive", "--split applies to pairs only"):
        assert part in message
    result = CliRunner().invoke(app, ["eval", str(data)])
    assert result.exit_code == 2 and "give MODEL and DATA" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["eval", str(data), "--scorer", "bleu"])
    assert result.exit_code == 2 and 'has no row with a reference (field "reference"' in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["eval", str(data), "--scorer", "bleu", "--format", "tsv"])
    assert result.exit_code == 2
    assert "--format must be one of pairs, rewardbench, rewardbench2, rewardmath, kwise, principles" in result.output


def test_calibration_consistency_and_invariance_checks_from_the_command_line(model_dir, tmp_path):
    """--fit-temperature fits T on other pairs (never the evaluated ones), the model's saved T is
    used otherwise; --contrast and --invariance add their checks to every report."""
    rows = [
        {"prompt": f"question {i}", "chosen": f"a helpful answer number {i}", "rejected": "no" * (1 + i % 3)}
        for i in range(12)
    ]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    fit_on = write_jsonl(tmp_path / "validation.jsonl", rows[:6])
    contrast = write_jsonl(
        tmp_path / "contrast.jsonl",
        [{"prompt_a": "Name a fruit.", "chosen_a": "An apple.", "prompt_b": "Name a vegetable.", "chosen_b": "Leek."}],
    )
    run(
        "eval", model_dir, data, "--precision", "fp32", "--fit-temperature", fit_on, "--contrast", contrast,
        "--invariance", "--report", tmp_path / "r",
    )  # fmt: skip
    report = json.loads((tmp_path / "r" / "eval.json").read_text())
    model = RewardModel.from_pretrained(model_dir)
    pairs = [PreferencePair(**row) for row in rows]
    validation = evaluate_pairs(model, pairs[:6], precision="fp32")
    expected = evaluate_pairs(
        model, pairs, precision="fp32", validation_scores=(validation.chosen_scores, validation.rejected_scores)
    )
    assert report["calibrated"]["temperature"] == pytest.approx(expected.calibrated.temperature, rel=1e-9)
    assert report["temperature_source"] == "fitted on the validation pairs given"
    assert report["extras"]["contrast"]["n"] == 1
    invariance = report["extras"]["invariance"]
    assert set(invariance) == {"batch_size", "candidate_order", "whitespace"}
    assert invariance["batch_size"]["max_score_change"] == 0.0 and invariance["candidate_order"]["flips"] == 0
    # without --fit-temperature, a temperature saved with the model is applied and named as such
    model.info.temperature = 2.5
    saved = model.save_pretrained(tmp_path / "with-temperature")
    output = run("eval", saved, data, "--precision", "fp32")
    assert "T = 2.5, saved with the model, fitted on its validation split" in " ".join(output.split())
    args = ["eval", str(model_dir), "default", "--split", "test", "--fit-temperature", "test"]
    failed = CliRunner().invoke(app, args)
    assert failed.exit_code == 2 and "is the split being evaluated" in failed.output
