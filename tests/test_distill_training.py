"""Distillation training on tiny models: each method trains, micro-batches change nothing, a student
cut from all of its teacher's layers is its teacher (KL 0), a foreign tokenizer is refused, and the CLI."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.records import PreferencePair
from rewardlab.distill.student import outer_layers, student_from_teacher
from rewardlab.distill.trainer import DistillTrainConfig, train_distill

torch.set_num_threads(1)

PAIRS = [
    PreferencePair(f"What is {i} plus {i}?", f"It is {2 * i}.", "I cannot help with that request.") for i in range(4)
]


def models(tiny_decoder_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder_dir)
    reference = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir).eval()
    teacher = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir).eval()
    with torch.no_grad():  # an "aligned" teacher that differs from its reference
        teacher.lm_head.weight.add_(
            0.3 * torch.randn(teacher.lm_head.weight.shape, generator=torch.Generator().manual_seed(0))
        )
    return tokenizer, teacher, reference


def config(**kw) -> DistillTrainConfig:
    return DistillTrainConfig(
        **{"steps": 2, "batch_pairs": 4, "micro_pairs": 2, "lr": 1e-3, "max_reply_tokens": 12, **kw}
    )


def test_outer_layers_keep_the_first_and_last_and_cut_the_middle():
    assert outer_layers(30, 20) == [*range(10), *range(20, 30)]
    assert outer_layers(30, 5) == [0, 1, 2, 28, 29]
    assert outer_layers(2, 1) == [0]
    with pytest.raises(ValueError, match="between 1 and 2"):
        outer_layers(2, 3)


@pytest.mark.parametrize("method", ["sft", "kd", "dckd", "adpa", "adpa+dckd"])
def test_every_method_trains_the_student(tiny_decoder_dir, method):
    tokenizer, teacher, reference = models(tiny_decoder_dir)
    student = student_from_teacher(teacher, [0])
    before = [p.detach().clone() for p in student.parameters()]
    result = train_distill(
        student, tokenizer, PAIRS, config(method=method), teacher=teacher, teacher_reference=reference
    )
    assert len(result.history) == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters(), strict=True))
    expected = {
        "sft": {"nll"},
        "kd": {"nll", "chosen_kl"},
        "dckd": {"nll", "chosen_kl", "rejected_kl"},
        "adpa": {"nll", "advantage"},
        "adpa+dckd": {"nll", "chosen_kl", "rejected_kl", "advantage"},
    }[method]
    assert expected <= set(result.history[0])


def test_a_student_with_all_its_teacher_s_layers_is_the_teacher(tiny_decoder_dir):
    """KL terms 0 at the first step (before any update) when the student keeps every layer."""
    tokenizer, teacher, _ = models(tiny_decoder_dir)
    student = student_from_teacher(teacher, [0, 1])
    history = train_distill(student, tokenizer, PAIRS, config(method="dckd", steps=1), teacher=teacher).history
    assert history[0]["chosen_kl"] == pytest.approx(0.0, abs=1e-6)
    assert history[0]["rejected_kl"] == pytest.approx(0.0, abs=1e-6)


def test_micro_batches_give_the_update_of_the_whole_batch(tiny_decoder_dir):
    tokenizer, teacher, reference = models(tiny_decoder_dir)
    trained = []
    for micro in (1, 4):
        student = student_from_teacher(teacher, [0])
        out = train_distill(
            student,
            tokenizer,
            PAIRS,
            config(method="adpa+dckd", steps=1, micro_pairs=micro),
            teacher=teacher,
            teacher_reference=reference,
        )
        trained.append((out.history[0]["loss"], [p.detach().clone() for p in student.parameters()]))
    assert trained[0][0] == pytest.approx(trained[1][0], rel=1e-5)
    for a, b in zip(trained[0][1], trained[1][1], strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_a_teacher_with_another_vocabulary_is_refused(tiny_decoder_dir):
    tokenizer, _, _ = models(tiny_decoder_dir)
    student = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
    other = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=300,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            num_key_value_heads=1,
        )
    )
    with pytest.raises(ValueError, match=r"output layer has 300 tokens.*must share a tokenizer"):
        train_distill(student, tokenizer, PAIRS, config(method="kd"), teacher=other)
    with pytest.raises(ValueError, match="needs a teacher_reference"):
        train_distill(student, tokenizer, PAIRS, config(method="adpa"), teacher=student)


def test_cli_builds_a_student_and_distils_into_it(tiny_decoder_dir, tmp_path):
    runner = CliRunner()
    built = runner.invoke(
        app,
        [
            "distill",
            "student",
            "--teacher",
            str(tiny_decoder_dir),
            "--output",
            str(tmp_path / "student"),
            "--layers",
            "1",
        ],
        catch_exceptions=False,
    )
    assert built.exit_code == 0, built.output
    assert json.loads((tmp_path / "student" / "config.json").read_text())["num_hidden_layers"] == 1
    args = [
        "distill",
        "train",
        "--student",
        str(tmp_path / "student"),
        "--teacher",
        str(tiny_decoder_dir),
        "--teacher-reference",
        str(tiny_decoder_dir),
        "--method",
        "adpa+dckd",
        "--output",
        str(tmp_path / "run"),
        "train.steps=2",
        "train.batch_pairs=2",
        "train.max_reply_tokens=16",
        "train.max_prompt_tokens=32",
        "data.max_train_pairs=4",
        "progress=false",
    ]
    trained = runner.invoke(app, args, catch_exceptions=False)
    assert trained.exit_code == 0, trained.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["steps"] == 2 and report["weights"]["advantage"] == 1.0
    assert (tmp_path / "run" / "student" / "model.safetensors").is_file()
    missing = runner.invoke(
        app,
        [
            "distill",
            "train",
            "--student",
            str(tmp_path / "student"),
            "--method",
            "adpa",
            "--output",
            str(tmp_path / "bad"),
        ],
    )
    assert missing.exit_code != 0 and "needs the aligned teacher" in missing.output


def test_benchmark_tiny_mode_runs_and_resumes(tmp_path):
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "distill_alignment.py"
    spec = importlib.util.spec_from_file_location("distill_alignment_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "bench"
    results = module.main(["--tiny", "--output", str(out)])
    assert [row["method"] for row in results["rows"]] == ["dpo", "kd", "dckd", "adpa", "adpa+dckd"]
    for row in results["rows"]:
        assert 0 <= row["low"] <= row["win_rate"] <= row["high"] <= 1 and row["prompts"] == 3
    sampled = out / "student-samples.jsonl"
    for method, own in (("dckd", None), ("adpa", str(sampled)), ("adpa-dckd", str(sampled))):
        assert json.loads((out / method / "report.json").read_text())["student_samples"] == own
    stamp = (out / "adpa-dckd" / "report.json").stat().st_mtime_ns
    assert module.main(["--tiny", "--output", str(out)]) == results  # resumed: nothing retrained
    assert (out / "adpa-dckd" / "report.json").stat().st_mtime_ns == stamp
