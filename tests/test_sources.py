"""Training on several sources: per-source splits, weights and the per-source report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.loading import load_preferences
from rewardlab.data.records import PreferencePair
from rewardlab.data.source_names import source_name, tag_source
from rewardlab.data.split import split_pairs
from rewardlab.evaluate.eval_markdown import results_markdown
from rewardlab.evaluate.metrics import wilson_interval
from rewardlab.evaluate.pairwise import summarise_scores
from rewardlab.runs.config import ConfigError
from rewardlab.runs.data import SplitDataConfig, load_split
from rewardlab.runs.sources import data_overrides, source_multipliers, sources_from_options
from rewardlab.training.config import load_config


def write_pairs(path: Path, n: int, topic: str) -> Path:
    rows = [
        {
            "prompt": f"Tell me about {topic} number {i}.",
            "chosen": f"A kind, clear answer on {topic} {i}.",
            "rejected": "No.",
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_kwise(path: Path, n: int) -> Path:
    """``n`` 3-reply rankings, ids g0..g{n-1}: each gives 3 pairs of one group."""
    rows = [
        {
            "id": f"g{i}",
            "prompt": f"Question {i}?",
            "responses": [f"best {i}", f"middle {i}", f"worst {i}"],
            "ranking": [0, 1, 2],
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_source_multipliers_exact():
    """Totals W = (a: 2, b: 6), ΣW = 8. Balanced, equal weights (Σw = 2): m_a = 1·8/(2·2) = 2,
    m_b = 1·8/(6·2) = 2/3, so both sources sum to 4 and the split still to 8. Weights (1, 3), Σw = 4:
    m_a = 1·8/(2·4) = 1, m_b = 3·8/(6·4) = 1 (the sizes already are 1:3). Unbalanced: m = the weights."""
    totals = {"a": 2.0, "b": 6.0}
    assert source_multipliers(totals, {"a": 1.0, "b": 1.0}, balance=True) == pytest.approx({"a": 2.0, "b": 2 / 3})
    assert source_multipliers(totals, {"a": 1.0, "b": 3.0}, balance=True) == pytest.approx({"a": 1.0, "b": 1.0})
    assert source_multipliers(totals, {"a": 0.5, "b": 2.0}, balance=False) == {"a": 0.5, "b": 2.0}
    assert source_multipliers({"a": 4.0, "b": 0.0}, {"a": 1.0, "b": 1.0}, balance=True) == {"a": 1.0, "b": 0.0}


def test_loaded_sources_carry_exact_weights(tmp_path):
    """a: 10 pairs → 2 test, 1 validation, 7 train; b: 30 → 6, 3, 21 (fractions 0.2 and 0.1 of each).
    Weights a = 2, b = 1, balanced: train ΣW = 28, Σw = 3, so m_a = 2·28/(7·3) = 8/3 and
    m_b = 1·28/(21·3) = 4/9: a sums to 56/3, b to 28/3 (2 : 1, total 28). Validation: ΣW = 4,
    m_a = 2·4/(1·3) = 8/3, m_b = 1·4/(3·3) = 4/9. Test pairs keep weight 1."""
    a, b = write_pairs(tmp_path / "a.jsonl", 10, "cats"), write_pairs(tmp_path / "b.jsonl", 30, "dogs")
    sources = [{"data": str(a), "weight": 2}, {"data": str(b)}]
    data = load_split(SplitDataConfig(sources=sources, source_balance=True), say=lambda _: None)
    expected = {("train", "a"): 8 / 3, ("train", "b"): 4 / 9, ("validation", "a"): 8 / 3, ("validation", "b"): 4 / 9}
    counts = {("train", "a"): 7, ("train", "b"): 21, ("validation", "a"): 1, ("validation", "b"): 3}
    for (part, name), weight in expected.items():
        pairs = [p for p in data.part(part) if source_name(p) == name]
        assert len(pairs) == counts[part, name]
        assert all(p.weight == pytest.approx(weight) for p in pairs)
    assert sum(p.weight for p in data.part("train")) == pytest.approx(28.0)
    assert [source_name(p) for p in data.part("test")] == ["a"] * 2 + ["b"] * 6
    assert all(p.weight == 1.0 for p in data.part("test"))
    plain = load_split(SplitDataConfig(sources=sources), say=lambda _: None)
    assert {p.weight for p in plain.part("train") if source_name(p) == "a"} == {2.0}
    assert {p.weight for p in plain.part("train") if source_name(p) == "b"} == {1.0}


def test_each_source_is_split_alone_and_no_group_straddles(tmp_path):
    """Each source's pairs go where the same seeded split of that source alone puts them; the
    rankings of both files use the same ids (g0, g1...), which stay apart after tagging."""
    one, two = write_kwise(tmp_path / "one.jsonl", 20), write_kwise(tmp_path / "two.jsonl", 10)
    config = SplitDataConfig(sources=[{"data": str(one)}, {"data": str(two), "name": "second"}], split_seed=3)
    data = load_split(config, say=lambda _: None)
    placed: dict[str, str] = {}
    for part in ("train", "validation", "test"):
        for pair in data.part(part):
            assert placed.setdefault(pair.group, part) == part, f"group {pair.group} straddles splits"
    for path, name in ((one, "one"), (two, "second")):
        alone = split_pairs(load_preferences(path).pairs, validation=0.1, test=0.2, seed=3)
        for part in ("train", "validation", "test"):
            mine = [(p.prompt, p.chosen, p.rejected) for p in data.part(part) if source_name(p) == name]
            assert mine == [(p.prompt, p.chosen, p.rejected) for p in getattr(alone, part)]
    assert {g.split("/")[0] for g in placed} == {"one", "second"}
    assert len(data.part("all")) == 3 * 30
    assert all(p.source.startswith(("[one] ", "[second] ")) and ".jsonl:" in p.source for p in data.part("all"))


def test_per_source_report_numbers_exact():
    """Source a: rewards right, right, wrong → 2/3; source b: right, a tie in score (1/2) and a
    tie-labelled pair (left out) → 1.5/2 = 0.75. Mean over sources (2/3 + 3/4)/2 = 17/24; pooled
    3.5/5 = 0.7. Intervals are Wilson's on (2, 3) and (1.5, 2)."""
    pairs = [tag_source(PreferencePair("p", f"c{i}", f"r{i}"), "a") for i in range(3)]
    pairs += [tag_source(PreferencePair("p", f"c{i}", f"r{i}", tie=i == 2), "b") for i in range(3)]
    result = summarise_scores(pairs, [1, 1, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0], precision="fp32")
    by_source = result.extras["per_source"]
    assert result.overall.accuracy == pytest.approx(0.7)
    assert by_source.per_source["a"].accuracy == pytest.approx(2 / 3) and by_source.per_source["a"].n == 3
    assert by_source.per_source["b"].accuracy == pytest.approx(0.75) and by_source.per_source["b"].n == 2
    assert (by_source.per_source["b"].ci_low, by_source.per_source["b"].ci_high) == wilson_interval(1.5, 2)
    assert by_source.mean_accuracy == pytest.approx(17 / 24)
    markdown = results_markdown(result, "m", "a + b")
    assert "### Per source" in markdown and "| mean over 2 sources | 0.7083 |" in markdown
    assert result.to_dict()["extras"]["per_source"]["mean_accuracy"] == pytest.approx(17 / 24)
    plain = summarise_scores([PreferencePair("p", "c", "r")], [1], [0], precision="fp32")
    assert "per_source" not in plain.extras


def test_data_options_and_config_problems(tmp_path):
    assert sources_from_options(["a.jsonl@0.5", "b.jsonl", "me@home.jsonl"]) == [
        {"data": "a.jsonl", "weight": 0.5},
        {"data": "b.jsonl"},
        {"data": "me@home.jsonl"},
    ]
    assert data_overrides(["a.jsonl"]) == {"data.path": "a.jsonl", "data.sources": []}
    assert data_overrides(["a.jsonl@2"])["data.sources"] == [{"data": "a.jsonl", "weight": 2.0}]
    bad = [
        'data.sources=[{data: a.jsonl, weight: 0}, {data: b.jsonl, colour: red}, x/a.jsonl, "a.jsonl"]',
        "data.path=c",
    ]
    with pytest.raises(ConfigError) as e:
        load_config(None, bad)
    assert e.value.problems[:4] == [
        "data.sources[0].weight must be a positive number (got 0)",
        "data.sources[1]: unknown key colour (known: data, name, columns, skip_bad_rows, weight)",
        "data.sources: two sources are named a; give each its own name: key",
        "data.path (c) and data.sources are both set; list the path as a source",
    ]


def test_train_on_two_sources_reports_per_source_accuracy(tiny_encoder_dir, tmp_path):
    a, b = write_pairs(tmp_path / "a.jsonl", 20, "cats"), write_pairs(tmp_path / "b.jsonl", 30, "dogs")
    args = ["train", "--data", f"{a}@2", "--data", str(b), "--backbone", str(tiny_encoder_dir)]
    args += ["--output", str(tmp_path / "run"), "max_steps=2", "precision=fp32", "progress=false", "num_threads=1"]
    args += ["model.max_length=32", "data.source_balance=true"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "source a: 14 train, 2 validation, 4 test pairs" in result.output
    report = json.loads((tmp_path / "run" / "report" / "eval.json").read_text())
    per_source = report["extras"]["per_source"]["per_source"]
    assert {name: e["n"] for name, e in per_source.items()} == {"a": 4, "b": 6}
    for name, e in per_source.items():
        assert (
            f"  {name}: {e['accuracy']:.4f} (95 % CI {e['ci_low']:.4f}–{e['ci_high']:.4f}, n={e['n']})" in result.output
        )
    assert "mean over 2 sources" in result.output
    assert "### Per source" in (tmp_path / "run" / "report" / "eval.md").read_text()
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "source_balance: true" in saved and "weight: 2.0" in saved


def test_python_train_takes_several_sources_like_the_command_line():
    """``rewardlab.train(data=[...])`` reads ``PATH@WEIGHT`` as ``--data`` does (checked before any training)."""
    from rewardlab.api import train

    with pytest.raises(ConfigError) as e:
        train(data=["a.jsonl@0", "b.jsonl"], recipe="general")
    assert e.value.problems == ["data.sources[0].weight must be a positive number (got 0.0)"]
