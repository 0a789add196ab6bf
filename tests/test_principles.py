"""Principle-following evaluation (RewardAnything, Yu et al. 2025): the embedded flip-sets, their known
answers, the summary's exact values, and its two known ends (a scorer that ignores the principle, an
oracle that follows it) through the real reader, which states each principle before its prompt."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data import load_preferences
from rewardlab.data.context import CONTEXT_TEMPLATE, with_context
from rewardlab.data.principles import (
    FLIPS,
    PRINCIPLES,
    build_principle_set,
    embedded_sources,
    prefers,
    principle_set_jsonl,
    principle_set_path,
)
from rewardlab.data.records import PreferencePair, Prompt
from rewardlab.evaluate.benchmarks import evaluate_principles
from rewardlab.evaluate.principles import flip_sets, principle_eval
from rewardlab.models.reward_model import RewardModel

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED = principle_set_path()


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [json.loads(line) for line in EMBEDDED.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def pairs() -> list[PreferencePair]:
    return load_preferences(EMBEDDED).pairs


# -- the template ---------------------------------------------------------------------------------------


def test_context_template_on_text_transcripts_and_conversations() -> None:
    assert CONTEXT_TEMPLATE == "Context: {context}"
    assert with_context("\n\nHuman: hi\n\nAssistant:", " be brief ") == "Context: be brief\n\nHuman: hi\n\nAssistant:"
    assert with_context("hi", None) == "hi" and with_context("hi", "  ") == "hi"
    chat = ({"role": "user", "content": "hi"},)
    assert with_context(chat, "be brief") == ({"role": "system", "content": "Context: be brief"}, *chat)
    system = ({"role": "system", "content": "You help."}, *chat)
    assert with_context(system, "be brief") == ({"role": "system", "content": "You help.\n\nContext: be brief"}, *chat)


# -- the embedded set -----------------------------------------------------------------------------------


def test_embedded_set_is_rebuilt_exactly_from_its_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is what ``write_principle_set`` makes from the embedded HH-RLHF pairs and UltraFeedback."""
    monkeypatch.chdir(ROOT)
    assert principle_set_jsonl(build_principle_set(embedded_sources())) == EMBEDDED.read_text(encoding="utf-8")


def test_every_answer_is_known_by_construction_and_every_pair_flips(rows: list[dict]) -> None:
    """Each row's chosen reply is the one its principle prefers (checked again here from the texts),
    and each flip-set is one reply pair under a principle and its opposite, chosen swapped."""
    assert len(rows) == 200
    assert Counter(r["subset"] for r in rows) == {name: 20 for kind in FLIPS for name in kind}
    opposite = {a: b for kind in FLIPS for a, b in (kind, kind[::-1])}
    by_group: dict[str, list[dict]] = {}
    for row in rows:
        word = row.get("word")
        assert row["context"] == PRINCIPLES[row["subset"]].text.format(word=word)
        assert prefers(row["subset"], row["chosen"], row["rejected"], word) is True
        assert prefers(row["subset"], row["rejected"], row["chosen"], word) is False
        by_group.setdefault(row["group"], []).append(row)
    for first, second in by_group.values():
        assert opposite[first["subset"]] == second["subset"] and first["prompt"] == second["prompt"]
        assert (first["chosen"], first["rejected"]) == (second["rejected"], second["chosen"])
    assert len({(r["origin"]) for r in rows}) == 100  # each source pair used once


def test_reader_states_the_principle_before_the_prompt(rows: list[dict], pairs: list[PreferencePair]) -> None:
    assert len(pairs) == len(rows)
    for row, pair in zip(rows, pairs, strict=True):
        assert pair.context == row["context"] and pair.group == row["group"] and pair.subset == row["subset"]
        assert pair.prompt == f"Context: {row['context']}\n\n{row['prompt'].lstrip()}"


# -- the summary ----------------------------------------------------------------------------------------


def _pair(group: str | None, chosen: str, rejected: str, subset: str) -> PreferencePair:
    return PreferencePair("p", chosen, rejected, group=group, subset=subset)


def test_summary_exact_values() -> None:
    """Two flip-sets and one loose row. Correct per row: g1 (1, 1), g2 (1, 0), loose ½ (a tie).
    Accuracy (1 + 1 + 1 + 0 + ½)/5 = 0.7; per principle: shorter (1 + 1)/2 = 1, longer (1 + 0)/2 = ½,
    list ½; sensitivity over the two flip-sets: (1 + 0)/2 = ½; accuracy on flip-sets 3/4."""
    pairs = [
        _pair("g1", "a", "b", "shorter"),
        _pair("g1", "b", "a", "longer"),
        _pair("g2", "c", "d", "shorter"),
        _pair("g2", "d", "c", "longer"),
        _pair(None, "e", "f", "list"),
    ]
    result = principle_eval(pairs, [2.0, 1.0, 3.0, 0.0, 5.0], [1.0, 0.5, 1.0, 1.0, 5.0])
    assert result.overall.accuracy == pytest.approx(0.7) and result.overall.n == 5
    assert {k: v.accuracy for k, v in result.per_principle.items()} == {"shorter": 1.0, "longer": 0.5, "list": 0.5}
    assert result.sensitivity.accuracy == 0.5 and result.sensitivity.n == 2 and result.flip_sets == 2
    assert result.flip_set_accuracy.accuracy == 0.75 and result.score_ties == 1


def test_a_group_that_is_not_a_flip_set_is_an_error() -> None:
    with pytest.raises(ValueError, match='group "g" is not a flip-set'):
        flip_sets([_pair("g", "a", "b", "x"), _pair("g", "a", "b", "y")])
    with pytest.raises(ValueError, match="got 3 rows"):
        flip_sets([_pair("g", "a", "b", "x"), _pair("g", "b", "a", "y"), _pair("g", "a", "b", "z")])


# -- the known ends -------------------------------------------------------------------------------------


class IgnoresThePrinciple:
    """A reward that reads the reply only (its length and letters): the principle changes nothing."""

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        return [len(r) + 0.01 * sum(map(ord, r)) % 7 for r in replies]


class Oracle:
    """Reads the principle from the prompt, as the template put it there, and scores by it."""

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        out = []
        for prompt, reply in zip(prompts, replies, strict=True):
            assert isinstance(prompt, str)
            stated = prompt.split("\n\n", 1)[0].removeprefix("Context: ")
            name, word = next(
                (p.name, w)
                for p in PRINCIPLES.values()
                for w in ([stated.split('"')[1]] if '"' in stated else [None])
                if p.text.format(word=w) == stated
            )
            if name in ("shorter", "longer"):
                out.append(-len(reply.split()) if name == "shorter" else len(reply.split()))
            else:
                holds = PRINCIPLES[name].holds
                out.append(float(holds is not None and holds(reply, word)))
        return out


def test_a_scorer_that_ignores_the_principle_scores_exactly_half_and_zero(pairs: list[PreferencePair]) -> None:
    result = evaluate_principles(IgnoresThePrinciple(), pairs)
    assert result.overall.accuracy == 0.5 and result.flip_set_accuracy.accuracy == 0.5
    assert result.sensitivity.accuracy == 0.0 and result.flip_sets == 100
    for first, second in FLIPS:  # right under a principle exactly where wrong under its opposite
        assert result.per_principle[first].accuracy + result.per_principle[second].accuracy == 1.0


def test_an_oracle_scores_one_and_one(pairs: list[PreferencePair]) -> None:
    result = evaluate_principles(Oracle(), pairs)
    assert result.overall.accuracy == 1.0 and result.sensitivity.accuracy == 1.0
    assert all(e.accuracy == 1.0 for e in result.per_principle.values())


# -- the command ----------------------------------------------------------------------------------------


def test_eval_format_principles_reads_the_embedded_set(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    """``rewardlab eval MODEL --format principles`` (DATA left out) writes the report, and its numbers are
    those of the same model scored in Python."""
    model_dir = tmp_path / "model"
    RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64).save_pretrained(model_dir)
    report = tmp_path / "report"
    result = CliRunner().invoke(app, ["eval", str(model_dir), "--format", "principles", "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "principle sensitivity" in result.output
    saved = json.loads((report / "principles.json").read_text())
    assert saved["flip_sets"] == 100 and saved["overall"]["n"] == 200
    assert (report / "principles.md").read_text().startswith("# Principle-following evaluation")
    named = CliRunner().invoke(app, ["eval", str(model_dir), "principles", "--format", "principles"])
    assert named.exit_code == 0 and f"accuracy: **{saved['overall']['accuracy']:.4f}**" in named.output
