"""``benchmarks/prm_best_of_n.py`` end to end on the tiny test models: it runs, writes its results, and a
rerun continues from what is saved instead of redoing it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "prm_best_of_n.py"


def test_tiny_mode_runs_and_resumes(tmp_path):
    spec = importlib.util.spec_from_file_location("prm_best_of_n", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules["prm_best_of_n"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    results = module.main(["--tiny", "--work", str(tmp_path)])
    assert set(results["localisation"]) == {"prm", "orm"}
    assert {"PRM (min)", "ORM (whole chain)", "majority vote", "oracle"} <= set(results["best_of_n"])
    for row in results["best_of_n"].values():
        assert 0.0 <= row["interval"][0] <= row["accuracy"] <= row["interval"][1] <= 1.0
    assert json.loads((tmp_path / "results.json").read_text()) == results
    trained = (tmp_path / "prm" / "model" / "model.safetensors").stat().st_mtime_ns
    assert module.main(["--tiny", "--work", str(tmp_path)])["best_of_n"] == results["best_of_n"]
    assert (tmp_path / "prm" / "model" / "model.safetensors").stat().st_mtime_ns == trained
