"""Headline warnings: what a reader of an evaluation report should see before any number.

Each warning is computed from the numbers ``eval.json`` already holds (so any saved report can be
re-checked with ``headline_warnings(json.load(f))``), against the thresholds below:

- **length or formatting bias**: the accuracy when the chosen reply is longer differs from the
  accuracy when it is shorter by more than chance allows: the 95 % interval of the difference
  (Newcombe's hybrid score interval from the two Wilson intervals, Newcombe 1998, method 10)
  excludes 0. The same for more and less Markdown formatting;
- **position bias**: preferences flip when the replies are scored in another order (present when
  the evaluation ran ``--invariance``; a scorer that reads each reply alone never flips);
- **small sample**: fewer than ``SMALL_SAMPLE_PAIRS`` pairs with a labelled order;
- **calibration far off**: the raw rewards' ECE is above ``ECE_WARNING``;
- **a trivial baseline within the model's interval**: always-the-shorter or always-the-longer reply
  (``baselines.py``) scores at least the lower end of the model's 95 % interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rewardlab.evaluate.baselines import BASELINE_NAMES

SMALL_SAMPLE_PAIRS = 100
"""Below this many pairs a 95 % interval on accuracy is wider than ±0.1 (Wilson, near 0.5)."""

ECE_WARNING = 0.10
"""An expected calibration error above this means σ(r_c − r_r) is off by more than 10 points on average."""


def difference_interval(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[float, float, float]:
    """The difference of two independent accuracies and its 95 % interval (Newcombe 1998, method 10).

    From each accuracy p with its Wilson interval (l, u):
    d = p_a − p_b, low = d − √((p_a − l_a)² + (u_b − p_b)²), high = d + √((u_a − p_a)² + (p_b − l_b)²).
    ``a`` and ``b`` are ``AccuracyEstimate``s as ``eval.json`` writes them (accuracy, ci_low, ci_high).
    """
    pa, la, ua = a["accuracy"], a["ci_low"], a["ci_high"]
    pb, lb, ub = b["accuracy"], b["ci_low"], b["ci_high"]
    d = pa - pb
    return d, d - math.hypot(pa - la, ub - pb), d + math.hypot(ua - pa, pb - lb)


def _known(*estimates: Mapping[str, Any]) -> bool:
    return all(e["n"] > 0 and not math.isnan(e["accuracy"]) for e in estimates)


def _bias_warning(what: str, more: Mapping[str, Any], less: Mapping[str, Any], words: tuple[str, str]) -> list[str]:
    if not _known(more, less):
        return []
    d, low, high = difference_interval(more, less)
    if low <= 0 <= high:
        return []
    return [
        f"{what} bias: accuracy {more['accuracy']:.2f} when the chosen reply is {words[0]} (n = {more['n']}), "
        f"{less['accuracy']:.2f} when it is {words[1]} (n = {less['n']}); the difference {d:+.2f} "
        f"(95 % CI {low:+.2f} – {high:+.2f}) excludes 0."
    ]


def headline_warnings(report: Mapping[str, Any]) -> list[str]:
    """The warnings for one ``eval.json`` payload (see the module docstring), most telling first."""
    warnings: list[str] = []
    bias = report["length_bias"]
    warnings += _bias_warning("Length", bias["chosen_longer"], bias["chosen_shorter"], ("longer", "shorter"))
    style = report.get("style_bias")
    if style:
        warnings += _bias_warning(
            "Formatting", style["chosen_more_formatted"], style["chosen_less_formatted"], ("more formatted", "less")
        )
    order = report.get("extras", {}).get("invariance", {}).get("candidate_order")
    if order and order["flips"] > 0:
        warnings.append(
            f"Position bias: {order['flips']} of {order['n']} preferences flip when the replies are scored "
            "in another order."
        )
    overall = report["overall"]
    for key, name in BASELINE_NAMES.items():
        baseline = report.get("baselines", {}).get(key)
        if baseline and _known(baseline, overall) and baseline["accuracy"] >= overall["ci_low"]:
            where = "above" if baseline["accuracy"] > overall["ci_high"] else "within"
            warnings.append(
                f"A trivial baseline is as good: {name} scores {baseline['accuracy']:.2f}, {where} the model's "
                f"95 % interval {overall['ci_low']:.2f} – {overall['ci_high']:.2f} "
                f"(accuracy {overall['accuracy']:.2f})."
            )
    ece = report["calibration"]["ece"]
    if not math.isnan(ece) and ece > ECE_WARNING:
        text = f"Calibration far off: ECE {ece:.3f} is above {ECE_WARNING:g}"
        scaled = report.get("calibrated")
        if scaled:
            text += f" ({scaled['ece']:.3f} after temperature scaling, T = {scaled['temperature']:.3g})"
        warnings.append(text + ": the model's preference probabilities are far from the observed frequencies.")
    if overall["n"] < SMALL_SAMPLE_PAIRS:
        span = f"{overall['ci_low']:.2f} – {overall['ci_high']:.2f}" if overall["n"] else "undefined"
        warnings.append(
            f"Small sample: {overall['n']} pairs with a labelled order (fewer than {SMALL_SAMPLE_PAIRS}); "
            f"the 95 % interval on accuracy is {span}."
        )
    return warnings
