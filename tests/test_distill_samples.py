"""ADPA's rejected replies from the SFT student (tiny models): the pairs ADPA trains on hold the student's
own samples as rejected replies, seeded per prompt, resumable, and a file that lacks a prompt or is
malformed is refused by name."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.records import DataError, PreferencePair
from rewardlab.distill.run import training_pairs
from rewardlab.distill.student_samples import (
    partial_path,
    prompt_key,
    read_student_samples,
    with_student_rejected,
    write_student_samples,
)
from rewardlab.distill.trainer import DistillTrainConfig, train_distill
from rewardlab.models.causal_lm import CausalLM
from rewardlab.policy.run_config import DPODataConfig
from rewardlab.sampling.generation import SampleConfig

torch.set_num_threads(1)

PROMPTS = ["What is 2 plus 2?", "Name a colour.", ({"role": "user", "content": "Say hello."},), "Count to three."]
PAIRS = [PreferencePair(p, "A fine answer.", "A data reply.", margin=2.0, rejected_rating=1.0) for p in PROMPTS]
SAMPLING = SampleConfig(n=1, max_new_tokens=6, temperature=1.0, seed=3)


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_student_s_samples_become_the_rejected_replies(tiny_decoder_dir, tmp_path):
    lm = CausalLM.from_pretrained(tiny_decoder_dir, max_prompt_tokens=32)
    path = write_student_samples(lm, PROMPTS + PROMPTS[:1], tmp_path / "s.jsonl", SAMPLING, student="tiny")
    written = rows(path)
    assert [r["prompt"] for r in written] == [PROMPTS[0], PROMPTS[1], list(PROMPTS[2]), PROMPTS[3]]  # one a prompt
    assert all(0 <= r["tokens"] <= 6 for r in written) and any(r["reply"] for r in written)
    pairs = with_student_rejected(PAIRS, read_student_samples(path))
    assert [p.rejected for p in pairs] == [r["reply"] for r in written]
    assert [p.chosen for p in pairs] == [p.chosen for p in PAIRS]
    assert all(p.margin is None and p.rejected_rating is None for p in pairs)  # they described the data's reply
    again = write_student_samples(lm, PROMPTS, tmp_path / "again.jsonl", SAMPLING, student="tiny")
    assert again.read_text() == path.read_text()  # seeded
    other = write_student_samples(
        lm, PROMPTS, tmp_path / "other.jsonl", SampleConfig(n=1, max_new_tokens=6, seed=4), student="tiny"
    )
    assert other.read_text() != path.read_text()


def test_an_interrupted_sampling_resumes_with_only_the_missing_prompts(tiny_decoder_dir, tmp_path):
    lm = CausalLM.from_pretrained(tiny_decoder_dir, max_prompt_tokens=32)
    whole = rows(write_student_samples(lm, PROMPTS, tmp_path / "whole.jsonl", SAMPLING, student="tiny"))
    target = tmp_path / "resumed.jsonl"
    kept = [{**whole[1], "reply": "kept from the partial file"}, whole[3]]
    partial = partial_path(target, "tiny", SAMPLING, 32)
    partial.write_text("".join(json.dumps(r) + "\n" for r in kept))
    resumed = rows(write_student_samples(lm, PROMPTS, target, SAMPLING, student="tiny"))
    assert resumed == [whole[0], kept[0], whole[2], whole[3]]  # the rest sampled as an uninterrupted run
    assert not partial.exists()
    assert partial_path(target, "tiny", SampleConfig(n=1, max_new_tokens=6, seed=4), 32) != partial


def test_a_prompt_without_a_sample_and_a_bad_row_are_refused(tmp_path):
    replies = {prompt_key(p): "mine" for p in PROMPTS[:3]}
    with pytest.raises(ValueError, match=r"s\.jsonl has no student reply for 1 of the 4 training prompts"):
        with_student_rejected(PAIRS, replies, "s.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "reply": "b"}\n{"prompt": "c"}\n')
    with pytest.raises(DataError, match=r'bad\.jsonl:2: field "reply"'):
        read_student_samples(bad)
    bad.write_text('{"prompt": [{"role": "user"}], "reply": "b"}\n')
    with pytest.raises(DataError, match=r'bad\.jsonl:1: field "prompt"'):
        read_student_samples(bad)
    with pytest.raises(ValueError, match="n must be 1"):
        write_student_samples(None, PROMPTS, tmp_path / "x.jsonl", SampleConfig(n=2))  # type: ignore[arg-type]


def test_cli_samples_then_trains_adpa_on_them(tiny_decoder_dir, tmp_path):
    runner = CliRunner()
    samples = tmp_path / "samples.jsonl"
    common = ["--student", str(tiny_decoder_dir)]
    made = runner.invoke(
        app,
        ["distill", "samples", *common, "--output", str(samples), "--max-train-pairs", "4", "--max-new-tokens", "5"],
        catch_exceptions=False,
    )
    assert made.exit_code == 0, made.output
    data = training_pairs(DPODataConfig(max_train_pairs=4))
    pairs = with_student_rejected(data, read_student_samples(samples))
    by_prompt = {prompt_key(r["prompt"]): r["reply"] for r in rows(samples)}
    assert [p.rejected for p in pairs] == [by_prompt[prompt_key(p.prompt)] for p in data]
    assert [p.chosen for p in pairs] == [p.chosen for p in data]
    assert any(p.rejected != d.rejected for p, d in zip(pairs, data, strict=True))
    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder_dir)
    teacher = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir).eval()
    with torch.no_grad():  # an "aligned" teacher that differs from its reference: a non-zero advantage
        teacher.lm_head.weight.add_(
            torch.randn(teacher.lm_head.weight.shape, generator=torch.Generator().manual_seed(0))
        )
    teacher.save_pretrained(tmp_path / "teacher", safe_serialization=True)
    tokenizer.save_pretrained(tmp_path / "teacher")
    train = ["distill", "train", *common, "--teacher", str(tmp_path / "teacher"), "--teacher-reference"]
    train += [str(tiny_decoder_dir), "--method", "adpa", "progress=false"]
    train += ["train.steps=1", "train.batch_pairs=2", "train.max_reply_tokens=8", "train.max_prompt_tokens=32"]
    trained = runner.invoke(
        app,
        [*train, "data.max_train_pairs=4", "--student-samples", str(samples), "--output", str(tmp_path / "run")],
        catch_exceptions=False,
    )
    assert trained.exit_code == 0, trained.output
    assert json.loads((tmp_path / "run" / "report.json").read_text())["student_samples"] == str(samples)
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])["advantage"]
    reference = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir).eval()
    config = DistillTrainConfig(method="adpa", steps=1, batch_pairs=2, max_reply_tokens=8, max_prompt_tokens=32)
    advantage = {}
    for name, these in (("samples", pairs), ("data", data)):
        student = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
        history = train_distill(student, tokenizer, these, config, teacher=teacher, teacher_reference=reference)
        advantage[name] = history.history[0]["advantage"]
    assert logged == pytest.approx(advantage["samples"], rel=1e-5)  # the run read the student's replies
    assert abs(advantage["samples"] - advantage["data"]) > 1e-4
    short = tmp_path / "short.jsonl"
    short.write_text("".join(line + "\n" for line in samples.read_text().splitlines()[:1]))
    refused = runner.invoke(
        app, [*train, "data.max_train_pairs=4", "--student-samples", str(short), "--output", str(tmp_path / "bad")]
    )
    assert refused.exit_code != 0 and "no student reply for" in refused.output
