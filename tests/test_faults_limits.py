"""Limits and refusals: rows that expand too far, texts too long to tokenise whole, pickled weights.

Each case ends in one clear error (exit 2 from the CLI) or the result the normal path gives, and
never in unbounded work or in unpickling a file a stranger wrote.
"""

from __future__ import annotations

import json
import pickle
import shutil
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.forms import MAX_PAIRS_PER_ROW, parse_row
from rewardlab.data.loading import load_preferences
from rewardlab.data.records import DataError
from rewardlab.data.schema import ColumnMap
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.sequences import encode_texts
from rewardlab.models.weight_files import PickledWeightsError, require_safetensors
from rewardlab.runs.data import SplitDataConfig, load_split

# -- item 8: one row expands to at most max_pairs_per_row pairs -------------------------------------------


def test_a_kwise_row_over_the_pair_limit_is_refused_with_its_location(tmp_path):
    """150 replies make 150·149/2 = 11,175 pairs, over the default 10,000."""
    row = {"prompt": "q", "responses": [f"reply {i}" for i in range(150)], "ranking": list(range(150))}
    path = tmp_path / "kwise.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError) as caught:
        load_preferences(path)
    message = str(caught.value)
    assert f'{path}:2: field "responses"' in message
    assert "11,175 pairs" in message and f"{MAX_PAIRS_PER_ROW:,}" in message and "max_pairs_per_row" in message
    parsed = parse_row(row, "x:1", ColumnMap(), max_pairs_per_row=20_000)  # the setting raises the limit
    assert len(parsed.pairs) == 11_175
    assert len(load_preferences(path, max_pairs_per_row=20_000).pairs) == 11_176
    split = load_split(SplitDataConfig(path=str(path), max_pairs_per_row=20_000))  # a run's data.max_pairs_per_row
    assert len(split.loaded.pairs) == 11_176


def test_a_tree_row_over_the_pair_limit_is_refused():
    nodes = [{"id": 0, "parent": None, "text": "root "}, *({"id": i, "parent": 0, "text": f"r{i}"} for i in (1, 2))]
    row = {"prompt": "q", "nodes": nodes, "comparisons": [{"chosen": 1, "rejected": 2}] * 3}
    with pytest.raises(DataError, match=r'x:7: field "comparisons": expands to 3 pairs'):
        parse_row(row, "x:7", ColumnMap(), max_pairs_per_row=2)
    assert len(parse_row(row, "x:7", ColumnMap(), max_pairs_per_row=3).pairs) == 3


# -- item 8: texts are cut before tokenising, keeping exactly the tokens kept before ----------------------


class TokenizerSpy:
    """A tokenizer that records the longest text it was given and refuses one over ``limit`` characters."""

    def __init__(self, tokenizer, limit: int) -> None:
        self.tokenizer, self.limit, self.longest = tokenizer, limit, 0

    def __call__(self, text, *args, **kwargs):
        for t in [text] if isinstance(text, str) else text:
            self.longest = max(self.longest, len(t))
            if len(t) > self.limit:
                raise AssertionError(f"a text of {len(t):,} characters was tokenised whole")
        return self.tokenizer(text, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def old_encode(tokenizer, text: str, max_length: int) -> list[int]:
    """What rewardlab did before: tokenise the whole text, keep its last tokens, special tokens around."""
    full = tokenizer(text, add_special_tokens=True)["input_ids"]
    body = tokenizer(text, add_special_tokens=False)["input_ids"]
    prefix, suffix = full[: len(full) - len(body) - 1], full[-1:]
    room = max_length - len(prefix) - len(suffix)
    return [*prefix, *body[max(0, len(body) - room) :], *suffix]


def sample_texts() -> list[str]:
    words = ["the", "capital", "of", "France", "is", "Paris", ",", "which", "lies", "on", "the", "Seine"]
    words += [";", "café", "naïve", "1000000", "!", ""]
    texts = ["short", "a b c", " leading and trailing spaces  "]
    for n in (10, 100, 300, 1000, 3000):
        texts.append(" ".join(words[(i * 7) % len(words)] for i in range(n)))
        texts.append("\n\n".join(words[(i * 3) % len(words)] * (1 + i % 4) for i in range(n)))
    texts.append("x" * 5000 + " end of the reply")  # one long word before the end
    texts.append("y" * 5000)  # one long word only
    return texts


@pytest.mark.parametrize("backbone", ["tiny_encoder_dir", "tiny_decoder_dir"])
@pytest.mark.parametrize("max_length", [8, 32, 200])
def test_cutting_before_tokenising_keeps_the_same_token_ids(backbone, max_length, request):
    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(backbone))
    special = backbone == "tiny_encoder_dir"
    texts = sample_texts()
    encoded = encode_texts(tokenizer, texts, max_length, add_special_tokens=special)
    for text, ids in zip(texts, encoded.ids, strict=True):
        body = tokenizer(text, add_special_tokens=False)["input_ids"]
        expected = old_encode(tokenizer, text, max_length) if special else body[max(0, len(body) - max_length) :]
        assert ids == expected, text[:60]


def test_a_50_mb_reply_is_scored_from_its_end_only(tiny_encoder_dir):
    """At max_length 32 a 50 MB reply is read about (32 + 16)·16 characters deep, not whole (6.5 GB once)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    spy = TokenizerSpy(tokenizer, limit=100_000)
    huge = "word " * 10_000_000 + "the final answer"
    started = time.perf_counter()
    encoded = encode_texts(spy, [huge, "short text"], max_length=32, add_special_tokens=True)
    assert time.perf_counter() - started < 5
    assert spy.longest < 100_000 and encoded.truncated == [True, False]
    assert encoded.ids[0] == old_encode(tokenizer, "word " * 1000 + "the final answer", 32)


def test_a_causal_lm_reads_a_bounded_part_of_a_huge_prompt_and_reply(tiny_decoder_dir):
    lm = CausalLM.from_pretrained(tiny_decoder_dir, max_prompt_tokens=16, max_reply_tokens=16)
    normal = lm.encode_reply("tell me about bread " * 50, "Mix flour and water. " * 50)
    lm.tokenizer = TokenizerSpy(lm.tokenizer, limit=100_000)
    assert lm.encode_reply("tell me about bread " * 50, "Mix flour and water. " * 50) == normal
    huge = lm.encode_reply("tell me about bread " * 2_000_000, "Mix flour and water. " * 2_000_000)
    assert huge == normal and lm.tokenizer.longest < 100_000


# -- item 12: pickled weights are refused by every loader, before anything is unpickled -------------------


class _Payload:
    """Unpickling this creates ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def pickled_decoder(tiny_decoder_dir, tmp_path, monkeypatch) -> Path:
    """The tiny decoder with its weights as ``pytorch_model.bin`` whose pickle would create a marker file;
    ``torch.load`` fails the test if anything calls it."""
    folder = tmp_path / "pickled-policy"
    shutil.copytree(tiny_decoder_dir, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(tmp_path / "UNPICKLED")))

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called on a pickled file")

    monkeypatch.setattr(torch, "load", refuse)
    return folder


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    rows = [{"prompt": f"About topic {i}?", "chosen": f"Sure, topic {i}.", "rejected": "No."} for i in range(24)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def gold_model(tiny_encoder_dir, tmp_path_factory) -> Path:
    return RewardModel.from_backbone(str(tiny_encoder_dir), max_length=32).save_pretrained(
        tmp_path_factory.mktemp("gold") / "rm"
    )


def cli_cases(bad: str, good: str, data: str, gold: str, out: str) -> dict[str, list[str]]:
    scorer = ["eval", data, "--precision", "fp32", "--scorer"]
    return {
        "eval --policy": ["eval", bad, data, "--scorer", "implicit", "--reference", good],
        "eval --reference": ["eval", good, data, "--scorer", "implicit", "--reference", bad],
        "eval --judge": [*scorer, "judge", "--judge", bad],
        "eval --strong": [*scorer, "cdr", "--strong", bad, "--weak", good],
        "eval --weak": [*scorer, "cdr", "--strong", good, "--weak", bad],
        "eval --lm": [*scorer, "flr", "--lm", bad],
        "dpo --policy": ["dpo", "--data", data, "--policy", bad, "--output", out, "train.steps=1", "num_threads=1"],
        "overopt --policy": [
            "overopt", "--policy", bad, "--gold", gold, "--proxy", gold, "--output", out, "--n", "2", "--prompts", "1",
            "--max-new-tokens", "2", "--precision", "fp32",
        ],
    }  # fmt: skip


CASES = list(cli_cases("B", "G", "D", "R", "O"))


@pytest.mark.parametrize("case", CASES)
def test_every_causal_lm_option_refuses_pickled_weights(
    case, pickled_decoder, tiny_decoder_dir, pairs_file, gold_model, tmp_path
):
    args = cli_cases(str(pickled_decoder), str(tiny_decoder_dir), str(pairs_file), str(gold_model), str(tmp_path / "o"))
    result = CliRunner().invoke(app, args[case])
    said = "".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "".join(f"{pickled_decoder} holds pickled weights (pytorch_model.bin)".split()) in said
    assert "save_pretrained('OUT',safe_serialization=True)" in said and "inanenvironmentyoutrust" in said
    assert not (tmp_path / "UNPICKLED").exists()


def test_the_check_reads_file_names_only(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    with pytest.raises(PickledWeightsError, match=r"holds no model\.safetensors"):
        require_safetensors(folder)
    (folder / "pytorch_model.bin").write_bytes(b"not even a pickle")
    with pytest.raises(PickledWeightsError, match="AutoModelForSequenceClassification"):
        require_safetensors(folder, auto_class="AutoModelForSequenceClassification")
    (folder / "model.safetensors").write_bytes(b"")  # transformers reads this one and ignores the .bin
    assert require_safetensors(folder) == folder


@pytest.fixture
def pickled_reward_model(gold_model, tmp_path, monkeypatch) -> Path:
    """A saved reward model whose weights are a ``pytorch_model.bin`` that would create a marker if unpickled."""
    folder = tmp_path / "pickled-rm"
    shutil.copytree(gold_model, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(tmp_path / "UNPICKLED")))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called on a pickled file"))
    return folder


@pytest.mark.parametrize("command", ["train --backbone", "eval", "score", "compare"])
def test_every_reward_model_path_refuses_pickled_weights(
    command, pickled_reward_model, gold_model, pairs_file, tmp_path
):
    bad, out = str(pickled_reward_model), str(tmp_path / "out")
    args = {
        "train --backbone": ["train", "--backbone", bad, "--data", str(pairs_file), "--output", out],
        "eval": ["eval", bad, str(pairs_file)],
        "score": ["score", bad, str(pairs_file), "--output", str(tmp_path / "s.jsonl"), "--response-field", "chosen"],
        "compare": ["compare", str(gold_model), bad, str(pairs_file)],
    }[command]
    result = CliRunner().invoke(app, args)
    said = "".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "".join(f"{bad} holds pickled weights (pytorch_model.bin)".split()) in said
    assert not (tmp_path / "UNPICKLED").exists()
