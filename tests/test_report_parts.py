"""The evaluation report's parts: Wilson intervals, length baselines, headline warnings,
predictions.jsonl, the most confidently wrong pairs, tables as HTML, and escaping.

Every interval and statistic is checked against a hand computation and against scipy's own."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from scipy.special import logit
from scipy.stats import binomtest, kendalltau

from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.baselines import length_baselines
from rewardlab.evaluate.headline import ECE_WARNING, SMALL_SAMPLE_PAIRS, difference_interval, headline_warnings
from rewardlab.evaluate.html_report import render_html
from rewardlab.evaluate.markdown_html import markdown_to_html
from rewardlab.evaluate.metrics import estimate, pairwise_correct, wilson_interval
from rewardlab.evaluate.paired import mcnemar_exact_p
from rewardlab.evaluate.pairwise import summarise_scores
from rewardlab.evaluate.predictions import confidently_wrong, excerpt, prediction_rows
from rewardlab.evaluate.ranking import kendall_tau
from rewardlab.evaluate.report import eval_payload, render_markdown, write_report

Z = 1.959963984540054  # the 97.5 % normal quantile


# -- intervals and statistics ------------------------------------------------------------------------


def test_wilson_interval_by_hand():
    """7 of 10: p̂ = 0.7, z² = 3.841459, 1 + z²/n = 1.3841459;
    centre = (0.7 + 0.1920729)/1.3841459 = 0.6444934;
    half = 1.959964/1.3841459 · √(0.021 + 0.0096036) = 1.4160154 · 0.1749389 = 0.2477153
    → (0.3967781, 0.8922087)."""
    assert wilson_interval(7, 10) == pytest.approx((0.3967781, 0.8922087), abs=1e-7)
    low, high = wilson_interval(8, 8)  # 8 of 8: no more 1.0–1.0; the lower end is n / (n + z²)
    assert low == pytest.approx(8 / (8 + Z**2)) and high == 1.0
    assert wilson_interval(0, 5) == (0.0, pytest.approx(Z**2 / (5 + Z**2)))
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="between 0 and n"):
        wilson_interval(6, 5)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (3, 8), (8, 8), (50, 100), (233, 370), (1, 1000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_interval_is_scipys(k, n, confidence):
    ours = wilson_interval(k, n, confidence)
    theirs = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert ours == pytest.approx((theirs.low, theirs.high), abs=1e-12)


def test_estimate_on_eight_pairs_all_right_is_not_a_point():
    e = estimate(pairwise_correct(np.arange(8) + 1.0, np.zeros(8)))
    assert e.accuracy == 1.0 and e.ci_low == pytest.approx(0.6755924) and e.ci_high == 1.0


def test_estimate_counts_a_tie_in_score_as_half_a_success():
    """Correctness (1, ½, 0, 1): 2.5 successes of 4, the Wilson interval of 2.5/4."""
    e = estimate([1.0, 0.5, 0.0, 1.0])
    assert (e.ci_low, e.ci_high) == pytest.approx(wilson_interval(2.5, 4))


def test_kendall_tau_is_scipys_tau_b():
    rng = np.random.default_rng(0)
    for k in (2, 3, 5, 9):
        for _ in range(20):
            scores = rng.integers(0, 4, size=k).astype(float).tolist()  # ties in score, often
            if len(set(scores)) == 1:
                assert kendall_tau(scores) == 0.0  # no order given: 0, where scipy gives NaN
                continue
            human = np.arange(k, 0, -1)  # best first
            assert kendall_tau(scores) == pytest.approx(kendalltau(human, scores, variant="b").statistic, abs=1e-12)
    assert kendall_tau([3, 1, 2]) == pytest.approx(1 / 3) and kendall_tau([2, 2, 1]) == pytest.approx(2 / math.sqrt(6))


def test_mcnemar_is_scipys_exact_binomial_test():
    assert mcnemar_exact_p(10, 2) == pytest.approx(158 / 4096)  # 2 · (1 + 12 + 66) / 2¹²
    for a, b in [(0, 1), (3, 3), (7, 20), (40, 25), (0, 12)]:
        assert mcnemar_exact_p(a, b) == pytest.approx(binomtest(a, a + b, 0.5).pvalue, abs=1e-15)
    assert mcnemar_exact_p(0, 0) == 1.0


def test_difference_interval_is_newcombes_published_example():
    """Newcombe (1998), Table II, example (a): 56/70 − 48/80 = 0.2, method 10: 0.0524 – 0.3339."""
    a, b = wilson_interval(56, 70), wilson_interval(48, 80)
    d, low, high = difference_interval(
        {"accuracy": 56 / 70, "ci_low": a[0], "ci_high": a[1]}, {"accuracy": 48 / 80, "ci_low": b[0], "ci_high": b[1]}
    )
    assert (d, round(low, 4), round(high, 4)) == (pytest.approx(0.2), 0.0524, 0.3339)


# -- baselines and warnings on synthetic scores with known answers --------------------------------------


def test_length_baselines_by_hand_and_scored_like_a_model():
    """(chosen, rejected) lengths (3, 9), (5, 2), (4, 4), (1, 7): the shorter reply is right, wrong,
    tied, right: (1 + 0 + ½ + 1)/4 = 0.625; the longer: (0 + 1 + ½ + 0)/4 = 0.375."""
    chosen, rejected = [3, 5, 4, 1], [9, 2, 4, 7]
    b = length_baselines(chosen, rejected)
    assert b["always_shorter"].accuracy == 0.625 and b["always_longer"].accuracy == 0.375
    assert (b["always_shorter"].ci_low, b["always_shorter"].ci_high) == pytest.approx(wilson_interval(2.5, 4))
    # a "model" whose reward is minus the length gets exactly the baseline's numbers
    pairs = [
        PreferencePair(prompt="q", chosen="c" * c, rejected="r" * r) for c, r in zip(chosen, rejected, strict=True)
    ]
    as_model = summarise_scores(pairs, [-float(c) for c in chosen], [-float(r) for r in rejected], precision="fp32")
    assert as_model.overall == b["always_shorter"]
    assert eval_payload(as_model, "m", "d")["baselines"]["always_shorter"]["accuracy"] == 0.625


def calibrated_unbiased(n: int = 200) -> tuple[list[PreferencePair], list[float], list[float]]:
    """n pairs, the chosen reply longer on half and shorter on the other half; in each half the model
    is right on 3 of 4 pairs with margin logit(0.75) and wrong on 1 with −logit(0.75): accuracy 0.75
    whatever the length, confidence 0.75 on every pair (ECE 0), both length baselines 0.5."""
    pairs, chosen, rejected = [], [], []
    for i in range(n):
        longer = i % 2 == 0
        pairs.append(PreferencePair(prompt=f"q{i}", chosen="x" * (20 if longer else 10), rejected="y" * 15))
        right = (i // 2) % 4 != 0
        chosen.append(float(logit(0.75)) if right else -float(logit(0.75)))
        rejected.append(0.0)
    return pairs, chosen, rejected


def warnings_of(pairs, chosen, rejected, **kwargs) -> list[str]:
    return eval_payload(summarise_scores(pairs, chosen, rejected, precision="fp32", **kwargs), "m", "d")["warnings"]


def test_a_calibrated_model_without_length_bias_on_enough_pairs_has_no_warning():
    pairs, chosen, rejected = calibrated_unbiased()
    result = summarise_scores(pairs, chosen, rejected, precision="fp32")
    assert result.overall.accuracy == 0.75 and result.calibration.ece == pytest.approx(0.0, abs=1e-12)
    assert result.length_bias.chosen_longer.accuracy == result.length_bias.chosen_shorter.accuracy == 0.75
    assert warnings_of(pairs, chosen, rejected) == []
    assert "## Warnings\n\n- none:" in render_markdown(result, "m", "d")
    assert "No warnings" in render_html(result, "m", "d")


def test_a_baseline_exactly_as_accurate_as_the_model_is_a_warning():
    """The chosen reply is the shorter on 3 of 4 pairs and the model's reward is minus the length: its
    accuracy is always-the-shorter's, 0.75, exactly; always-the-longer's 0.25 is far below."""
    pairs = [
        PreferencePair(prompt=f"q{i}", chosen="x" * (20 if i % 4 == 0 else 10), rejected="y" * 15) for i in range(200)
    ]
    chosen, rejected = [-0.01 * len(p.chosen) for p in pairs], [-0.01 * len(p.rejected) for p in pairs]
    model = eval_payload(summarise_scores(pairs, chosen, rejected, precision="fp32"), "m", "d")
    assert model["baselines"]["always_shorter"]["accuracy"] == model["overall"]["accuracy"] == 0.75
    assert any("always the shorter reply scores 0.75, within the model's 95 % interval" in w for w in model["warnings"])
    assert not any("always the longer" in w for w in model["warnings"])
    # the same data, a model right on 3 of 4 pairs whatever the length: no baseline within reach
    pairs, chosen, rejected = calibrated_unbiased()
    assert not any("baseline" in w for w in warnings_of(pairs, chosen, rejected))


def test_a_length_biased_model_is_warned_about_and_an_unbiased_one_is_not():
    """Right on every pair whose chosen reply is shorter, on half of those where it is longer: 1.0
    against 0.5 on 100 pairs each, far beyond the difference's interval."""
    pairs, chosen, rejected = calibrated_unbiased()
    biased = [1.0 if len(p.chosen) < len(p.rejected) or i % 4 < 2 else -1.0 for i, p in enumerate(pairs)]
    warnings = warnings_of(pairs, biased, rejected)
    assert any(w.startswith("Length bias: accuracy 0.50 when the chosen reply is longer") for w in warnings)
    assert not any(w.startswith("Length bias") for w in warnings_of(pairs, chosen, rejected))


def test_small_samples_and_bad_calibration_are_warned_about():
    pairs, chosen, rejected = calibrated_unbiased(8)
    warnings = warnings_of(pairs, chosen, rejected)
    assert any(
        w.startswith(f"Small sample: 8 pairs with a labelled order (fewer than {SMALL_SAMPLE_PAIRS})") for w in warnings
    )
    pairs, chosen, rejected = calibrated_unbiased()
    overconfident = [10 * c for c in chosen]  # confidence ≈ 1 on every pair, accuracy 0.75: ECE ≈ 0.25
    warnings = warnings_of(pairs, overconfident, rejected)
    assert any(w.startswith("Calibration far off: ECE 0.250 is above") for w in warnings) and ECE_WARNING < 0.25
    assert not any(w.startswith("Calibration") for w in warnings_of(pairs, chosen, rejected))


def test_position_bias_is_read_from_the_invariance_check():
    pairs, chosen, rejected = calibrated_unbiased()
    payload = eval_payload(summarise_scores(pairs, chosen, rejected, precision="fp32"), "m", "d")
    flips = {"rewrite": "candidate_order", "n": 200, "flips": 3, "flip_rate": 0.015}
    payload["extras"] = {"invariance": {"candidate_order": flips}}
    assert "Position bias: 3 of 200 preferences flip" in " ".join(headline_warnings(payload))
    payload["extras"]["invariance"]["candidate_order"]["flips"] = 0
    assert headline_warnings(payload) == []


# -- predictions.jsonl, the wrong pairs, tables, escaping ---------------------------------------------------


def escaped_eval():
    pairs = [
        PreferencePair(prompt=f"question {i}", chosen=f"good answer {i}", rejected=f"bad answer {i}") for i in range(5)
    ]
    pairs[2] = PreferencePair(prompt="<b>q</b>", chosen="<script>alert('x')</script> fine", rejected="meh", id="p2")
    pairs.append(PreferencePair(prompt="q", chosen="a", rejected="b", tie=True))
    chosen = [1.0, 2.0, -3.0, 0.5, -1.0, 0.0]
    rejected = [0.0, 0.0, 0.0, 0.5, 0.0, 1.0]
    return pairs, summarise_scores(pairs, chosen, rejected, precision="fp32")


def test_predictions_jsonl_has_a_row_per_pair_written_with_the_report(tmp_path):
    pairs, result = escaped_eval()
    write_report(result, tmp_path, "m", "d", pairs)
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 6 and [r["index"] for r in rows] == list(range(6))
    assert [r["correct"] for r in rows] == [1.0, 1.0, 0.0, 0.5, 0.0, None]  # the tie-labelled pair has no order
    assert [r["margin"] for r in rows] == [1.0, 2.0, -3.0, 0.0, -1.0, -1.0]
    assert rows[2]["id"] == "p2" and rows[2]["chosen"] == "<script>alert('x')</script> fine"  # JSON keeps text as is
    assert rows[0]["p_chosen"] == pytest.approx(1 / (1 + math.exp(-1)))
    assert (rows[1]["chosen_score"], rows[1]["rejected_score"]) == (2.0, 0.0)
    assert [r["index"] for r in confidently_wrong(rows)] == [2, 4]  # the tie-labelled pair is not "wrong"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.html", "eval.json", "eval.md", "predictions.jsonl"]
    without_texts = prediction_rows(result)
    assert "chosen" not in without_texts[0] and without_texts[2]["margin"] == -3.0


def test_wrong_pairs_on_the_page_are_escaped():
    pairs, result = escaped_eval()
    page = render_html(result, "m", "d", rows=prediction_rows(result, pairs))
    assert "<script" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; fine" in page
    assert "&lt;b&gt;q&lt;/b&gt;" in page and "<b>q</b>" not in page
    shown = re.findall(r"<h3>margin (-?[\d.]+)", page)
    assert shown == ["-3", "-1"]  # most confident first


def test_numbers_are_tables_not_preformatted_markdown():
    _, result = escaped_eval()
    page = render_html(result, "m", "d")
    assert "<pre>" not in page and "| scorer |" not in page
    assert "<th>scorer</th>" in page and "<td>always the shorter reply</td>" in page
    assert "<th>mean confidence</th>" in page  # the reliability bins with their counts


def test_markdown_to_html_reads_the_report_forms():
    md = "# T\n\n- a **b** `c<d>`\n- e\n\n| x | y |\n|---|---|\n| <s> | 2 |\n\ntext & more"
    assert markdown_to_html(md) == (
        "<h1>T</h1><ul><li>a <strong>b</strong> <code>c&lt;d&gt;</code></li><li>e</li></ul>"
        '<div class="table"><table><thead><tr><th>x</th><th>y</th></tr></thead>'
        "<tbody><tr><td>&lt;s&gt;</td><td>2</td></tr></tbody></table></div><p>text &amp; more</p>"
    )


def test_excerpts_collapse_whitespace_and_cut():
    assert excerpt("a  b\ncdef", 5) == "a b …" and excerpt("a  b\ncdef", 5, tail=True) == "…cdef"
    assert excerpt("short") == "short"


def test_markdown_report_starts_with_its_warnings():
    pairs, chosen, rejected = calibrated_unbiased(8)
    md = render_markdown(summarise_scores(pairs, chosen, rejected, precision="fp32"), "m", "d")
    assert md.startswith("# Reward model evaluation\n\n## Warnings\n\n- ")
    assert "\n- Small sample: 8 pairs" in md[: md.index("## Results")]
    assert md.index("## Warnings") < md.index("## Results") < md.index("### Against trivial baselines")
