"""``rewardlab eval --fusion MEMORY_DATA``: RewardFusion from the command line, on tiny models.

α = 0 must give the plain evaluation's numbers exactly; α > 0 must give what ``fuse_rewards`` gives
from the plain rewards and the memory; bad settings fail in one line before any model loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.evaluate.data_split import load_pairs
from rewardlab.evaluate.run import evaluate_data
from rewardlab.models.embeddings import load_embedder
from rewardlab.models.reward_model import RewardModel
from rewardlab.rewards.fusion import fuse_rewards

torch.set_num_threads(1)

TOPICS = ["bread", "the sea", "France", "rain", "cats", "music", "tea", "stars", "trees", "rivers"]


@pytest.fixture(scope="module")
def model_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=32)
    model.model.classifier.weight.data *= 50
    return model.save_pretrained(tmp_path_factory.mktemp("run") / "model")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("data")
    rows = [
        {"prompt": f"Tell me about {t} ({i}).", "chosen": f"Here is a fact about {t}.", "rejected": "No" * (1 + i % 3)}
        for i, t in enumerate(TOPICS * 2)
    ]
    contrast = [
        {"prompt_a": f"Describe {a}.", "chosen_a": f"{a} is lovely.", "prompt_b": f"Describe {b}.", "chosen_b": f"{b}!"}
        for a, b in zip(TOPICS[:5], TOPICS[5:], strict=True)
    ]
    (folder / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "contrast.jsonl").write_text("".join(json.dumps(r) + "\n" for r in contrast), encoding="utf-8")
    return {"pairs": folder / "pairs.jsonl", "contrast": folder / "contrast.jsonl"}


def evaluate(model_dir, files, encoder, **fusion):
    options = {"fusion_encoder": str(encoder)} if fusion else {}
    return evaluate_data(
        str(model_dir), str(files["pairs"]), precision="fp32", contrast=files["contrast"], **options, **fusion
    )


def test_alpha_zero_is_the_plain_evaluation(model_dir, files, tiny_encoder_dir):
    plain = evaluate(model_dir, files, tiny_encoder_dir).result
    fused = evaluate(model_dir, files, tiny_encoder_dir, fusion=str(files["pairs"]), fusion_alpha=0.0).result
    assert fused.chosen_scores == plain.chosen_scores and fused.rejected_scores == plain.rejected_scores
    assert json.dumps(fused.to_dict(), default=vars) == json.dumps(plain.to_dict(), default=vars)  # NaN as text
    assert fused.extras["contrast"].consistency == plain.extras["contrast"].consistency


def test_fused_scores_are_fuse_rewards_of_the_plain_ones(model_dir, files, tiny_encoder_dir):
    """The CLI's fused reward is (1 − α)·r + α·Σ w·r(memory), the memory being every distinct reply of
    the training split of the memory file, scored by the same model, embedded by the same encoder."""
    alpha, top_k, temperature = 0.5, 3, 0.2
    settings = {"fusion_alpha": alpha, "fusion_top_k": top_k, "fusion_temperature": temperature}
    evaluated = evaluate(model_dir, files, tiny_encoder_dir, fusion=str(files["pairs"]), **settings)
    assert "RewardFusion (α = 0.5, top-k 3, τ = 0.2; memory: 28 replies of" in evaluated.name

    pairs, memory_pairs = load_pairs(str(files["pairs"])), load_pairs(str(files["pairs"]), split="train")
    memory = list(dict.fromkeys((p.prompt, r) for p in memory_pairs for r in (p.chosen, p.rejected)))
    model, embed = RewardModel.from_pretrained(model_dir), load_embedder(str(tiny_encoder_dir))
    memory_rewards = model.score([m[0] for m in memory], [m[1] for m in memory], precision="fp32")
    memory_embeddings = embed([m[0] for m in memory], [m[1] for m in memory])
    prompts, replies = [p.prompt for p in pairs] * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs]
    rewards = model.score(prompts, replies, precision="fp32")
    expected = fuse_rewards(
        rewards, embed(prompts, replies), memory_rewards, memory_embeddings, alpha, temperature, top_k
    )
    np.testing.assert_allclose(evaluated.result.chosen_scores, expected[: len(pairs)], rtol=1e-6)
    np.testing.assert_allclose(evaluated.result.rejected_scores, expected[len(pairs) :], rtol=1e-6)
    assert not np.allclose(expected, rewards)  # the fusion did move the rewards


def test_eval_command_reports_the_fusion(model_dir, files, tiny_encoder_dir, tmp_path):
    args = ["eval", str(model_dir), str(files["pairs"]), "--precision", "fp32", "--fusion", str(files["pairs"])]
    args += ["--fusion-encoder", str(tiny_encoder_dir), "--fusion-split", "all", "--report", str(tmp_path / "r")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "RewardFusion (α = 0.5, top-k all, τ = 0.1; memory: 40 replies of" in result.output
    assert "RewardFusion" in (tmp_path / "r" / "eval.md").read_text()


@pytest.mark.parametrize(
    "option, message",
    [
        (["--fusion-alpha", "2"], "--fusion-alpha must be in [0, 1] (got 2.0)"),
        (["--fusion-top-k", "0"], "--fusion-top-k must be at least 1 (got 0)"),
        (["--fusion-temperature", "0"], "--fusion-temperature must be positive (got 0.0)"),
        (["--fusion-split", "dev"], "--fusion-split must be all, train, validation or test (got 'dev')"),
    ],
)
def test_bad_fusion_settings_fail_in_one_line(option, message, files, tmp_path):
    missing = tmp_path / "no-model-here"  # the settings are checked before the model is looked for
    args = ["eval", str(missing), str(files["pairs"]), "--fusion", str(files["pairs"]), *option]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
