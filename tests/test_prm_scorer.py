"""The ``prm`` scorer kind (``evaluate/process_scorer.py``): a reply split into its lines as a PRM's steps,
its score the steps' probabilities aggregated, against the same chain scored by hand; ``rewardlab eval
--scorer prm`` end to end on a PRM that ``rewardlab prm train`` trained; and its errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.arithmetic import one_to_many, reply_steps
from rewardlab.evaluate.benchmarks import best_of_n_scores
from rewardlab.evaluate.process_scorer import ProcessRewardScorer
from rewardlab.evaluate.rewardbench import read_best_of_n
from rewardlab.evaluate.rewardmath import rewardmath_eval
from rewardlab.evaluate.scorers import ScorerSpec, build_scorer
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.step_scoring import split_steps
from rewardlab.rewards.step_aggregation import chain_score

PROMPT = "A box holds 3 rows of 4 eggs. How many eggs?"
REPLY = "Eggs in a row: 4.\n\n  Rows times eggs: 3 × 4 = 12.  \nThe answer is 12."
STEPS = ("Eggs in a row: 4.", "Rows times eggs: 3 × 4 = 12.", "The answer is 12.")


def tiny_prm(tiny_encoder_dir, objective: str = "step_bce (process supervision)") -> RewardModel:
    torch.manual_seed(0)
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=96)
    model.info.objective = objective
    return model


def test_a_reply_splits_into_its_lines_as_a_chains_steps():
    """Blank lines go, each line is stripped (as ``prm search`` reads a chain and a chains file lists it);
    with no stated answer to stop at, the steps are ``reply_steps``'; a reply with no text is one empty step."""
    assert split_steps(REPLY) == STEPS
    assert split_steps("a\r\nb") == reply_steps("a\r\nb") == ("a", "b")
    assert split_steps("") == split_steps(" \n ") == ("",)


def test_scores_are_the_chain_scores_of_the_steps_by_hand(tiny_encoder_dir):
    """Each step scored alone as the prompt and the steps so far, one a line: p_t = σ(r_t); then
    min = min_t p_t, product = p_1·p_2·p_3, last = p_3, mean = Σ p_t / 3 (in float64 here). The scorer's
    numbers are also ``chain_score`` of those probabilities bit for bit (a text's score does not depend on
    its batch)."""
    model = tiny_prm(tiny_encoder_dir)
    prefixes = ["\n".join(STEPS[:count]) for count in (1, 2, 3)]
    logits = [model.score([PROMPT], [prefix], precision="fp32")[0] for prefix in prefixes]
    p = [1 / (1 + math.exp(-r)) for r in logits]
    by_hand = {"min": min(p), "product": p[0] * p[1] * p[2], "last": p[2], "mean": sum(p) / 3}
    for how, value in by_hand.items():
        scorer = ProcessRewardScorer(model, how, "fp32")
        other = "Eggs: 4.\nThe answer is 4."
        scores = scorer.score([PROMPT, PROMPT], [REPLY, other])
        assert scores[0] == pytest.approx(value, abs=3e-7)  # float32 against float64
        assert scores[0] == chain_score(torch.sigmoid(torch.tensor(logits)), how)
        assert scores[1] == scorer.score([PROMPT], [other])[0]  # alone or beside another reply
    assert by_hand["product"] < by_hand["min"] < by_hand["mean"]  # 3e-7 tells each aggregate from the others


def test_built_by_name_from_a_saved_prm(tiny_encoder_dir, tmp_path):
    folder = tiny_prm(tiny_encoder_dir).save_pretrained(tmp_path / "prm")
    spec = ScorerSpec(kind="prm", model=str(folder), precision="fp32")
    assert spec.problems() == []
    assert spec.describe() == f"prm(model={folder}, aggregate=min)"  # min unless told
    scorer = build_scorer(ScorerSpec(kind="PRM", model=str(folder), aggregate="product", precision="fp32"))
    assert isinstance(scorer, ProcessRewardScorer) and scorer.aggregate == "product"
    assert scorer.score([PROMPT], [REPLY]) == ProcessRewardScorer(scorer.model, "product", "fp32").score(
        [PROMPT], [REPLY]
    )
    outcome = tiny_prm(tiny_encoder_dir, "step_bce (outcome supervision)").save_pretrained(tmp_path / "orm")
    assert ScorerSpec(kind="prm", model=str(outcome), aggregate="last").problems() == []  # prm train's ORM too


def test_errors_name_the_folder_and_the_aggregates(tiny_encoder_dir, tmp_path):
    plain = tiny_prm(tiny_encoder_dir, "bradley_terry").save_pretrained(tmp_path / "rm")
    problems = ScorerSpec(kind="prm", model=str(plain), aggregate="median").problems()
    assert problems == [
        "--aggregate must be one of min, product, last, mean, sum (got 'median')",
        f"{plain}: not a process reward model (trained with objective 'bradley_terry'; a PRM's steps are scored "
        "with the logit that the chain is still right, as `rewardlab prm train` trains one); score whole replies "
        "with --scorer reward-model",
    ]
    with pytest.raises(ValueError, match="not a process reward model"):
        build_scorer(ScorerSpec(kind="prm", model=str(plain)))
    assert ScorerSpec(kind="prm", model=str(tmp_path / "nowhere")).problems() == [
        f"{tmp_path / 'nowhere'}: no such folder"
    ]
    assert ScorerSpec(kind="prm").problems() == ["scorer prm needs --model"]
    assert ScorerSpec(kind="reward-model", model=str(plain), aggregate="min").problems() == [
        "--aggregate applies to --scorer prm, not reward-model"
    ]
    with pytest.raises(ValueError, match="--aggregate must be one of"):
        ProcessRewardScorer(RewardModel.from_pretrained(plain), "median")


def test_eval_command_with_a_trained_prm(tiny_encoder_dir, tmp_path):
    """``rewardlab prm train`` as ``test_process`` trains one, then ``rewardlab eval --scorer prm``: its
    RewardMATH figures are those of the scorer's own scores; a plain reward model is refused, in one line."""
    runner = CliRunner()
    chains = tmp_path / "chains.jsonl"
    assert runner.invoke(app, ["data", "chains", "--output", str(chains), "--count", "20"]).exit_code == 0
    run = tmp_path / "run"
    train = ["prm", "train", str(chains), "--output", str(run), "--backbone", str(tiny_encoder_dir)]
    trained = runner.invoke(app, [*train, "--max-length", "96", "--epochs", "1", "--no-progress"])
    assert trained.exit_code == 0, trained.output
    again = runner.invoke(app, [*train[:4], str(tmp_path / "again"), *train[5:], "--max-length", "96", "--epochs", "1"])
    assert again.exit_code == 0, again.output
    first, second = (load_file(r / "model" / "model.safetensors") for r in (run, tmp_path / "again"))
    assert all(torch.equal(first[k], second[k]) for k in first)  # the head's initial weights are seeded too
    rows = tmp_path / "rewardmath.jsonl"
    rows.write_text("".join(json.dumps(row) + "\n" for row in one_to_many(4, 3, seed=5)))
    report = tmp_path / "report"
    args = ["eval", str(run / "model"), str(rows), "--scorer", "prm", "--format", "rewardmath"]
    result = runner.invoke(app, [*args, "--aggregate", "min", "--precision", "fp32", "--report", str(report)])
    assert result.exit_code == 0, result.output
    saved = json.loads((report / "rewardmath.json").read_text())
    records = read_best_of_n(rows)
    scores = best_of_n_scores(ProcessRewardScorer(RewardModel.from_pretrained(run / "model"), "min", "fp32"), records)
    assert saved == json.loads(json.dumps(saved | rewardmath_eval(records, scores).to_dict()))
    assert saved["problems"] == 4 and saved["pairwise"]["n"] == 12

    unknown = runner.invoke(app, [*args, "--aggregate", "median"])
    assert unknown.exit_code == 2 and "--aggregate must be one of min, product, last, mean, sum" in unknown.output
    plain = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=96).save_pretrained(tmp_path / "rm")
    refused = runner.invoke(app, ["eval", str(plain), str(rows), "--scorer", "prm", "--format", "rewardmath"])
    assert refused.exit_code == 2 and "not a process reward model" in refused.output
    assert "Traceback" not in refused.output
