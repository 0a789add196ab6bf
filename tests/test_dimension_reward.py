"""Dimension rewards (Nath et al. 2024): exact dimension values, weight recovery, save/load, the scorer kinds.

What must hold: each dimension's value on a hand case; on synthetic pairs whose true reward is a known
weighted sum of dimensions, Bradley-Terry on few labels recovers the weights' direction (in raw
units, w/σ); a saved reward is JSON that loads back exactly and names the file and field when it is
wrong; ``--scorer weighted-dimensions`` / ``weighted-dimensions-ref`` score w·(d − μ)/σ through ``rewardlab eval``;
the benchmark's ``--tiny`` mode runs.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.data.records import DataError
from rewardlab.evaluate.dimensions import (
    DimensionReward,
    DimensionScorer,
    dimension_values,
    length_dimension,
    refusal_dimension,
    repetition_dimension,
    source_support,
)
from rewardlab.evaluate.relevance import load_relevance_scorer
from rewardlab.evaluate.run import evaluate_data
from rewardlab.evaluate.scorers import ScorerSpec, build_scorer
from rewardlab.training.dimension_fit import fit_dimension_reward

torch.set_num_threads(1)


def test_each_dimension_on_hand_cases():
    """The reply "Hi, there!" is 4 word tokens (Hi , there !): log 5. "a b c a b c" has trigrams abc bca cab abc,
    3 distinct of 4. "the cat ran" has 2 of its 3 tokens in "The cat sat on the mat". "the cat sat"
    against "the cat sat on the mat": LCS 3, recall 3/6, precision 3/3."""
    assert length_dimension("Hi, there!") == pytest.approx(math.log(5))
    assert length_dimension("") == 0.0
    assert repetition_dimension("a b c a b c") == 0.75 and repetition_dimension("a b") == 1.0
    assert refusal_dimension("I'm sorry, I can't help with that.") == 1.0 and refusal_dimension("Sure.") == 0.0
    assert source_support("The cat sat on the mat", "the cat ran") == pytest.approx(2 / 3)
    assert source_support("anything", "") == 0.0
    values = dimension_values(
        ["reference_recall", "reference_precision", "source_support", "length"],
        ["The cat sat on the mat"],
        ["the cat sat"],
        references={"The cat sat on the mat": ("the cat sat on the mat",)},
    )
    assert values == [pytest.approx([0.5, 1.0, 1.0, math.log(4)])]


def test_dimension_values_say_what_is_missing():
    with pytest.raises(ValueError, match="unknown dimensions \\['tone'\\]; known: length"):
        dimension_values(["tone"], ["x"], ["y"])
    with pytest.raises(ValueError, match="reference_recall dimension needs reference answers"):
        dimension_values(["reference_recall"], ["x"], ["y"])
    with pytest.raises(ValueError, match="relevance dimension needs an embedding model"):
        dimension_values(["relevance"], ["x"], ["y"])


NAMES = ("length", "repetition", "source_support", "relevance")
TRUE_W = np.array([2.0, -1.0, 3.0, 0.0])


def synthetic_pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Dimension rows on different scales; the chosen reply is the one whose true reward w·d is higher
    with Bradley-Terry probability σ(w·(d_a − d_b))."""
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 0.2, 0.5, 3.0])
    a, b = rng.normal(size=(n, 4)) * scale, rng.normal(size=(n, 4)) * scale
    first = rng.random(n) < 1 / (1 + np.exp(-3 * (a - b) @ TRUE_W))
    return np.where(first[:, None], a, b), np.where(first[:, None], b, a)


@pytest.mark.parametrize(("k", "cosine", "agreement"), [(32, 0.9, 0.9), (128, 0.98, 0.96)])
def test_few_labels_recover_the_true_weights_direction(k, cosine, agreement):
    """Mean over 10 seeds of the cosine between the fitted raw-unit weights w/σ and the true ones (4
    weights to learn; measured 0.94 at k = 32, 0.99 at k = 128), and of the share of 2,000 held-out
    pairs ordered as the true reward orders them (0.93, 0.98)."""
    cosines, agrees = [], []
    test_a, test_b = synthetic_pairs(2000, seed=99)
    for seed in range(10):
        chosen, rejected = synthetic_pairs(k, seed)
        reward = fit_dimension_reward(NAMES, chosen.tolist(), rejected.tolist())
        w = np.asarray(reward.weights) / np.asarray(reward.scale)
        cosines.append(w @ TRUE_W / np.linalg.norm(w) / np.linalg.norm(TRUE_W))
        agrees.append(np.mean(((test_a - test_b) @ w > 0) == ((test_a - test_b) @ TRUE_W > 0)))
    assert np.mean(cosines) > cosine and np.mean(agrees) > agreement


def test_fitted_reward_reads_standardised_dimensions():
    """μ and σ are the training replies' mean and (population) sd; r = Σ w (d − μ)/σ."""
    chosen, rejected = [[3.0, 1.0], [5.0, 1.0]], [[1.0, 0.0], [3.0, 0.0]]
    reward = fit_dimension_reward(["length", "repetition"], chosen, rejected)
    assert reward.center == pytest.approx((3.0, 0.5)) and reward.scale == pytest.approx((math.sqrt(2), 0.5))
    assert reward.weights[0] > 0 and reward.weights[1] > 0
    w, c, s = reward.weights, reward.center, reward.scale
    assert reward.reward([4.0, 1.0]) == pytest.approx(w[0] * (4 - c[0]) / s[0] + w[1] * (1 - c[1]) / s[1])
    with pytest.raises(ValueError, match="one rejected row per chosen row"):
        fit_dimension_reward(["length"], [[1.0]], [])


def test_saved_reward_is_json_that_loads_back_and_names_what_is_wrong(tmp_path):
    reward = DimensionReward(("length", "refusal"), (0.5, -2.0), (3.0, 0.1), (1.5, 0.3))
    path = reward.save(tmp_path / "reward.json")
    assert DimensionReward.load(path) == reward
    raw = json.loads(path.read_text())
    assert raw["format"] == "rewardlab-dimension-reward" and raw["weights"] == [0.5, -2.0]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**raw, "weights": [0.5, "x"]}))
    with pytest.raises(
        DataError, match=re.escape("""bad.json: field "weights": is [0.5, 'x'] (expected a list of numbers""")
    ):
        DimensionReward.load(bad)
    bad.write_text(json.dumps({**raw, "scale": [1.0]}))
    with pytest.raises(DataError, match="needs 2 weights, centres and scales"):
        DimensionReward.load(bad)
    bad.write_text(json.dumps({"weights": []}))
    with pytest.raises(DataError, match='field "format": is not a dimension reward'):
        DimensionReward.load(bad)


def test_relevance_dimension_is_the_encoders_cosine(tiny_encoder_dir, tmp_path):
    reward = DimensionReward(("relevance", "length"), (2.0, 1.0), (0.1, 1.0), (0.5, 2.0), str(tiny_encoder_dir))
    path = reward.save(tmp_path / "reward.json")
    scorer = build_scorer(ScorerSpec(kind="weighted-dimensions", model=str(path)))
    assert isinstance(scorer, DimensionScorer)
    prompts, replies = ["How do I bake bread?", "hello"], ["Mix flour and water, then bake.", "Hi there"]
    cosines = load_relevance_scorer(str(tiny_encoder_dir)).relevance(prompts, replies)
    expected = [
        2.0 * (cos - 0.1) / 0.5 + (length_dimension(y) - 1.0) / 2.0 for cos, y in zip(cosines, replies, strict=True)
    ]
    assert scorer.score(prompts, replies) == pytest.approx(expected, abs=1e-6)


def test_rewardlab_eval_runs_with_the_dimension_scorers(tmp_path):
    """A reward that prefers replies grounded in the prompt gets every synthetic pair right; one that
    reads references needs ``weighted-dimensions-ref``, which reads them from the data."""
    rows = [
        {
            "prompt": f"Tell me about topic {i} and its history",
            "chosen": f"topic {i} has a history",
            "rejected": "bananas are yellow fruit",
            "reference": f"topic {i} has a long history",
        }
        for i in range(6)
    ]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain = DimensionReward(("source_support",), (1.0,), (0.5,), (0.5,)).save(tmp_path / "plain.json")
    evaluated = evaluate_data(str(plain), str(data), scorer="weighted-dimensions", report=tmp_path / "report")
    assert evaluated.result.overall.n == 6 and evaluated.result.overall.accuracy == 1.0
    with_refs = DimensionReward(("reference_recall",), (1.0,), (0.5,), (0.5,)).save(tmp_path / "refs.json")
    assert ScorerSpec(kind="weighted-dimensions", model=str(with_refs)).problems() == [
        f"{with_refs} reads reference answers: use --scorer weighted-dimensions-ref (--columns reference=FIELD)"
    ]
    evaluated = evaluate_data(
        str(with_refs), str(data), scorer="weighted-dimensions-ref", report=tmp_path / "report-ref"
    )
    assert evaluated.result.overall.accuracy == 1.0


def test_domain_dimensions_benchmark_tiny(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import domain_dimensions

    result = domain_dimensions.main(["--tiny", "--output", str(tmp_path), "--limit", "24"])
    assert set(result["results"]) == {"dimensions", "probe"}
    accuracy = result["results"]["dimensions"]["accuracy"]
    assert list(accuracy)[-1] == "all" and all(0 <= a <= 1 for a in accuracy.values())
    assert (tmp_path / "domain_dimensions.md").is_file()
