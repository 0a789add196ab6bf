"""The model card: its transformers snippet, executed as written, gives `rewardlab score`'s rewards;
its Hub metadata and held-out results are those of the run that wrote it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from synthetic import synthetic_pairs, write_jsonl
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

import rewardlab
from rewardlab.models.model_card import (
    CHAT_SNIPPET,
    PLAIN_SNIPPET,
    HeldOutMetric,
    card_snippet,
    model_card_text,
    write_model_card,
)
from rewardlab.models.reward_model import RewardModel

MAX_LENGTH = 40
EXAMPLE = 'prompt, reply = "How do I boil an egg?", "Put it in boiling water for eight minutes."\n'
LONG_REPLY = "first words that will be cut away " * 30 + "and the end of the reply, which is kept"
CASES = [
    ("How do I boil an egg?", "Eight minutes in boiling water."),
    ("A long conversation " * 20, LONG_REPLY),  # far longer than MAX_LENGTH tokens
    ("", "a reply with no prompt"),
]
HH_CASE = ("\n\nHuman: hi there\n\nAssistant:", " Hello! How can I help?")
"""Read as written in the plain format; a chat model splits it into turns first, which the snippet leaves out."""


def text_sensitive_copy(backbone: Path, folder: Path) -> Path:
    """The tiny backbone re-initialised with weights of spread 0.5 (not 0.02): its rewards then depend on
    the text strongly enough that keeping the wrong end of a long text changes them far beyond 1e-5."""
    shutil.copytree(backbone, folder)
    config = AutoConfig.from_pretrained(folder)
    config.initializer_range = 0.5
    torch.manual_seed(0)
    build = AutoModelForCausalLM if config.model_type == "llama" else AutoModel
    build.from_config(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["encoder", "decoder"])
def saved(request, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp(request.param)
    backbone = text_sensitive_copy(request.getfixturevalue(f"tiny_{request.param}_dir"), folder / "backbone")
    return RewardModel.from_backbone(str(backbone), max_length=MAX_LENGTH).save_pretrained(folder / "model")


def run_snippet(folder: Path, prompt: str, reply: str, truncation_side: str | None = None) -> float:
    """The card's snippet, executed with this folder and this (prompt, reply) in place of its example."""
    code = card_snippet((folder / "README.md").read_text(encoding="utf-8"))
    assert 'model_dir = "."' in code and EXAMPLE in code
    code = code.replace('model_dir = "."', f"model_dir = {str(folder)!r}").replace(EXAMPLE, "")
    if truncation_side is not None:
        code = code.replace(
            "AutoTokenizer.from_pretrained(model_dir)",
            f"AutoTokenizer.from_pretrained(model_dir, truncation_side={truncation_side!r})",
        )
    namespace = {"prompt": prompt, "reply": reply}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["reward"]


def test_the_card_snippet_reproduces_rewardlab_score(saved):
    model = RewardModel.from_pretrained(saved)
    assert model.encode([CASES[1][0]], [CASES[1][1]]).truncated == [True]
    cases = CASES + ([HH_CASE] if model.info.text_format == "plain" else [])
    expected = model.score([p for p, _ in cases], [r for _, r in cases], precision="fp32")
    assert [run_snippet(saved, p, r) for p, r in cases] == pytest.approx(expected, abs=1e-5)
    # the long text is a real check: cut from the right, as transformers does by default, it scores otherwise
    assert abs(run_snippet(saved, *CASES[1], truncation_side="right") - expected[1]) > 1e-2
    assert max(expected) - min(expected) > 1e-1


def test_the_snippet_has_about_five_lines_of_work():
    for snippet in (PLAIN_SNIPPET, CHAT_SNIPPET):
        work = [
            line for line in snippet.splitlines() if line and not line.startswith(("from ", "model_dir", "prompt,"))
        ]
        assert 4 <= len(work) <= 6, work


def front_matter(card: str) -> dict:
    found = re.match(r"---\n(.*?)\n---\n", card, re.DOTALL)
    assert found, card[:200]
    return yaml.safe_load(found.group(1))


def test_card_metadata_and_results_table(saved, tmp_path):
    info = RewardModel.from_pretrained(saved).info
    info.backbone, info.objective, info.reward_mean, info.reward_std = "minilm", "bradley_terry", 0.25, 1.5
    metrics = [HeldOutMetric("accuracy", 0.7, 0.61, 0.78, 100)]
    card = write_model_card(tmp_path, info, data="embedded HH-RLHF harmless", metrics=metrics).read_text()
    meta = front_matter(card)
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["datasets"] == ["Anthropic/hh-rlhf"] and meta["metrics"] == ["accuracy"]
    assert meta["library_name"] == "transformers" and {"reward-model", "bradley-terry"} <= set(meta["tags"])
    assert "| accuracy | 0.700 | 0.610 – 0.780 | 100 |" in card
    assert "mean 0.25 and standard deviation 1.5" in card and f"{MAX_LENGTH} tokens" in card
    # a local backbone and a local data file are not Hub names: no base_model, no datasets
    info.backbone = str(saved)
    meta = front_matter(model_card_text(info, data=str(tmp_path / "pairs.jsonl")))
    assert "base_model" not in meta and "datasets" not in meta and "metrics" not in meta
    assert front_matter(model_card_text(info, data="org/prefs:train"))["datasets"] == ["org/prefs"]


def test_training_writes_the_card_after_the_test_split_is_evaluated(tiny_encoder_dir, tmp_path):
    data = write_jsonl(synthetic_pairs(120, seed=3), tmp_path / "pairs.jsonl")
    result = rewardlab.train(
        data=str(data),
        backbone=str(tiny_encoder_dir),
        output_dir=tmp_path / "run",
        max_steps=2,
        precision="fp32",
        progress=False,
        num_threads=1,
    )
    card = (result.model_dir / "README.md").read_text(encoding="utf-8")
    overall = result.test.overall
    row = f"| accuracy | {overall.accuracy:.3f} | {overall.ci_low:.3f} – {overall.ci_high:.3f} | {overall.n} |"
    assert row in card and overall.n > 0
    assert f"data `{data}`" in card and "objective `bradley_terry`" in card
