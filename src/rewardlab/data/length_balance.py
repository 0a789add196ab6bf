"""Length-balanced training pairs: chosen-longer and chosen-shorter pairs carry equal total weight.

Human preference data often favours the longer reply, so a reward model can fit the labels in part
by rewarding length (Singhal et al. 2023, "A Long Way to Go: Investigating Length Correlations in
RLHF"). When the pairs where the chosen reply is the longer one and those where it is the shorter
one weigh the same in the loss, "longer wins" explains no more of the labels than "shorter wins".

The pairs are reweighted, not subsampled: every pair is kept (the shipped data sets are small, and
subsampling would throw away most of the larger group), and the weighted loss has the gradient
that sampling the two groups equally would have in expectation, without its extra variance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from rewardlab.data.records import PreferencePair


def length_sign(pair: PreferencePair) -> int:
    """+1 when the chosen reply is the longer (in characters), -1 when it is the shorter, 0 for equal
    lengths or a tie (a tie has no chosen side)."""
    if pair.tie:
        return 0
    return (len(pair.chosen) > len(pair.rejected)) - (len(pair.chosen) < len(pair.rejected))


def length_balanced_weights(pairs: Sequence[PreferencePair]) -> list[float]:
    """Each pair's weight rescaled so the chosen-longer and the chosen-shorter groups weigh the same.

    With W₊ and W₋ the total weights of the chosen-longer and chosen-shorter pairs, a pair of the
    first group is multiplied by (W₊ + W₋)/(2·W₊) and one of the second by (W₊ + W₋)/(2·W₋); each
    group then weighs (W₊ + W₋)/2, and the total weight is unchanged (so is the learning rate's
    effective scale). Pairs of equal length and ties keep their weight. Raises ``ValueError`` when
    one group is empty (nothing to balance against).
    """
    signs = [length_sign(p) for p in pairs]
    longer = sum(p.weight for p, s in zip(pairs, signs, strict=True) if s > 0)
    shorter = sum(p.weight for p, s in zip(pairs, signs, strict=True) if s < 0)
    if longer <= 0 or shorter <= 0:
        raise ValueError(
            "data.balance_length: the training pairs need both chosen-longer and chosen-shorter pairs "
            f"(total weights {longer:g} and {shorter:g}); set data.balance_length=false"
        )
    half = (longer + shorter) / 2
    scale = {1: half / longer, -1: half / shorter, 0: 1.0}
    return [p.weight * scale[s] for p, s in zip(pairs, signs, strict=True)]


def balance_length(pairs: Sequence[PreferencePair]) -> list[PreferencePair]:
    """``pairs`` with the weights of ``length_balanced_weights``."""
    return [replace(p, weight=w) for p, w in zip(pairs, length_balanced_weights(pairs), strict=True)]
