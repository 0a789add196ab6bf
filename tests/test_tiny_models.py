"""The tiny test models load through the same Auto* calls as real checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

MESSAGES = [
    {"role": "user", "content": "Is the sea blue?"},
    {"role": "assistant", "content": "Mostly, yes."},
]


@pytest.mark.parametrize(
    ("fixture", "architecture"), [("tiny_encoder_dir", "BertModel"), ("tiny_decoder_dir", "LlamaForCausalLM")]
)
def test_loads_as_single_score_reward_model(request: pytest.FixtureRequest, fixture: str, architecture: str) -> None:
    directory: Path = request.getfixturevalue(fixture)
    assert json.loads((directory / "config.json").read_text())["architectures"] == [architecture]
    assert (directory / "model.safetensors").is_file()

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForSequenceClassification.from_pretrained(directory, num_labels=1)
    assert len(tokenizer) == model.config.vocab_size

    batch = tokenizer(["short", "a somewhat longer text than the first"], padding=True, return_tensors="pt")
    with torch.no_grad():
        scores = model(**batch).logits
    assert scores.shape == (2, 1)
    assert torch.isfinite(scores).all()


def test_encoder_uses_the_real_minilm_tokenizer(tiny_encoder_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    assert len(tokenizer) == 30522
    assert tokenizer.tokenize("Hello World") == ["hello", "world"]
    assert (tokenizer.cls_token, tokenizer.pad_token, tokenizer.pad_token_id) == ("[CLS]", "[PAD]", 0)


def test_decoder_tokenizer_is_chatml_with_distinct_pad(tiny_decoder_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder_dir)
    assert (tokenizer.pad_token, tokenizer.eos_token, tokenizer.bos_token) == ("<|endoftext|>", "<|im_end|>", None)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id

    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    assert text.startswith("<|im_start|>system\n")
    assert "<|im_start|>user\nIs the sea blue?<|im_end|>\n<|im_start|>assistant\nMostly, yes.<|im_end|>\n" in text

    ids = tokenizer.apply_chat_template(MESSAGES[:1], add_generation_prompt=True, return_dict=True)["input_ids"]
    assert ids[-3:] == tokenizer.encode("<|im_start|>assistant\n")[-3:]
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") in ids


def test_decoder_config_agrees_with_tokenizer(tiny_decoder_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder_dir)
    config = json.loads((tiny_decoder_dir / "config.json").read_text())
    assert config["pad_token_id"] == tokenizer.pad_token_id
    assert config["eos_token_id"] == tokenizer.eos_token_id
    assert 400 <= config["vocab_size"] <= 600
