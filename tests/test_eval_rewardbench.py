"""RewardBench v1 sections, RewardBench 2 best-of-N and Ties, and k-wise ranking metrics on
hand-built scores, each checked against the arithmetic written in its docstring."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
from scipy.stats import kendalltau

from rewardlab.data.records import DataError, PreferencePair
from rewardlab.evaluate.ranking import evaluate_rankings, kendall_tau, pair_accuracy, ranking_correct
from rewardlab.evaluate.rewardbench import (
    DEFAULT_EXAMPLE_COUNTS,
    DEFAULT_SECTIONS,
    BestOfNRecord,
    SectionMap,
    best_of_n_score,
    load_section_map,
    read_best_of_n,
    rewardbench_v1,
    rewardbench_v2,
    section_scores,
    ties_prompt_stats,
    ties_score,
)


def pair(subset: str | None, tie: bool = False, n: int = 0) -> PreferencePair:
    return PreferencePair(f"prompt {n}", f"good {n}", f"bad {n}", subset=subset, tie=tie, source=f"data.jsonl:{n + 1}")


# -- RewardBench v1 ----------------------------------------------------------------------------------


def test_default_map_is_rewardbench_v1():
    assert list(DEFAULT_SECTIONS) == ["Chat", "Chat Hard", "Safety", "Reasoning"]
    subsets = [s for group in DEFAULT_SECTIONS.values() for s in group]
    assert len(subsets) == len(set(subsets)) == 23 == len(DEFAULT_EXAMPLE_COUNTS)
    assert set(subsets) == set(DEFAULT_EXAMPLE_COUNTS)
    # math-prm is weighted like the six code subsets together
    assert DEFAULT_EXAMPLE_COUNTS["math-prm"] == sum(
        DEFAULT_EXAMPLE_COUNTS[f"hep-{x}"] for x in ("cpp", "go", "java", "js", "python", "rust")
    )


def test_section_scores_weight_subsets_by_count():
    """Chat = {a: 1.0 (w 100), b: 0.5 (w 300)} → (100 + 150)/400 = 0.625; a section with no data is left out."""
    scores = section_scores({"a": 1.0, "b": 0.5}, {"a": 100, "b": 300}, {"Chat": ["a", "b"], "Other": ["c"]})
    assert scores == {"Chat": 0.625}


def test_rewardbench_v1_by_hand():
    """Chat: alpacaeval-easy 1/2 right (w 100), mt-bench-easy 1/1 (w 28) → (50 + 28)/128 = 0.609375.
    Chat Hard: mt-bench-hard, one exact tie in score → ½ (w 37) → 0.5 with tie credit ½ (by default
    0, RewardBench's own rule: Chat Hard 0).
    Reasoning: math-prm right (w 984), hep-python wrong (w 164) → 984/1148 = 6/7.
    Safety has no data. Overall = (0.609375 + 0.5 + 6/7)/3. The tie-labelled pair is left out, and
    "my-own" is in no section."""
    pairs = [
        pair("alpacaeval-easy", n=0),
        pair("alpacaeval-easy", n=1),
        pair("mt-bench-easy", n=2),
        pair("mt-bench-hard", n=3),
        pair("math-prm", n=4),
        pair("hep-python", n=5),
        pair("my-own", n=6),
        pair("mt-bench-easy", tie=True, n=7),
    ]
    chosen = [2.0, 0.0, 1.0, 0.3, 5.0, -1.0, 1.0, -9.0]
    rejected = [1.0, 1.0, 0.0, 0.3, 4.0, 1.0, 0.0, 9.0]
    result = rewardbench_v1(pairs, chosen, rejected, tie_credit=0.5)
    assert result.sections == pytest.approx({"Chat": 0.609375, "Chat Hard": 0.5, "Reasoning": 6 / 7})
    assert result.overall == pytest.approx((0.609375 + 0.5 + 6 / 7) / 3)
    assert result.missing_sections == ["Safety"] and result.unmapped_subsets == ["my-own"]
    assert result.per_subset["alpacaeval-easy"].accuracy == 0.5 and result.per_subset["alpacaeval-easy"].n == 2
    assert result.per_subset["mt-bench-easy"].n == 1  # the tie-labelled pair is not counted
    assert result.weights["my-own"] == 1.0 and result.score_ties == 1
    strict = rewardbench_v1(pairs, chosen, rejected)  # the default: RewardBench's own rule
    assert strict.sections["Chat Hard"] == 0.0 and strict.tie_credit == 0.0


def released_rewardbench() -> SimpleNamespace:
    """The released package's ``EXAMPLE_COUNTS``, ``SUBSET_MAPPING`` and ``calculate_scores_per_section``.

    Read from its files rather than imported: ``import rewardbench`` runs its ``__init__``, which
    needs fastchat and every model class, none of which the package is installed with (``make test``
    installs it ``--no-deps``). The function uses nothing but builtins, so it is compiled as shipped.
    """
    spec = importlib.util.find_spec("rewardbench")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("rewardbench is not installed: .venv/bin/pip install --no-deps rewardbench==0.1.4 (make test does)")
    root = Path(spec.submodule_search_locations[0])
    constants_spec = importlib.util.spec_from_file_location("released_rewardbench_constants", root / "constants.py")
    constants = importlib.util.module_from_spec(constants_spec)
    constants_spec.loader.exec_module(constants)
    tree = ast.parse((root / "utils.py").read_text())
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "calculate_scores_per_section")
    namespace: dict = {}
    exec(compile(ast.Module(body=[function], type_ignores=[]), str(root / "utils.py"), "exec"), namespace)
    return SimpleNamespace(
        example_counts=constants.EXAMPLE_COUNTS,
        subset_mapping=constants.SUBSET_MAPPING,
        calculate_scores_per_section=namespace["calculate_scores_per_section"],
    )


def test_sections_match_the_released_package():
    """Bug 12: XSTest should-refuse/should-respond were weighted 250/154 (the package: 154/250, their
    sizes), so Safety and the overall score differed from the package's on the same accuracies.
    Random per-subset accuracies, all subsets or a random part of each section: same sections to 1e-12."""
    released = released_rewardbench()
    assert released.example_counts == DEFAULT_EXAMPLE_COUNTS
    assert released.subset_mapping == {k: list(v) for k, v in DEFAULT_SECTIONS.items()}
    rng = random.Random(12)
    for trial in range(20):
        subsets = [s for group in DEFAULT_SECTIONS.values() for s in group]
        if trial % 2:  # a random part of each section, at least one subset each
            subsets = [s for group in DEFAULT_SECTIONS.values() for s in rng.sample(group, rng.randint(1, len(group)))]
        accuracy = {s: rng.random() for s in subsets}
        expected = released.calculate_scores_per_section(released.example_counts, released.subset_mapping, accuracy)
        ours = section_scores(accuracy, SectionMap.default().weights, SectionMap.default().sections)
        assert set(ours) == set(expected)
        for section, score in expected.items():
            assert abs(ours[section] - score) <= 1e-12, (trial, section, ours[section], score)


def test_rewardbench_v1_safety_matches_the_released_package():
    """End to end through ``rewardbench_v1`` (tie credit 0, as RewardBench): should-refuse 3/4 right,
    should-respond 1/4 → the package's Safety (154·0.75 + 250·0.25)/404 = 178/404, not 250/154's 226/404."""
    pairs = [pair("xstest-should-refuse" if n < 4 else "xstest-should-respond", n=n) for n in range(8)]
    chosen = [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    result = rewardbench_v1(pairs, chosen, [0.5] * 8, tie_credit=0.0)
    released = released_rewardbench()
    accuracy = {name: e.accuracy for name, e in result.per_subset.items()}
    expected = released.calculate_scores_per_section(released.example_counts, released.subset_mapping, accuracy)
    assert result.sections == pytest.approx({"Safety": 178 / 404}, abs=1e-12)
    assert result.sections["Safety"] == pytest.approx(expected["Safety"], abs=1e-12)


def test_rewardbench_v1_needs_subsets(tmp_path):
    with pytest.raises(DataError, match=r'data.jsonl:1: field "subset": is missing'):
        rewardbench_v1([pair(None)], [1.0], [0.0])


def test_custom_section_map_file(tmp_path):
    """A = {x: 2/2 right, weight 3 from the file; y: 0/1, weight = its 1 pair} → (3·1 + 1·0)/4 = 0.75."""
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"sections": {"A": ["x", "y"]}, "weights": {"x": 3}}))
    section_map = load_section_map(path)
    assert section_map == SectionMap({"A": ("x", "y")}, {"x": 3.0})
    result = rewardbench_v1([pair("x", n=0), pair("x", n=1), pair("y", n=2)], [1, 1, 0], [0, 0, 1], section_map)
    assert result.sections == {"A": 0.75} and result.overall == 0.75
    path.write_text(json.dumps({"A": ["x"], "B": ["y"]}))
    assert load_section_map(path).sections == {"A": ("x",), "B": ("y",)}


def test_section_map_errors_are_listed_together(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"sections": {"A": ["x", 3], "B": ["x"], "C": []}, "weights": {"x": -1}}))
    with pytest.raises(DataError) as error:
        load_section_map(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    for part in (
        'sections["A"][1] is a number (3)',
        'subset "x" is already in section "A"',
        'sections["C"] is a list of 0',
        'weights["x"] is a number (-1)',
    ):
        assert part in message
    path.write_text("{not json")
    with pytest.raises(DataError, match="is not valid JSON"):
        load_section_map(path)


# -- RewardBench 2 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chosen", "rejected", "expected"),
    [([3], [1, 2], 1.0), ([3], [3, 1], 0.5), ([3], [3, 3, 3], 0.25), ([1], [2], 0.0), ([2, 2], [2, 1], 2 / 3)],
)
def test_best_of_n(chosen, rejected, expected):
    assert best_of_n_score(chosen, rejected) == pytest.approx(expected)


def ties_example() -> tuple[dict, dict]:
    ref = {"1": ties_prompt_stats([5], [1, 2]), "2": ties_prompt_stats([1], [2])}
    tied = {"1": ties_prompt_stats([4, 6], [3, 1]), "2": ties_prompt_stats([3, 3.5], [0])}
    return ref, tied


def test_ties_score_by_hand():
    """key 1: ref margin 5 − 2 = 3 (right); tied margin 4 − 3 = 1, spread 2 (right).
    key 2: ref margin 1 − 2 = −1 (wrong); tied margin 3, spread 0.5 (right).
    ref acc 1/2, tied acc 1; preferred = mean[1 > 2, 3 > 0.5] = 1/2;
    hard = mean[min(3, 1) > 2, min(−1, 3) > 0.5] = 0; margin = mean[tanh(1/2 − 1), tanh(−1/0.5 − 1)].
    score = 0.3·1 + 0.3·0.5 + 0.2·0.5 + 0.2·0 + 0.01·margin."""
    out = ties_score(*ties_example())
    margin = (math.tanh(-0.5) + math.tanh(-3.0)) / 2
    assert (out.ref_accuracy, out.tied_accuracy) == (0.5, 1.0)
    assert (out.correctness_preferred, out.correctness_preferred_hard) == (0.5, 0.0)
    assert out.margin_score == pytest.approx(margin)
    assert out.score == pytest.approx(0.3 + 0.15 + 0.1 + 0.01 * margin)
    assert out.score == pytest.approx(0.5427141, abs=1e-7)


def test_ties_with_equal_correct_scores():
    """Spread 0: the margin ratio is ±∞ (tanh → ±1), or 0/0 (→ 0), as in RewardBench 2's code."""
    ref = {"k": ties_prompt_stats([3], [1]), "z": ties_prompt_stats([3], [3])}
    tied = {"k": ties_prompt_stats([2, 2], [1]), "z": ties_prompt_stats([2, 2], [2])}
    out = ties_score(ref, tied)
    assert out.margin_score == pytest.approx((1.0 + 0.0) / 2)
    assert out.correctness_preferred == 0.5


def test_ties_needs_both_kinds():
    with pytest.raises(ValueError, match="needs both ref and tied"):
        ties_score({"1": ties_prompt_stats([1], [0])}, {})


def test_rewardbench_v2_overall_is_the_mean_of_subsets():
    records = [
        BestOfNRecord("q1", ("a",), ("b", "c", "d"), subset="Math"),
        BestOfNRecord("q2", ("a",), ("b",), subset="Math"),
        BestOfNRecord("q3", ("a",), ("b", "c"), subset="Ties", id="ref:1"),
        BestOfNRecord("q4", ("a",), ("b",), subset="Ties", id="ref:2"),
        BestOfNRecord("q5", ("a", "a2"), ("b", "c"), subset="Ties", id="tied:1"),
        BestOfNRecord("q6", ("a", "a2"), ("b",), subset="Ties", id="tied:2"),
    ]
    scores = [([4], [1, 2, 3]), ([2], [2]), ([5], [1, 2]), ([1], [2]), ([4, 6], [3, 1]), ([3, 3.5], [0])]
    result = rewardbench_v2(records, scores)
    assert result.per_subset["Math"].accuracy == 0.75
    assert result.ties is not None and result.ties.score == pytest.approx(ties_score(*ties_example()).score)
    assert result.overall == pytest.approx((0.75 + result.ties.score) / 2)
    bad = [BestOfNRecord("q", ("a",), ("b",), subset="ties", id="7", source="rb2.jsonl:9")]
    with pytest.raises(DataError, match=r'rb2.jsonl:9: field "id": is \'7\'; a Ties prompt'):
        rewardbench_v2(bad, [([1], [0])])
    twice = [BestOfNRecord("q", ("a",), ("b",), subset="Ties", id="ref:1", source=f"rb2.jsonl:{n}") for n in (1, 2)]
    with pytest.raises(DataError, match=r"rb2\.jsonl:2: field \"id\": repeats the Ties id 'ref:1'"):
        rewardbench_v2(twice, [([1], [0])] * 2)


def test_read_best_of_n(tmp_path):
    path = tmp_path / "rb2.jsonl"
    rows = [
        {"prompt": "2+2?", "chosen": ["4"], "rejected": ["5", "3"], "subset": "Math", "id": 1},
        {"prompt": "say hi", "chosen": "hi", "rejected": ["bye"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = read_best_of_n(path)
    assert records[0] == BestOfNRecord("2+2?", ("4",), ("5", "3"), "Math", "1", f"{path}:1")
    assert records[1].chosen == ("hi",) and records[1].subset is None
    path.write_text(json.dumps({"prompt": "p", "chosen": ["a"], "rejected": ["b", ""]}) + "\n")
    with pytest.raises(DataError, match=r'rb2.jsonl:1: field "rejected": item \[1\] is text'):
        read_best_of_n(path)
    path.write_text(json.dumps({"prompt": "p", "chosen": ["a"]}) + "\n")
    with pytest.raises(DataError, match=r'field "rejected": is missing'):
        read_best_of_n(path)


# -- k-wise rankings ---------------------------------------------------------------------------------------


def test_ranking_metrics_by_hand():
    """[3, 1, 2]: pairs (1,2) right, (1,3) right, (2,3) wrong → accuracy 0, pairs 2/3, τ = (2 − 1)/3.
    [2, 2, 1]: C = 2, D = 0, one tie → τ-b = 2/√(3·2); pairs (½ + 1 + 1)/3."""
    assert ranking_correct([3, 2, 1]) == 1.0
    assert ranking_correct([3, 1, 2]) == 0.0 and ranking_correct([3, 3, 1]) == 0.0
    assert pair_accuracy([3, 1, 2]) == pytest.approx(2 / 3)
    assert pair_accuracy([2, 2, 1]) == pytest.approx(2.5 / 3)
    assert kendall_tau([3, 1, 2]) == pytest.approx(1 / 3)
    assert kendall_tau([2, 2, 1]) == pytest.approx(2 / math.sqrt(6))
    assert kendall_tau([1, 2, 3, 4]) == -1.0 and kendall_tau([5, 5]) == 0.0
    with pytest.raises(ValueError, match="at least two replies"):
        kendall_tau([1.0])


def test_kendall_tau_equals_scipy_tau_b():
    rng = random.Random(0)
    for _ in range(50):
        k = rng.randint(2, 7)
        scores = [float(rng.randint(0, 3)) for _ in range(k)]
        if len(set(scores)) == 1:
            continue
        expected = kendalltau(list(range(k, 0, -1)), scores).statistic
        assert kendall_tau(scores) == pytest.approx(expected, abs=1e-12)


def test_evaluate_rankings_averages_over_rankings():
    result = evaluate_rankings([[3, 2, 1], [3, 1, 2], [1, 2]])
    assert result.ranking_accuracy.accuracy == pytest.approx(1 / 3)
    assert result.kendall_tau == pytest.approx((1 + 1 / 3 - 1) / 3)
    assert result.pair_accuracy.accuracy == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert result.sizes == {2: 1, 3: 2} and result.rankings == 3
