"""The tools a judge may be given (``tools/``): the calculator, the code tool and BM25 lookup against
hand-computed answers, and the tool judge that shows their reports (``evaluate/judge.py``)."""

from __future__ import annotations

import json
import math

import pytest

from rewardlab.evaluate.judge import JudgeScorer
from rewardlab.evaluate.run import evaluate_data
from rewardlab.models.causal_lm import CausalLM
from rewardlab.tools.calculator import calculator_report
from rewardlab.tools.code import code_report
from rewardlab.tools.lookup import DocumentIndex, lookup_report
from rewardlab.tools.registry import parse_tools, tool_evidence


def test_calculator_recomputes_every_calculation():
    reply = "Bags: 3 × 5 = 15. In all: 15 + 12 = 28. Per box: 7 / 0 = 1."
    assert calculator_report("Q", reply) == (
        "3 × 5 = 15: right\n15 + 12 = 28: wrong, it is 27\n7 / 0 = 1: wrong, it divides by zero"
    )
    assert calculator_report("Q", "No arithmetic here.") is None


def test_code_tool_runs_each_block_confined(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    reply = (
        "First:\n```python\nprint(6 * 7)\n```\nThen:\n```\n1 / 0\n```\n"
        f"And:\n```py\nprint(open({str(secret)!r}).read())\n```"
    )
    lines = code_report("Q", reply).splitlines()
    assert lines[0] == "code block 1 printed '42'"
    assert lines[1] == "code block 2 failed: ZeroDivisionError: division by zero"
    assert lines[2].startswith("code block 3 failed: PermissionError")
    assert code_report("Q", "no code") is None


def test_bm25_hand_computed(tmp_path):
    """Two passages, "the cat sat" and "dogs bark loudly"; query "cat": N = 2, n = 1, so
    idf = log(1 + 1.5/1.5) = log 2; f = 1 and |d| = avgdl = 3, so the term weighs 1·2.5/(1 + 1.5) = 1:
    score log 2 = 0.693147 for the first passage, 0 for the second."""
    (tmp_path / "a.md").write_text("the cat sat\n\ndogs bark loudly\n")
    index = DocumentIndex(tmp_path)
    assert index.scores("cat") == pytest.approx([math.log(2), 0.0])
    assert [p.text for p in index.top("a cat?")] == ["the cat sat"]
    assert lookup_report(index, "Where is the cat?", "reply") == "[a.md] the cat sat"
    assert lookup_report(index, "nothing matches", "reply") is None


def test_tools_by_name(tmp_path):
    (tmp_path / "doc.txt").write_text("Paris is the capital of France.")
    tools = parse_tools(f"calculator, lookup={tmp_path}")
    assert [name for name, _ in tools] == ["calculator", "lookup"]
    evidence = tool_evidence(tools, "What is the capital of France?", "2 + 2 = 5")
    assert evidence == "calculator:\n2 + 2 = 5: wrong, it is 4\nlookup:\n[doc.txt] Paris is the capital of France."
    for bad in ("abacus", "lookup", "python=3", ""):
        with pytest.raises((ValueError, FileNotFoundError)):
            parse_tools(bad)


def test_the_judge_is_shown_each_responses_tool_report(tiny_decoder_dir):
    judge = JudgeScorer(CausalLM.from_pretrained(tiny_decoder_dir), tools=parse_tools("calculator"))
    shown = judge.verdict_prefix("What is 2 + 3?", "2 + 3 = 5", "2 + 3 = 6")
    assert "2 + 3 = 5\n\n[Tool results for Response A]\ncalculator:\n2 + 3 = 5: right" in shown
    assert "[Tool results for Response B]\ncalculator:\n2 + 3 = 6: wrong, it is 5" in shown
    plain = JudgeScorer(CausalLM.from_pretrained(tiny_decoder_dir)).verdict_prefix("Q", "2 + 3 = 5", "x")
    assert "Tool results" not in plain
    odds = judge.compare(["What is 2 + 3?"], ["2 + 3 = 5"], ["2 + 3 = 6"])
    assert odds[0] == pytest.approx(-judge.compare(["What is 2 + 3?"], ["2 + 3 = 6"], ["2 + 3 = 5"])[0], abs=1e-5)


def test_eval_with_the_tool_judge(tiny_decoder_dir, tmp_path):
    data = tmp_path / "pairs.jsonl"
    rows = [{"prompt": "What is 4 × 3?", "chosen": "4 × 3 = 12.", "rejected": "4 × 3 = 14."}] * 3
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    result = evaluate_data(None, str(data), scorer="tool-judge", judge=str(tiny_decoder_dir), tools="calculator")
    assert result.result.overall.n == 3 and "tool-judge" in result.name and "calculator" in result.name
    with pytest.raises(ValueError, match="needs --tools"):
        evaluate_data(None, str(data), scorer="tool-judge", judge=str(tiny_decoder_dir))


def test_the_reasoning_judge_writes_a_rubric_first(tiny_decoder_dir, tmp_path):
    """RM-R1's chain of rubrics: the reasoning judge is asked for a rubric (or its own solution) before
    its verdict, which is read after "Verdict:"; an unknown style is refused."""
    lm = CausalLM.from_pretrained(tiny_decoder_dir)
    shown = JudgeScorer(lm, reasoning=True, reasoning_style="rubric", reasoning_tokens=4).verdict_prefix("Q", "a", "b")
    assert "First write a short rubric" in shown and shown.endswith("Verdict:")
    assert "First solve the task yourself" in JudgeScorer(lm, reasoning=True, reasoning_style="solve").verdict_prefix(
        "Q", "a", "b"
    )
    with pytest.raises(ValueError, match="reasoning_style"):
        JudgeScorer(lm, reasoning_style="vibes")
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"prompt": "Q", "chosen": "yes", "rejected": "no"}) + "\n")
    result = evaluate_data(None, str(data), scorer="reasoning-judge", judge=str(tiny_decoder_dir), reasoning_tokens=4)
    assert "reasoning_style=rubric" in result.name


def test_each_reply_s_tools_run_once_for_both_orders(tiny_decoder_dir):
    """The judge asks both orders of a pair; a reply's tool report is made once and shown in both."""
    seen = []

    def counting(prompt, reply):
        seen.append(reply)
        return calculator_report(prompt, reply)

    judge = JudgeScorer(CausalLM.from_pretrained(tiny_decoder_dir), tools=[("calculator", counting)])
    judge.compare(["What is 2 + 3?"], ["2 + 3 = 5"], ["2 + 3 = 6"])
    assert sorted(seen) == ["2 + 3 = 5", "2 + 3 = 6"]
