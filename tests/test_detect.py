"""ReMoDetect's parts as pure functions: AUROC and its interval, the anchored objective, the detection
file's format and errors, the mixed texts' openings, the pairs tuning trains on."""

from __future__ import annotations

import math
import os

import pytest
import torch

from rewardlab.data.records import DataError
from rewardlab.detect.auroc import auroc, paired_auroc_difference
from rewardlab.detect.records import DetectionRecord, read_detection, write_detection
from rewardlab.detect.scoring import detection_aurocs
from rewardlab.detect.texts import human_answers, kept_opening, split_prompts
from rewardlab.detect.tuning import detection_pairs
from rewardlab.objectives import get_objective


def test_auroc_and_delong_interval_on_a_hand_computed_case():
    """Positives (3, 2), negatives (1, 2): ψ = [[1, 1], [1, ½]], so AUC = 3.5/4 = 0.875.
    V10 = (1, 0.75), V01 = (1, 0.75): each has sample variance 0.03125, so
    Var = 0.03125/2 + 0.03125/2 = 0.03125, se = 0.176777, and 0.875 ∓ 1.959964·0.176777
    = (0.528524, 1.221476), the top clipped to 1."""
    found = auroc([3.0, 2.0], [1.0, 2.0])
    assert found.auroc == 0.875
    assert found.ci_low == pytest.approx(0.528524, abs=1e-6) and found.ci_high == 1.0
    assert (found.positives, found.negatives) == (2, 2)


def test_paired_difference_on_a_hand_computed_case():
    """a ranks both positives [3, 2] above both negatives [1, 0]: AUC 1, V10 = V01 = [1, 1]. b scores the
    positives [0, 2] and negatives [1, 3]: V10 = [0, 1/2], V01 = [1/2, 0], AUC 1/4. d = 3/4;
    V10_a − V10_b = [1, 1/2] and V01_a − V01_b = [1/2, 1] each have variance 1/8, so Var(d) = 1/16 + 1/16,
    sd = 0.353553, z = 2.121320, p = 2(1 − Φ(z)) = 0.033895, interval 0.75 ± 1.959964·0.353553."""
    found = paired_auroc_difference([3, 2], [1, 0], [0, 2], [1, 3])
    assert found.difference == pytest.approx(0.75)
    assert found.p_value == pytest.approx(0.033895, abs=1e-6)
    assert (found.ci_low, found.ci_high) == pytest.approx((0.75 - 0.692952, 0.75 + 0.692952), abs=1e-6)
    same = paired_auroc_difference([3, 1, 2], [0, 2], [3, 1, 2], [0, 2])
    assert (same.difference, same.p_value) == (0.0, 1.0)
    with pytest.raises(ValueError, match="same texts"):
        paired_auroc_difference([1, 2], [0, 1], [1, 2, 3], [0, 1])


def test_auroc_edge_cases():
    assert auroc([1.0, 1.0], [1.0, 1.0]).auroc == 0.5  # all ties: a coin flip
    perfect = auroc([5.0, 6.0, 7.0], [1.0, 2.0])
    assert (perfect.auroc, perfect.ci_low, perfect.ci_high) == (1.0, 1.0, 1.0)
    assert auroc([0.0, 1.0], [2.0, 3.0]).auroc == 0.0  # the detector points the wrong way
    one = auroc([2.0], [1.0, 3.0])
    assert one.auroc == 0.5 and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    with pytest.raises(ValueError, match="needs positives and negatives"):
        auroc([], [1.0])


def test_detection_aurocs_reports_each_comparison_present():
    records = [DetectionRecord("q", t, s) for t, s in [("a", "human"), ("b", "lm"), ("c", "mixed"), ("d", "lm")]]
    found = detection_aurocs(records, [0.0, 2.0, 1.0, 3.0])
    assert {k: v.auroc for k, v in found.items()} == {"lm vs human": 1.0, "mixed vs human": 1.0, "lm vs mixed": 1.0}
    with pytest.raises(ValueError, match="needs both lm and human"):
        detection_aurocs(records[1:], [2.0, 1.0, 3.0])


def test_anchored_objective_exact_values():
    """loss = -log σ(r_c − r_r) + λ/2·[(r_c − r₀_c)² + (r_r − r₀_r)²], λ = 2:
    pair 1: r = (1, 0), r₀ = (0, 0): -log σ(1) = 0.313262, + 1·(1² + 0²) = 1.313262;
    pair 2: r = (0, 0), r₀ = (NaN, 1): log 2 = 0.693147, + 1·(0 (unanchored) + 1²) = 1.693147."""
    batch = {
        "chosen": torch.tensor([1.0, 0.0]),
        "rejected": torch.tensor([0.0, 0.0]),
        "chosen_rating": torch.tensor([0.0, math.nan]),
        "rejected_rating": torch.tensor([0.0, 1.0]),
    }
    objective = get_objective("anchored_bradley_terry")
    out = objective(batch, anchor_coef=2.0)
    assert out.losses.tolist() == pytest.approx([1.313262, 1.693147], abs=1e-6)
    assert out.metrics["accuracy"].tolist() == [1.0, 0.0]
    plain = objective(batch, anchor_coef=0.0).losses
    assert plain.tolist() == pytest.approx(get_objective("bradley_terry")(batch).losses.tolist())
    with pytest.raises(ValueError, match="anchor_coef must be non-negative"):
        objective(batch, anchor_coef=-1.0)


def test_pairs_rank_lm_over_mixed_over_human_with_anchors():
    records = [
        DetectionRecord("q1", "h", "human"),
        DetectionRecord("q1", "l", "lm"),
        DetectionRecord("q1", "m", "mixed"),
        DetectionRecord("q2", "h2", "human"),
        DetectionRecord("q2", "l2", "lm"),
    ]
    pairs = detection_pairs(records, [0.0, 1.0, 0.5, 2.0, 3.0])
    assert [(p.prompt, p.chosen, p.rejected, p.chosen_rating, p.rejected_rating) for p in pairs] == [
        ("q1", "l", "m", 1.0, 0.5),
        ("q1", "l", "h", 1.0, 0.0),
        ("q1", "m", "h", 0.5, 0.0),
        ("q2", "l2", "h2", 3.0, 2.0),
    ]
    without = detection_pairs(records, mixed=False)
    assert [(p.chosen, p.rejected, p.chosen_rating) for p in without] == [("l", "h", None), ("l2", "h2", None)]


def test_kept_opening():
    assert kept_opening("One. Two. Three.") == "One. Two."  # ceil(3/2) sentences
    assert kept_opening("One. Two.") == "One."
    assert kept_opening("a b c d e") == "a b c"  # one sentence: ceil(5/2) words
    assert kept_opening("word") == "word"
    with pytest.raises(ValueError, match="share"):
        kept_opening("a b", share=1.0)


def test_split_prompts_is_disjoint_and_stable():
    prompts = [f"p{i}" for i in range(40)]
    train, test = split_prompts(prompts, 0.25)
    assert len(test) == 10 and train | test == set(prompts) and not train & test
    more_train, _ = split_prompts([*prompts, "new one", "another"], 0.25)
    assert len(test & more_train) <= 1  # prompts keep their side by hash; only the cut moves


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "q", "source": "lm"}', 'd.jsonl:2: field "text": is missing (expected a string)'),
        ('{"prompt": "q", "text": "  ", "source": "lm"}', 'd.jsonl:2: field "text": is empty'),
        ('{"prompt": "q", "text": "t", "source": "gpt"}', "d.jsonl:2: field \"source\": is 'gpt' (expected one of"),
        ('{"prompt": 3, "text": "t", "source": "lm"}', 'd.jsonl:2: field "prompt": is 3 (expected a string)'),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "q", "text": "fine", "source": "human"}\n' + line + "\n")
    with pytest.raises(DataError) as error:
        read_detection(path)
    assert str(error.value).startswith(f"{path}:2") and message.split(":", 2)[2].strip() in str(error.value)


def test_human_answers_reads_the_qa_file_and_names_a_bad_element(tmp_path):
    path = tmp_path / "qa.json"
    path.write_text('[{"question": "Why?", "gold": "Because."}, {"question": "How?", "gold": ""}]')
    with pytest.raises(DataError, match=r'qa.json\[1\]: field "gold": is missing or empty'):
        human_answers(path)
    path.write_text('[{"question": " Why? ", "gold": "Because."}]')
    assert human_answers(path) == [("Why?", "Because.")]


def test_writing_is_atomic(tmp_path):
    """A write that fails leaves the old file whole and no temporary file behind."""
    path = write_detection(tmp_path / "d.jsonl", [DetectionRecord("q", "t", "lm")])
    before = path.read_text()
    with pytest.raises(TypeError):
        write_detection(path, [DetectionRecord("q", object(), "lm")])  # type: ignore[arg-type]
    assert path.read_text() == before and os.listdir(tmp_path) == ["d.jsonl"]
