"""A round's preference pairs from its judged replies.

- ``best_worst``: per prompt, the highest-scored reply over the lowest (iterative DPO, Xiong et al.
  2024; Self-Rewarding, Yuan et al. 2024; DNO-Prct, Rosset et al. 2024, Alg. 2, which keeps the pair
  only when the win-rate gap is large enough: ``min_gap``).
- ``temporal``: the best reply of this round over the worst of round 1's replies to the same prompt
  (Temporal Self-Rewarding Language Models: "anchored rejection", the rejected reply fixed in the
  past model's outputs while the chosen one comes from the current model; from the abstract).

Each pair's ``strength`` is the judge's probability that the chosen reply wins, the regression
target of DNO's objective: σ(ℓ(y_w, y_l)) where a pairwise judge compared the two (``strength_from="oracle"``),
otherwise σ(s_w − s_l) from the two scores (Bradley–Terry on a reward or an implicit reward); its ``chosen_rating``
and ``rejected_rating`` are the two scores (the judge's rewards, which SELM, VPO and BRAIn read). A prompt whose two
replies are the same text, or whose score gap is at most ``min_gap`` (ties always), gives no pair.
``consistencies`` (one per prompt, CREAM's agreement of two iterations' rankings) go to each pair's
``consistency``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rewardlab.data.records import PreferencePair, Prompt
from rewardlab.online.judges import Judgement


def best_worst_pairs(
    prompts: Sequence[Prompt],
    replies: Sequence[Sequence[str]],
    judgements: Sequence[Judgement],
    min_gap: float,
    round_index: int,
    consistencies: Sequence[float] | None = None,
    strength_from: str = "oracle",
) -> list[PreferencePair]:
    """``strength_from="scores"``: σ(s_w − s_l) even where the judge compared the two (DNO's win-rate target)."""
    pairs = []
    for g, (prompt, group, judged) in enumerate(zip(prompts, replies, judgements, strict=True)):
        best, worst = _argmax(judged.scores), _argmin(judged.scores)
        pair = _pair(prompt, group[best], group[worst], judged.scores[best] - judged.scores[worst], min_gap)
        if pair is not None:
            logodds = judged.logodds(best, worst)
            strength = _sigmoid(logodds) if logodds is not None and strength_from == "oracle" else pair.strength
            scores = (judged.scores[best], judged.scores[worst])
            consistency = consistencies[g] if consistencies is not None else None
            pairs.append(_named(pair, strength, round_index, g, best, worst, scores, consistency))
    return pairs


def temporal_pairs(
    prompts: Sequence[Prompt],
    replies: Sequence[Sequence[str]],
    judgements: Sequence[Judgement],
    anchor_replies: Sequence[Sequence[str]],
    anchor_judgements: Sequence[Judgement],
    min_gap: float,
    round_index: int,
    consistencies: Sequence[float] | None = None,
) -> list[PreferencePair]:
    """Chosen: this round's best; rejected: round 1's worst. Scores of two rounds are compared as they
    are, which is meaningful for a fixed reward model; a pairwise judge's win rates are within a round."""
    pairs = []
    for g, prompt in enumerate(prompts):
        best = _argmax(judgements[g].scores)
        worst = _argmin(anchor_judgements[g].scores)
        gap = judgements[g].scores[best] - anchor_judgements[g].scores[worst]
        pair = _pair(prompt, replies[g][best], anchor_replies[g][worst], gap, min_gap)
        if pair is not None:
            scores = (judgements[g].scores[best], anchor_judgements[g].scores[worst])
            consistency = consistencies[g] if consistencies is not None else None
            pairs.append(_named(pair, pair.strength, round_index, g, best, worst, scores, consistency))
    return pairs


def _pair(prompt: Prompt, chosen: str, rejected: str, gap: float, min_gap: float) -> PreferencePair | None:
    if chosen == rejected or not chosen.strip() or not rejected.strip() or not gap > min_gap:
        return None
    return PreferencePair(prompt, chosen, rejected, strength=_sigmoid(gap))


def _named(
    pair: PreferencePair,
    strength: float | None,
    round_index: int,
    g: int,
    i: int,
    j: int,
    scores: tuple[float, float],
    consistency: float | None,
) -> PreferencePair:
    return PreferencePair(
        pair.prompt,
        pair.chosen,
        pair.rejected,
        strength=strength,
        chosen_rating=scores[0],
        rejected_rating=scores[1],
        consistency=consistency,
        id=f"round-{round_index}/prompt-{g}/{i}-over-{j}",
        source=f"round-{round_index}/generations.jsonl:{g + 1}",
    )


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def _argmin(values: Sequence[float]) -> int:
    return min(range(len(values)), key=lambda i: (values[i], i))
