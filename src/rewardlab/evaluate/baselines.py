"""Trivial baselines scored like a model: would a rule that never reads the replies do as well?

Human preference data often favours one length: in HH-RLHF's harmless split the shorter reply (a
refusal) tends to win, elsewhere the longer one (Singhal et al. 2023, "A Long Way to Go:
Investigating Length Correlations in RLHF"). A reward model whose accuracy lies within reach of
"always pick the shorter reply" may have learnt little else. Each baseline is a reward, scored
exactly as a model's rewards are (``metrics.pairwise_correct``, Wilson interval):

- ``always_shorter``: r(y) = −len(y), so the shorter reply wins;
- ``always_longer``: r(y) = len(y), so the longer reply wins.

Replies of equal length tie in score and count 1/2, as a model's exact ties do.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from rewardlab.evaluate.metrics import AccuracyEstimate, estimate, pairwise_correct

BASELINE_NAMES = {
    "always_shorter": "always the shorter reply",
    "always_longer": "always the longer reply",
}
"""Each baseline's key in ``eval.json`` and its name in the reports."""


def length_baselines(chosen_lengths: ArrayLike, rejected_lengths: ArrayLike) -> dict[str, AccuracyEstimate]:
    """Accuracy (95 % Wilson interval) of always-the-shorter and always-the-longer reply on these pairs.

    Example: lengths (chosen, rejected) = (3, 9), (5, 2), (4, 4): the shorter reply is right on the
    first, wrong on the second and ties on the third: (1 + 0 + ½)/3 = ½; the longer scores the same here.
    """
    chosen = np.asarray(chosen_lengths, dtype=float)
    rejected = np.asarray(rejected_lengths, dtype=float)
    if chosen.shape != rejected.shape or chosen.ndim != 1:
        raise ValueError(f"need one length per reply of each pair (got shapes {chosen.shape} and {rejected.shape})")
    return {
        "always_shorter": estimate(pairwise_correct(-chosen, -rejected)),
        "always_longer": estimate(pairwise_correct(chosen, rejected)),
    }
