"""Preference synthesis with a tool-using judge and a feedback loop (``curation.synthesis``, Anyprefer).

The ranking and the loop run on tools whose scores are set by hand (a table from reply to score) and
a scripted policy, so every pair, margin and retry is known; end to end, a tiny causal LM samples and
a tiny saved reward model is the reward tool, and the pairs are read back by the data reader.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.curation.synthesis import (
    Candidate,
    SynthesisConfig,
    agreement,
    combined_scores,
    held_out_accuracy,
    judge,
    standardised,
    synthesize,
)
from rewardlab.curation.synthesis_data import read_prompts, synthesize_data
from rewardlab.curation.synthesis_tools import LengthTool, RefusalTool, RepetitionTool, parse_tools
from rewardlab.data import DataError, load_preferences
from rewardlab.data.records import Prompt
from rewardlab.models.reward_model import RewardModel

torch.set_num_threads(1)


class Table:
    """A tool whose score of each reply is set by hand (a reply not in the table scores 0)."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        return [self.scores.get(r, 0.0) for r in replies]


class Script:
    """A policy whose replies are scripted per (prompt, round seed); it records every call."""

    def __init__(self, replies: dict[tuple[str, int], list[str]]) -> None:
        self.replies = replies
        self.calls: list[tuple[list[str], int, float, int]] = []

    def __call__(self, prompts: Sequence[Prompt], k: int, temperature: float, seed: int) -> list[list[Candidate]]:
        self.calls.append((list(prompts), k, temperature, seed))  # type: ignore[arg-type]
        return [[Candidate(t) for t in self.replies[(p, seed)][:k]] for p in prompts]  # type: ignore[index]


def cands(*texts: str) -> list[Candidate]:
    return [Candidate(t) for t in texts]


def test_standardised_and_combined_scores_exact() -> None:
    """reward [1, 2, 3]: mean 2, std √(2/3) = 0.8165, z = [−1.2247, 0, 1.2247];
    length [0, 0, −1]: mean −1/3, std √(2/9) = 0.4714, z = [0.7071, 0.7071, −1.4142];
    weights 1, 1: s = [−0.5176, 0.7071, −0.1895]; a tool that cannot tell replies apart adds zeros."""
    assert standardised([1, 2, 3]) == pytest.approx([-math.sqrt(1.5), 0.0, math.sqrt(1.5)])
    assert standardised([4, 4, 4]) == [0.0, 0.0, 0.0]
    s = combined_scores({"reward": [1, 2, 3], "length": [0, 0, -1], "flat": [5, 5, 5]}, {})
    assert s == pytest.approx([-0.517638, 0.707107, -0.189469], abs=1e-6)


def test_the_judge_pairs_best_and_worst_and_weights_change_the_pair() -> None:
    """Weights 1, 1 (scores above): chosen b, rejected a, margin 0.7071 + 0.5176 = 1.2247; length
    ties a and b, so only the reward decides: agreement 1 of 1. Length weighted 2: s = [−√1.5 + √2,
    √2, √1.5 − 2√2] = [0.1895, 1.4142, −1.6037]: chosen b, rejected c, margin 3√2 − √1.5 = 3.0179;
    the reward prefers c, the length b: 1 of 2."""
    tools = {"reward": [1.0, 2.0, 3.0], "length": [0.0, 0.0, -1.0]}
    j = judge(cands("a", "b", "c"), tools, SynthesisConfig(min_margin=1.0), 1)
    assert (j.chosen, j.rejected, j.deciding_tools, j.agreement, j.ok) == (1, 0, 1, 1.0, True)
    assert j.margin == pytest.approx(math.sqrt(1.5))
    j = judge(cands("a", "b", "c"), tools, SynthesisConfig(weights={"length": 2.0}, min_agreement=0.6), 1)
    assert (j.chosen, j.rejected, j.agreement) == (1, 2, 0.5)
    assert j.margin == pytest.approx(3 * math.sqrt(2) - math.sqrt(1.5))
    assert not j.ok and "agree 0.50" in j.why
    assert agreement({"t": [1.0, 1.0]}, 0, 1) == (0.0, 0)
    j = judge(cands("a", "b"), {"up": [1.0, 2.0], "down": [2.0, 1.0]}, SynthesisConfig(), 1)  # s = [0, 0]
    assert (j.chosen, j.rejected, j.margin, j.agreement, j.ok) == (0, 1, 0.0, 0.5, False)


def test_rule_tools_exact() -> None:
    """Length band 5..200 words: 0 words → −log(5/0.5) = −log 10; 3 → −log(5/3); 250 → −log(250/200).
    Repetition: "a b c a b c" has trigrams abc, bca, cab, abc: 1 of 4 repeats → −0.25."""
    length = LengthTool()
    assert length.score([""] * 4, ["", "one two three", "w " * 250, "a b c d e f"]) == pytest.approx(
        [-math.log(10), -math.log(5 / 3), -math.log(1.25), 0.0]
    )
    assert RepetitionTool().score(["", ""], ["a b c a b c", "a b"]) == [-0.25, 0.0]
    refusal = RefusalTool().score([""] * 4, ["I'm sorry, but I cannot help.", "", "As an AI, no.", "Sure: boil it."])
    assert refusal == [-1.0, -1.0, -1.0, 0.0]
    assert parse_tools("reward, length") == ["reward", "length"]
    for bad, said in (("reward,magic", "unknown tool magic"), ("", "at least one"), ("length,length", "twice")):
        with pytest.raises(ValueError, match=said):
            parse_tools(bad)


def test_the_feedback_loop_retries_exactly_the_low_quality_prompts() -> None:
    """Round 1 (seed 0, temperature 0.7): "clear" gets replies the tool ranks 3 > 2 > 1 (margin 2.45),
    "flat" three replies it scores equally (margin 0), "never" one reply repeated (no pair). Round 2
    re-samples only "flat" and "never" (seed 1, temperature 1.0); "flat" pools 3 + 3 candidates and
    its new ones separate; round 3 re-samples "never" alone, which stays without a pair (empty and
    repeated replies are not candidates)."""
    script = Script(
        {
            ("clear", 0): ["c1", "c2", "c3"],
            ("flat", 0): ["f1", "f2", "f3"],
            ("never", 0): ["n", "n", "n"],
            ("flat", 1): ["g1", "g2", "g3"],
            ("never", 1): ["n", "", "n"],
            ("never", 2): ["", "n", "n"],
        }
    )
    tool = Table({"c1": 1, "c2": 2, "c3": 3, "g1": 5, "g3": -5})
    result = synthesize(["clear", "flat", "never"], script, {"tool": tool}, SynthesisConfig(k=3, rounds=3))
    asked = [(c[0], c[1], round(c[2], 6), c[3]) for c in script.calls]
    assert asked == [(["clear", "flat", "never"], 3, 0.7, 0), (["flat", "never"], 3, 1.0, 1), (["never"], 3, 1.3, 2)]
    clear, flat, never = result.judgements
    assert (clear.round, clear.candidates[clear.chosen].text, clear.candidates[clear.rejected].text) == (1, "c3", "c1")
    assert (flat.round, len(flat.candidates)) == (2, 6)
    assert (flat.candidates[flat.chosen].text, flat.candidates[flat.rejected].text, flat.ok) == ("g1", "g3", True)
    assert (never.ok, never.chosen, never.round, len(never.candidates)) == (False, None, 3, 1)
    assert "fewer than two" in never.why
    counts = result.counts()
    assert (counts["pairs"], counts["low_quality"], counts["no_pair"], counts["retried"]) == (2, 1, 1, 2)


def test_tools_correct_a_biased_reward_on_data_with_a_known_answer() -> None:
    """The abstract's claim, on synthetic data: a judge whose reward model is biased (it pays for
    length, and a looping reply is long) makes wrong pairs, and a tool that does not share the bias
    corrects them. Each prompt has one good reply (6 distinct words, true quality 1) and two bad ones
    (the same words looped 3 and 4 times: true quality 0, but longer). The reward scores word
    count: alone it always chooses a loop (accuracy 0); with the repetition tool weighted 2 the
    judge chooses the good reply every time (accuracy 1)."""
    good = "paris is the capital of france"
    replies = {(f"q{i}", 0): [f"{good} {i}", f"{good} {i} " * 3, f"{good} {i} " * 4] for i in range(20)}
    prompts = [f"q{i}" for i in range(20)]
    biased = Table({r: len(r.split()) for texts in replies.values() for r in texts})

    def accuracy(tools: dict, weights: dict) -> float:
        config = SynthesisConfig(k=3, rounds=1, weights=weights, min_margin=0.0, min_agreement=0.0)
        result = synthesize(prompts, Script(replies), tools, config)
        return sum(j.candidates[j.chosen].text.count(good) == 1 for j in result.judgements) / len(prompts)

    assert accuracy({"reward": biased}, {}) == 0.0
    assert accuracy({"reward": biased, "repetition": RepetitionTool()}, {"repetition": 2.0}) == 1.0


@pytest.fixture(scope="module")
def reward_dir(tiny_encoder_dir, tmp_path_factory):
    torch.manual_seed(0)
    return RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64).save_pretrained(
        tmp_path_factory.mktemp("rm") / "rm"
    )


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    rows = [
        {"prompt": "How do I boil an egg?"},
        {"prompt": [{"role": "user", "content": "Name a colour."}], "note": "kept out of the output"},
        {"prompt": "How do I boil an egg?"},  # the same prompt again: asked once
        {"prompt": "Say something kind."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(*args: object):
    return CliRunner().invoke(app, ["data", "synthesize", *map(str, args), "--precision", "fp32"])


def test_synthesize_end_to_end_with_a_tiny_policy_and_reward_model(
    tmp_path, tiny_decoder_dir, reward_dir, prompts_file
) -> None:
    """A tiny causal LM samples, a tiny reward model and the rule tools judge; the pairs are read back
    by the data reader, their provenance keeps the reward tool's real scores of both replies, and
    pairs plus low-quality prompts account for every distinct prompt."""
    output = tmp_path / "pairs.jsonl"
    args = ["--policy", tiny_decoder_dir, "--judge-model", reward_dir, "--k", 3, "--rounds", 2]
    checked = ["--check-model", reward_dir]
    result = run(prompts_file, *args, "--max-new-tokens", 12, "--min-margin", 0.5, *checked, "--output", output)
    assert result.exit_code == 0, result.output
    summary = json.loads(output.with_suffix(".summary.json").read_text())
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    low = [json.loads(line) for line in output.with_suffix(".low-quality.jsonl").read_text().splitlines()]
    assert summary["prompts"] == 3 and len(rows) == summary["pairs"] and len(low) == summary["low_quality"]
    assert summary["pairs"] + summary["low_quality"] == 3 and summary["pairs"] >= 1
    assert f"3 prompts → {summary['pairs']} pairs" in result.output
    assert summary["rounds"][0]["prompts"] == 3 and summary["tools"] == ["reward", "length", "repetition", "refusal"]
    if len(summary["rounds"]) > 1:
        assert summary["rounds"][1]["prompts"] == summary["rounds"][0]["low_after"]
    pairs = load_preferences(output).pairs
    assert [p.chosen for p in pairs] == [r["chosen"] for r in rows]
    model = RewardModel.from_pretrained(reward_dir)
    for row, pair in zip(rows, pairs, strict=True):
        s = row["synthesis"]
        assert s["quality"] == "ok" and s["margin"] >= 0.5 and pair.chosen != pair.rejected
        assert set(s["tools"]) == {"reward", "length", "repetition", "refusal"} and s["policy"] == str(tiny_decoder_dir)
        scores = model.score([pair.prompt] * 2, [pair.chosen, pair.rejected], precision="fp32")
        assert [s["tools"]["reward"]["chosen"], s["tools"]["reward"]["rejected"]] == pytest.approx(scores, abs=1e-5)
        assert s["judge_score"]["chosen"] - s["judge_score"]["rejected"] == pytest.approx(s["margin"])
    # the held-out check (here the reward tool's own model): the share of pairs whose reward tool agrees
    agree = [r["synthesis"]["tools"]["reward"]["chosen"] > r["synthesis"]["tools"]["reward"]["rejected"] for r in rows]
    assert summary["held_out_accuracy"] == pytest.approx(sum(agree) / len(agree))

    again = tmp_path / "again.jsonl"  # the same settings draw the same replies: the same file
    assert run(prompts_file, *args, "--max-new-tokens", 12, "--min-margin", 0.5, "--output", again).exit_code == 0
    assert again.read_text() == output.read_text()


def test_a_bar_no_pair_can_pass_retries_every_prompt_and_keeps_them_all(
    tmp_path, tiny_decoder_dir, reward_dir, prompts_file
) -> None:
    """--min-margin 1000: every prompt is low after each round, so round 2 re-samples all three, the
    pairs file is empty and the low-quality file holds all three with their best pair and why."""
    output = tmp_path / "none.jsonl"
    args = ["--policy", tiny_decoder_dir, "--judge-model", reward_dir, "--tools", "reward", "--k", 2]
    result = run(prompts_file, *args, "--max-new-tokens", 6, "--min-margin", 1000, "--output", output)
    assert result.exit_code == 0, result.output
    summary = json.loads(output.with_suffix(".summary.json").read_text())
    assert [r["prompts"] for r in summary["rounds"]] == [3, 3] and summary["retried"] == 3
    assert output.read_text() == ""
    low = [json.loads(line) for line in output.with_suffix(".low-quality.jsonl").read_text().splitlines()]
    assert len(low) == 3 and all(r["synthesis"]["quality"] == "low" and r["synthesis"]["round"] == 2 for r in low)
    assert all("why_low" in r["synthesis"] for r in low)


def test_bad_input_fails_with_one_line_naming_the_file_line_and_field(tmp_path, reward_dir) -> None:
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": 5}\n')
    out = tmp_path / "o.jsonl"
    result = run(bad, "--policy", "nowhere", "--judge-model", reward_dir, "--output", out)
    assert result.exit_code == 2 and f'{bad}:2: field "prompt": is a number (5)' in result.output
    bad.write_text('{"prompt": "fine"}\n{"question": "where is the prompt?"}\n')
    with pytest.raises(DataError, match=r'prompts.jsonl:2: field "prompt": is missing'):
        read_prompts(str(bad))
    bad.write_text('{"prompt": [{"role": "robot", "content": "hi"}]}\n')
    with pytest.raises(DataError, match=r'prompts.jsonl:1: field "prompt": message \[0\]'):
        read_prompts(str(bad))
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "hi"}\n')
    cases = [
        (["--judge-model", tmp_path / "missing"], "--judge-model"),
        (["--tools", "reward,magic"], "unknown tool magic"),
        (["--judge-model", reward_dir, "--k", 1], "k must be an integer of at least 2"),
        (["--judge-model", reward_dir, "--weights", "length=2", "--tools", "reward"], "--weights names length"),
        (["--judge-model", reward_dir, "--weights", "reward"], "--weights: 'reward' is not name=number"),
        (["--tools", "judge"], "--lm-judge"),
        (["--judge-model", reward_dir, "--check-model", tmp_path], "--check-model"),
    ]
    for extra, said in cases:
        result = run(good, "--policy", "nowhere", *extra, "--output", out)
        assert result.exit_code == 2 and said in result.output, (extra, result.output)
    result = run(good, "--policy", "nowhere", "--judge-model", reward_dir, "--output", tmp_path / "o.json")
    assert result.exit_code == 2 and "ending in .jsonl" in result.output
    assert not out.exists()


def test_prompts_from_preference_data_and_a_limit(tmp_path) -> None:
    """Preference data without a prompt field (HH transcripts) gives its distinct prompts; --limit the first N."""
    prompts = read_prompts("default", limit=5)
    assert len(prompts) == 5 and len({repr(p) for p in prompts}) == 5
    listed = synthesize_data(
        ["a", "b"], Script({("a", 0): ["x", "y"], ("b", 0): ["x", "y"]}), {"t": Table({"x": 1})}, tmp_path / "p.jsonl",
        SynthesisConfig(k=2, rounds=1), limit=1,
    )  # fmt: skip
    assert held_out_accuracy(Table({"x": 1}), listed.result) == 1.0
    assert held_out_accuracy(Table({"y": 1}), listed.result) == 0.0
    assert listed.counts()["prompts"] == 1 and load_preferences(tmp_path / "p.jsonl").pairs[0].chosen == "x"


def test_an_lm_judge_as_a_tool(tmp_path, tiny_decoder_dir, prompts_file) -> None:
    """``--tools judge``: the LM's pairwise verdicts become a score per reply, the mean log-odds against
    the others; with two candidates those are ℓ and −ℓ, so the pair's two judge scores are opposite."""
    output = tmp_path / "judged.jsonl"
    args = ["--policy", tiny_decoder_dir, "--tools", "judge,length", "--lm-judge", tiny_decoder_dir, "--k", 2]
    result = run(prompts_file, *args, "--rounds", 1, "--max-new-tokens", 6, "--min-margin", 0, "--output", output)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    rows += [json.loads(line) for line in output.with_suffix(".low-quality.jsonl").read_text().splitlines()]
    judged = [r["synthesis"]["tools"]["judge"] for r in rows if r["chosen"] is not None]
    assert len(rows) == 3 and judged
    assert all(j["chosen"] == pytest.approx(-j["rejected"], abs=1e-6) for j in judged)
