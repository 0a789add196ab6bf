"""Checkpoint and resume of policy training: an interrupted and resumed run ends with the weights of
an uninterrupted one; gradient checkpointing recomputes the layers and changes nothing else."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from test_dpo_cli import COMMON, run, write_pairs
from test_policy_trainer import PAIRS, load
from transformers import AutoModelForCausalLM

from rewardlab.models.backbones import set_activation_checkpointing
from rewardlab.policy.lora import LoraSettings, add_lora
from rewardlab.policy.trainer import PolicyTrainConfig, train_policy

torch.set_num_threads(1)


class Interrupted(Exception):
    pass


def stop_at(step_to_stop: int):
    def log(step: int, values: dict[str, float]) -> None:
        if step == step_to_stop:
            raise Interrupted

    return log


def fresh(tiny_decoder_dir, lora: bool):
    model, tokenizer = load(tiny_decoder_dir)
    torch.manual_seed(0)  # the adapters' A starts random
    return (add_lora(model, LoraSettings(enabled=True, r=4)) if lora else model), tokenizer


@pytest.mark.parametrize(("precision", "lora"), [("fp32", False), ("bf16", False), ("fp32", True)])
def test_an_interrupted_and_resumed_run_ends_with_the_uninterrupted_weights(
    tiny_decoder_dir, tmp_path, precision, lora
):
    config = PolicyTrainConfig(loss_args={"beta": 0.5}, steps=7, batch_pairs=3, lr=2e-3, save_every=2)
    config.precision = precision
    whole, tokenizer = fresh(tiny_decoder_dir, lora)
    expected = train_policy(whole, tokenizer, PAIRS, config, checkpoint_dir=tmp_path / "whole").history

    first, _ = fresh(tiny_decoder_dir, lora)
    with pytest.raises(Interrupted):  # dies during step 5, after the checkpoint of step 4
        train_policy(first, tokenizer, PAIRS, config, log=stop_at(5), checkpoint_dir=tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "state.json").read_text())
    assert saved["train_state"]["step"] == 4
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        ".rewardlab-files.json",  # what rewardlab wrote there (atomic.MANIFEST)
        "model.safetensors",
        "optimizer.safetensors",
        "rng.safetensors",
        "state.json",
    ]  # nothing that needs unpickling
    assert any(k.endswith("exp_avg_sq") for k in load_file(tmp_path / "run" / "optimizer.safetensors"))

    again, _ = fresh(tiny_decoder_dir, lora)  # a new process starts from the model as it was before training
    logged = []
    resumed = train_policy(
        again,
        tokenizer,
        PAIRS,
        config,
        log=lambda step, values: logged.append(step),
        checkpoint_dir=tmp_path / "run",
        resume=True,
    ).history
    assert logged == [5, 6, 7]
    assert resumed == expected
    for (name, a), b in zip(whole.named_parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b), name


def test_the_dpo_command_resumes_to_the_uninterrupted_policy(tiny_decoder_dir, tmp_path):
    """4 steps, then --resume to 6, is the 6-step run: the batches depend on the seed only."""
    write_pairs(tmp_path / "pairs.jsonl")
    common = ["--data", str(tmp_path / "pairs.jsonl"), "--policy", str(tiny_decoder_dir), *COMMON]
    common += ["train.save_every=2", "train.precision=fp32"]
    whole = run([*common, "--output", str(tmp_path / "whole"), "train.steps=6"])
    assert whole.exit_code == 0, whole.output
    part = run([*common, "--output", str(tmp_path / "part"), "train.steps=4"])
    assert part.exit_code == 0, part.output
    refused = run([*common, "--output", str(tmp_path / "part"), "train.steps=6"])
    assert refused.exit_code == 2 and "--resume" in refused.output
    changed = run([*common, "--output", str(tmp_path / "part"), "train.steps=6", "train.lr=1e-3", "--resume"])
    assert changed.exit_code == 2 and "train.lr: 0.003 -> 0.001" in " ".join(changed.output.split())
    resumed = run([*common, "--output", str(tmp_path / "part"), "train.steps=6", "--resume"])
    assert resumed.exit_code == 0, resumed.output

    lines = [json.loads(line) for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(1, 7))
    assert [line["loss"] for line in lines] == [line["loss"] for line in reference]
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "whole" / "policy").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "part" / "policy").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    report = json.loads((tmp_path / "part" / "report.json").read_text())
    assert report["steps"] == 6 and report["first_loss"] == reference[0]["loss"]


@pytest.mark.parametrize(("precision", "lora"), [("fp32", False), ("bf16", False), ("fp32", True)])
def test_gradient_checkpointing_recomputes_the_layers_and_trains_the_same_weights(tiny_decoder_dir, precision, lora):
    config = PolicyTrainConfig(loss_args={"beta": 0.5}, steps=2, batch_pairs=4, lr=2e-3, precision=precision)
    results = {}
    for checkpointing in (False, True):
        model, tokenizer = load(tiny_decoder_dir)
        if checkpointing:
            set_activation_checkpointing(model, enable=True)
        torch.manual_seed(0)
        if lora:
            model = add_lora(model, LoraSettings(enabled=True, r=4))
        # transformers keeps a layer's own hooks outside the checkpoint, and the recompute stops once the
        # saved tensors are rebuilt, so count the calls that start the layer's MLP
        calls = []
        mlp = next(m for name, m in model.named_modules() if name.endswith("layers.0.mlp"))
        mlp.register_forward_pre_hook(lambda *args, calls=calls: calls.append(1))
        history = train_policy(model, tokenizer, PAIRS, config).history
        results[checkpointing] = (history, [p.detach().clone() for p in model.parameters()], len(calls))
    (plain_history, plain_weights, plain_calls), (history, weights, calls) = results[False], results[True]
    # one forward of the reference before training, then per step: the forward, and the recompute in backward
    assert plain_calls == 1 + config.steps and calls == 1 + 2 * config.steps
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in plain_history], abs=1e-6)
    for a, b in zip(weights, plain_weights, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
