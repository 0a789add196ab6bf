"""``benchmarks/tool_judge.py`` on the tiny test decoder as judge: pairs of each corruption kind, both
judges' verdicts kept, and a table whose counts add up."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "tool_judge.py"


def test_tool_judge_benchmark_on_a_tiny_judge(tiny_decoder_dir, tmp_path):
    spec = importlib.util.spec_from_file_location("tool_judge_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tool_judge_benchmark"] = module
    spec.loader.exec_module(module)
    results = module.main(["--work", str(tmp_path), "--pairs", "6", "--judge", str(tiny_decoder_dir)])
    rows = {row["kind"]: row for row in results["rows"]}
    assert rows["all"]["n"] == 6 and all(rows[k]["n"] == 2 for k in ("slip", "operation", "operand"))
    pairs = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert all(p["chosen"] != p["rejected"] for p in pairs)
    verdicts = json.loads((tmp_path / "judge.json").read_text())
    assert rows["all"]["judge"]["accuracy"] == sum(verdicts) / 6
    assert module.main(["--work", str(tmp_path), "--pairs", "6", "--judge", str(tiny_decoder_dir)]) == results
