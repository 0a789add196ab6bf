"""benchmarks/pluralistic_groups.py (issue 33's two-group and few-shot benchmark), end to end on the
2-layer test encoder (``--tiny``): the files and the tables' structure, what must hold even on a tiny
model, resuming without retraining, and the pieces with a known answer."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from rewardlab.data.loading import load_preferences
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.users import UserExamples, UserTable

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "pluralistic_groups.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("pluralistic_groups", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["pluralistic_groups"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def work(bench, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pluralistic-groups")
    bench.main(["--tiny", "--work", str(folder)])
    return folder


@pytest.fixture(scope="module")
def result(work) -> dict:
    return json.loads((work / "results.json").read_text())


def test_the_run_writes_the_json_the_tables_and_the_curve(work, result):
    markdown = (work / "results.md").read_text()
    for heading in ("## Models", "## Seen users", "## Recovered groups", "## Few-shot"):
        assert heading in markdown
    assert (work / "few_shot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(result["training"]) == {"bradley_terry", "pal", "maxmin_em", "vpl", "micro"}
    for name in result["training"]:
        assert (work / "models" / name / "done.json").is_file()
        assert f"| {name} |" in markdown
    assert set(result["goal"]) == {"pal", "maxmin_em", "vpl", "micro"}
    assert set(result["recovery"]) == {"pal", "maxmin_em", "vpl", "micro"}


def test_held_out_users_keep_the_proportion_and_never_reach_training(work, result):
    """3 majority + 1 minority users held out (of 7 + 3): none of their pairs is in the training file,
    and every seen user has exactly one recovered cluster in each model."""
    data = result["data"]
    groups = [data["group_of"][u] for u in data["held_out"]]
    assert sorted(groups) == ["majority", "majority", "majority", "minority"]
    trained = {p.annotator for p in load_preferences(work / "data" / "train.jsonl").pairs}
    held = {p.annotator for p in load_preferences(work / "data" / "held_out.jsonl").pairs}
    assert held == set(data["held_out"]) and trained == set(data["seen"]) and not trained & held
    for recovery in result["recovery"].values():
        assert sorted(recovery["clusters"]) == data["seen"]
        assert 0 < recovery["purity"] <= 1


def test_the_few_shot_table_has_every_k_for_pal_and_vpl(result):
    rows = [r for r in result["few_shot"] if r["group"] == "all"]
    assert [(r["model"], r["k"]) for r in rows] == [(m, k) for m in ("pal", "vpl") for k in (1, 2, 4, 8)]
    for row in rows:
        assert row["users"] == 4 and row["n"] == 4 * 2  # four held-out users, two draws each
        for key in ("fitted", "population", "bradley_terry"):
            assert 0 <= row[key]["low"] <= row[key]["mean"] <= row[key]["high"] <= 1


def test_seen_users_are_scored_for_their_annotator_by_pluralistic_models_only(result):
    for name, seen in result["seen"].items():
        scored = {row["scored_for"] for row in seen["by_group"].values()}
        assert scored == ({"population"} if name == "bradley_terry" else {"each member"})
        assert sum(row["n"] for row in seen["by_group"].values()) == seen["overall"]["n"] == result["test_pairs"]


def test_a_fit_from_reused_outputs_equals_scoring_with_user_examples(bench, work):
    """The few-shot study fits each draw from outputs computed once; the library's own path encodes
    the examples again. Both must give the same rewards."""
    model = RewardModel.from_pretrained(work / "models" / "vpl" / "model")
    pairs = [p for p in load_preferences(work / "data" / "held_out.jsonl").pairs if not p.tie][:12]
    chosen, rejected = bench.pair_outputs(model, pairs, "fp32")
    examples, rest = bench.draw_examples(len(pairs), 4, 0, 0, 0)
    fitted_chosen, fitted_rejected = bench.fitted_rewards(model, chosen, rejected, examples, rest)
    user = UserExamples.from_pairs([pairs[i] for i in examples])
    scored = model.score(
        [pairs[i].prompt for i in rest] * 2,
        [pairs[i].chosen for i in rest] + [pairs[i].rejected for i in rest],
        precision="fp32",
        user=user,
    )
    assert torch.cat([fitted_chosen, fitted_rejected]).tolist() == pytest.approx(scored, abs=1e-6)


def test_a_second_run_resumes_without_retraining(bench, work, result):
    def saved() -> dict[str, int]:
        return {n: (work / "models" / n / "model" / "model.safetensors").stat().st_mtime_ns for n in result["training"]}

    weights = saved()
    again = bench.main(["--tiny", "--work", str(work)])
    assert saved() == weights
    assert again["seen"] == result["seen"] and again["few_shot"] == result["few_shot"]


def test_the_goal_check_counts_points_against_bradley_terry(bench):
    """Bradley-Terry: majority 0.80, minority 0.40. A: minority 0.55 (+15 points, exactly the goal),
    majority 0.78 (−2, exactly the limit): met. B: minority 0.60 (+20) but majority 0.77 (−3): not met."""

    def seen(majority: float, minority: float) -> dict:
        return {"by_group": {"majority": {"accuracy": majority}, "minority": {"accuracy": minority}}}

    checks = bench.goal_check({"bradley_terry": seen(0.80, 0.40), "a": seen(0.78, 0.55), "b": seen(0.77, 0.60)})
    assert checks["a"]["minority_gain"] == pytest.approx(0.15) and checks["a"]["met"]
    assert checks["b"]["majority_change"] == pytest.approx(-0.03) and not checks["b"]["met"]


def test_rows_that_separate_the_groups_recover_them(bench):
    """Mixture rows whose largest logit follows the group, and latent μ rows on either side of a line,
    are read back as the true groups (purity 1, ARI 1); rows all alike give one cluster (ARI 0)."""
    truth = {"u0": "majority", "u1": "majority", "u2": "majority", "u3": "minority", "u4": "minority"}
    ids = sorted(truth)
    mixture = torch.tensor([[2.0, 0.0], [1.5, 0.2], [3.0, 1.0], [0.0, 2.0], [-1.0, 1.0]])
    recovered = bench.recovered_groups(UserTable(ids, mixture, "mixture"), truth)
    assert recovered["purity"] == 1.0 and recovered["adjusted_rand_index"] == pytest.approx(1.0)
    mean = torch.tensor([[1.0, 0.1], [1.2, -0.1], [0.9, 0.0], [-1.0, 0.05], [-1.1, 0.0]])
    latent = torch.cat([mean, torch.zeros(5, 2)], dim=-1)
    recovered = bench.recovered_groups(UserTable(ids, latent, "latent"), truth)
    assert recovered["purity"] == 1.0 and recovered["adjusted_rand_index"] == pytest.approx(1.0)
    alike = bench.recovered_groups(UserTable(ids, torch.zeros(5, 2), "routed"), truth)
    assert set(alike["clusters"].values()) == {0} and alike["adjusted_rand_index"] == pytest.approx(0.0)


def test_holding_out_a_whole_group_is_refused_naming_the_option(bench, tmp_path):
    settings = bench.Settings(users=10, held_out_minority=3)
    with pytest.raises(ValueError, match="--held-out-minority 3: the minority has 3 users"):
        bench.run(tmp_path, settings)
    with pytest.raises(ValueError, match="--objectives must include bradley_terry"):
        bench.run(tmp_path, bench.Settings(objectives=["pal"]))
