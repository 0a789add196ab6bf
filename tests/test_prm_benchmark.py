"""``benchmarks/prm_best_of_n.py`` and ``benchmarks/rewardmath_scorers.py`` end to end on the tiny test
models: each runs, writes its results, and a rerun continues from what is saved instead of redoing it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up; rewardmath_scorers imports prm_best_of_n
    spec.loader.exec_module(module)
    return module


def test_tiny_mode_runs_and_resumes(tmp_path):
    module = benchmark("prm_best_of_n")
    results = module.main(["--tiny", "--work", str(tmp_path)])
    assert set(results["localisation"]) == {"prm", "orm"}
    assert {"PRM (min)", "ORM (whole chain)", "majority vote", "oracle"} <= set(results["best_of_n"])
    assert results["synthetic_chains"] > 0
    for row in results["best_of_n"].values():
        assert 0.0 <= row["interval"][0] <= row["accuracy"] <= row["interval"][1] <= 1.0
    assert json.loads((tmp_path / "results.json").read_text()) == results
    trained = (tmp_path / "prm" / "model" / "model.safetensors").stat().st_mtime_ns
    assert module.main(["--tiny", "--work", str(tmp_path)])["best_of_n"] == results["best_of_n"]
    assert (tmp_path / "prm" / "model" / "model.safetensors").stat().st_mtime_ns == trained


def test_rewardmath_scorers_tiny_mode_runs_and_resumes(tmp_path):
    benchmark("prm_best_of_n")
    module = benchmark("rewardmath_scorers")
    results = module.main(["--tiny", "--work", str(tmp_path)])
    assert {"PRM (min)", "ORM", "implicit-mean (SmolLM2)", "R³ relevance (MiniLM)"} <= set(results["rows"])
    assert {"judge (SmolLM2)", "tool judge (SmolLM2 + calculator)"} <= set(results["judge_rows"])
    for result in [*results["rows"].values(), *results["judge_rows"].values()]:
        one, pairwise = result["accuracy"], result["pairwise"]
        assert one["n"] in (4, 2)
        assert one["accuracy"] <= pairwise["accuracy"] + 1e-9  # a problem whose correct reply wins all wins each pair
        assert 0.0 < result["mrr"] <= 1.0
    saved = (tmp_path / "scores" / "judge.json").stat().st_mtime_ns
    assert module.main(["--tiny", "--work", str(tmp_path)])["judge_rows"] == results["judge_rows"]
    assert (tmp_path / "scores" / "judge.json").stat().st_mtime_ns == saved
