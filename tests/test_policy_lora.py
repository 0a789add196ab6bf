"""LoRA policy training on the tiny decoder: only the adapters move, the base (the reference) stays,
the loss falls, and the merged plain model computes the adapter model's log-probabilities."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_dpo_cli import COMMON, run, write_pairs
from test_policy_trainer import PAIRS, load
from transformers import AutoModelForCausalLM

from rewardlab.models.formatting import choose_format
from rewardlab.models.logprobs import pair_logps
from rewardlab.models.pair_encoding import encode_pairs
from rewardlab.policy.lora import LoraSettings, adapters_off, add_lora, is_lora, merged_and_base
from rewardlab.policy.trainer import PolicyTrainConfig, train_policy

torch.set_num_threads(1)


def logps(model, tokenizer):
    tokens = encode_pairs(tokenizer, PAIRS, choose_format(tokenizer), 64, 32)
    with torch.no_grad():
        out = pair_logps(model.eval(), tokens, tokenizer.pad_token_id)
    return torch.cat([out.chosen_logps, out.rejected_logps])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_lora_trains_only_the_adapters_against_the_frozen_base(tiny_decoder_dir, precision):
    model, tokenizer = load(tiny_decoder_dir)
    original = {name: p.detach().clone() for name, p in model.named_parameters()}
    before = logps(model, tokenizer)
    policy = add_lora(model, LoraSettings(enabled=True, r=4, alpha=8))
    assert is_lora(policy) and not is_lora(model)
    trainable = {name for name, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    start = {name: p.detach().clone() for name, p in policy.named_parameters()}

    config = PolicyTrainConfig(loss_args={"beta": 0.5}, steps=12, batch_pairs=4, lr=1e-2, precision=precision)
    history = train_policy(policy, tokenizer, PAIRS, config).history
    # B = 0 at the start, so the policy equals its base, the reference: the loss is exactly log 2
    assert history[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert history[-1]["loss"] < 0.5 * history[0]["loss"] and history[-1]["accuracy"] == 1.0

    for name, p in policy.named_parameters():
        if name in trainable:
            assert p.dtype == torch.float32
            if "lora_B" in name:
                assert not torch.equal(p, start[name]), name  # every B moved away from 0
        else:
            assert torch.equal(p, start[name]), name  # the base is frozen
    with adapters_off(policy):
        assert torch.equal(logps(policy, tokenizer), before)  # adapters off: the untouched base
    assert not torch.allclose(logps(policy, tokenizer), before)

    trained = logps(policy, tokenizer)
    merged, base = merged_and_base(policy)
    assert not is_lora(merged) and not is_lora(base)
    assert torch.allclose(logps(merged, tokenizer), trained, atol=1e-5, rtol=0)
    assert torch.equal(logps(base, tokenizer), before)
    for name, p in base.named_parameters():
        assert torch.equal(p, original[name]), name


def test_the_saved_merged_model_loads_without_peft_and_computes_the_adapter_models_logps(tiny_decoder_dir, tmp_path):
    model, tokenizer = load(tiny_decoder_dir)
    policy = add_lora(model, LoraSettings(enabled=True, r=4, alpha=8, target_modules="q_proj,v_proj"))
    assert {n.split(".")[-4] for n, p in policy.named_parameters() if p.requires_grad} == {"q_proj", "v_proj"}
    train_policy(policy, tokenizer, PAIRS, PolicyTrainConfig(steps=4, batch_pairs=4, lr=1e-2, precision="fp32"))
    trained = logps(policy, tokenizer)
    merged, base = merged_and_base(policy)
    merged.save_pretrained(tmp_path / "policy")
    assert (tmp_path / "policy" / "model.safetensors").is_file()
    assert not (tmp_path / "policy" / "adapter_config.json").exists()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "policy")
    assert type(loaded).__module__.startswith("transformers.")
    # merged weights round differently from base + B·A: sums of ~50 fp32 log-probs agree to ~1e-5, and
    # by thread count (other tests change it) a little less; a lost adapter would differ by far more
    assert torch.allclose(logps(loaded, tokenizer), trained, atol=1e-4, rtol=0)
    assert not torch.allclose(logps(base, tokenizer), trained, atol=1e-2, rtol=0)


def test_unknown_target_modules_are_named(tiny_decoder_dir):
    model, _ = load(tiny_decoder_dir)
    with pytest.raises(ValueError, match=r"lora\.target_modules"):
        add_lora(model, LoraSettings(enabled=True, target_modules="no_such_proj"))


def test_dpo_command_with_lora_saves_a_plain_merged_policy(tiny_decoder_dir, tmp_path):
    write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "run"
    args = ["--data", str(tmp_path / "pairs.jsonl"), "--policy", str(tiny_decoder_dir), "--output", str(out)]
    result = run([*args, *COMMON, "lora.enabled=true", "lora.r=4", "train.lr=5e-3", "train.loss_args.beta=0.5"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["lora"] == {"r": 4, "alpha": 32.0, "target_modules": "all-linear"}
    assert report["last_loss"] < report["first_loss"] - 0.05
    assert report["held_out"]["implicit_accuracy"]["accuracy"] == 1.0
    assert not (out / "policy" / "adapter_config.json").exists()
    saved = AutoModelForCausalLM.from_pretrained(out / "policy")
    original = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(saved.state_dict()[q], original.state_dict()[q])  # the update is merged in
    bad = run(["--policy", str(tiny_decoder_dir), "--output", str(tmp_path / "r2"), "lora.r=0", "lora.alpha=0"])
    assert bad.exit_code == 2 and "lora.r must be >= 1" in bad.output and "lora.alpha must be > 0" in bad.output
