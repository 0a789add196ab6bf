"""``rewardlab diffusion``: the whole loop from the command line on a tiny base model — train it, simulate image
pairs, train an image reward model from them, align with every method, search at inference time — and the
mistakes a user makes, each one red line with nothing written."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.diffusion.classifier import ImageNet
from rewardlab.diffusion.image_pairs import read_image_pairs

pytestmark = pytest.mark.usefixtures("one_thread")

METHODS = ["diffusion-dpo", "d3po", "smpo", "inpo", "dragon", "diff-instruct-star"]


def invoke(*args: str):
    return CliRunner().invoke(app, ["diffusion", *args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def base(tmp_path_factory, one_thread):
    """A tiny base model (8/16 channels, 30 updates) and its digit classifier (5 epochs)."""
    folder = tmp_path_factory.mktemp("diffusion") / "base"
    made = invoke("train-base", "--output", str(folder), "--updates", "30", "--channels", "8,16",
                  "--classifier-epochs", "5", "--no-progress")  # fmt: skip
    assert made.exit_code == 0, made.output
    return folder


def test_train_base_writes_a_run_folder(base):
    report = json.loads((base / "report.json").read_text())
    assert report["images"] == 1797 and report["config"]["updates"] == 30
    assert 0 < report["classifier"]["test_accuracy"] <= 1 and report["classifier"]["test_size"] == 359
    assert (base / "denoiser" / "diffusion_pytorch_model.safetensors").is_file()
    assert (base / "samples.png").is_file() and ImageNet.load(base / "classifier").config["outputs"] == 10


@pytest.mark.parametrize("method", METHODS)
def test_every_method_aligns_and_reports(base, tmp_path, method):
    """Two updates of each method run end to end: the report has the reward before and after with intervals, the
    distance to the base samples, diversity and the time; the aligned model loads back and samples."""
    run = tmp_path / method
    aligned = invoke("align", str(base), "--output", str(run), "--method", method, "--reward", "digit:3",
                     "--updates", "2", "--batch-size", "4", "--samples", "16", "--no-progress")  # fmt: skip
    assert aligned.exit_code == 0, aligned.output
    report = json.loads((run / "report.json").read_text())
    for side in ("before", "after"):
        r = report[side]["reward"]
        assert r["low"] <= r["mean"] <= r["high"] and r["k"] == 16
        assert report[side]["vendi"] >= 1 and len(report[side]["class_mix"]) == 10
    assert report["before"]["frechet_to_base"] == pytest.approx(0, abs=1e-6) and report["after"]["frechet_to_base"] > 0
    assert report["updates"] == 2 and report["align_seconds"] >= 0
    assert (run / "before.png").is_file() and (run / "after.png").is_file()
    sampled = invoke("sample", str(run), "--output", str(tmp_path / "s.png"), "--n", "4", "--sampling-steps", "2")
    assert sampled.exit_code == 0, sampled.output and (tmp_path / "s.png").is_file()


def test_dragon_aims_at_a_class_mix(base, tmp_path):
    run = tmp_path / "mix"
    aligned = invoke("align", str(base), "--output", str(run), "--method", "dragon", "--reward", "mix:3=0.5,8=0.5",
                     "--updates", "1", "--batch-size", "8", "--samples", "16", "--no-progress")  # fmt: skip
    assert aligned.exit_code == 0, aligned.output
    report = json.loads((run / "report.json").read_text())
    assert -1 <= report["before"]["set_reward"] <= 0 and -1 <= report["after"]["set_reward"] <= 0


def test_pairs_to_image_reward_to_alignment(base, tmp_path):
    """simulate-pairs (real digits, the annotator's utility log p(3|x)) → train-reward → align on the learned
    reward, and Diffusion-DPO on the offline pairs themselves."""
    pairs = tmp_path / "pairs"
    made = invoke("simulate-pairs", "--output", str(pairs), "--reward", "digit:3", "--n", "40",
                  "--classifier", str(base / "classifier"))  # fmt: skip
    assert made.exit_code == 0, made.output
    assert len(read_image_pairs(pairs / "pairs.jsonl")) == 40
    trained = invoke("train-reward", str(pairs / "pairs.jsonl"), "--output", str(tmp_path / "rm"), "--epochs", "2",
                     "--no-progress")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.output)["pairs"] == 40
    aligned = invoke("align", str(base), "--output", str(tmp_path / "a"), "--reward", f"model:{tmp_path / 'rm'}",
                     "--updates", "1", "--batch-size", "4", "--samples", "8", "--no-progress")  # fmt: skip
    assert aligned.exit_code == 0, aligned.output
    offline = invoke("align", str(base), "--output", str(tmp_path / "o"), "--pairs", str(pairs / "pairs.jsonl"),
                     "--updates", "1", "--batch-size", "4", "--samples", "8", "--no-progress")  # fmt: skip
    assert offline.exit_code == 0, offline.output


def test_prefpaint_aligns_an_inpainting_model(base, tmp_path):
    """train-base --mask trains an inpainting model; align --method prefpaint inpaints the digits' bottom halves
    before and after (the same holes and noise), and refuses a model of the other kind."""
    inpainter = tmp_path / "inpainter"
    made = invoke("train-base", "--output", str(inpainter), "--updates", "5", "--channels", "8,16", "--mask", "bottom",
                  "--classifier-epochs", "1", "--no-progress")  # fmt: skip
    assert made.exit_code == 0, made.output
    assert json.loads((inpainter / "report.json").read_text())["samples"] == "32 images with holes, then filled"
    run = tmp_path / "aligned"
    aligned = invoke("align", str(inpainter), "--output", str(run), "--method", "prefpaint", "--reward", "digit:3",
                     "--updates", "1", "--batch-size", "4", "--samples", "8", "--no-progress")  # fmt: skip
    assert aligned.exit_code == 0, aligned.output
    assert json.loads((run / "report.json").read_text())["after"]["n"] == 8
    for model, method in ((base, "prefpaint"), (inpainter, "diffusion-dpo")):
        refused = invoke("align", str(model), "--output", str(tmp_path / "no"), "--method", method, "--no-progress")
        assert refused.exit_code == 2 and "aligns with --method prefpaint" in " ".join(refused.output.split())


@pytest.mark.parametrize("method", ["best-of-n", "dts", "dts-star"])
def test_search_methods_spend_the_budget(base, tmp_path, method):
    found = invoke("sample", str(base), "--output", str(tmp_path / "g.png"), "--method", method, "--reward", "ink",
                   "--n", "2", "--budget", "80", "--sampling-steps", "4")  # fmt: skip
    assert found.exit_code == 0, found.output
    report = json.loads(found.output)
    assert report["calls"] <= 80 and report["reward_max"] >= report["reward_mean"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reward", "digit:x"], "--reward 'digit:x': expected one of"),
        (["--reward", "mix:3=0.5,11=0.5"], "class must be in [0, 10)"),
        (["--method", "nope"], "unknown alignment method 'nope'"),
        (["--option", "novalue"], "expected KEY=VALUE"),
        (["--method", "diff-instruct-star", "--option", "alpha=1"], "diff-instruct-star has no option 'alpha'"),
    ],
)
def test_mistakes_are_one_line_and_write_nothing(base, tmp_path, args, message):
    run = tmp_path / "run"
    result = invoke(
        "align", str(base), "--output", str(run), "--updates", "1", "--samples", "4", "--no-progress", *args
    )
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not run.exists()


def test_bad_pairs_file_names_its_line(base, tmp_path):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"chosen": "a.png"}\n')
    result = invoke("align", str(base), "--output", str(tmp_path / "run"), "--pairs", str(bad), "--no-progress")
    assert result.exit_code == 2 and f"{bad}:1" in " ".join(result.output.split())
    assert not (tmp_path / "run").exists()


def test_missing_model_folder(tmp_path):
    result = invoke("align", str(tmp_path / "none"), "--output", str(tmp_path / "run"), "--no-progress")
    assert result.exit_code == 2 and "not a denoiser folder" in " ".join(result.output.split())
