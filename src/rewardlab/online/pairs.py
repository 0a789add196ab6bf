"""A round's preference pairs from its judged replies.

- ``best_worst``: per prompt, the highest-scored reply over the lowest (iterative DPO, Xiong et al.
  2024; Self-Rewarding, Yuan et al. 2024; DNO-Prct, Rosset et al. 2024, Alg. 2, which keeps the pair
  only when the win-rate gap is large enough: ``min_gap``).
- ``best_random``: the highest-scored reply over one drawn uniformly from the prompt's others (seeded by the
  run's seed, the round and the prompt).
- ``temporal``: the best reply of this round over the worst of round 1's replies to the same prompt
  (Temporal Self-Rewarding Language Models: "anchored rejection", the rejected reply fixed in the
  past model's outputs while the chosen one comes from the current model; from the abstract).

Each pair's ``strength`` is the judge's probability that the chosen reply wins, the regression
target of DNO's objective: σ(ℓ(y_w, y_l)) where a pairwise judge compared the two (``strength_from="oracle"``),
otherwise σ(s_w − s_l) from the two scores (Bradley–Terry on a reward or an implicit reward); its ``chosen_rating``
and ``rejected_rating`` are the two scores (the judge's rewards, which SELM, VPO and BRAIn read). A prompt whose two
replies are the same text, or whose score gap is at most ``min_gap`` (ties always), gives no pair.
``consistencies`` (one per prompt, CREAM's agreement of two iterations' rankings) go to each pair's
``consistency``; where the policy itself judged the two replies (``judge.kind=judge``), σ of its log-odds is
the pair's ``judge_probability`` (SCIR's consistency penalty reads it).

Policy filtration (PF-PPO; Shen et al. 2024, "Policy Filtration in RLHF to Fine-Tune LLM for Code
Generation": the abstract, and the variants' names from memory of the paper). A reward model is more
reliable on some replies than on others, and the paper finds it most reliable at the ends of a
prompt's reward range, so it trains only on filtered samples: best-of-N (BoN: the best reply alone),
best-random (BR: the best and one random other) and best-worst (BW: the best and the worst); the
paper reports BR and BW as the variants that work with PPO, and ranks filters by the R² between
reward and true score on the kept replies. In this loop the update learns from pairs, so BW is
``best_worst`` and BR is ``best_random`` (BoN gives no pair). Where the reward is an ensemble
(``judge.members``), the reliability of each reply's reward is also measured directly, as the
members' disagreement (their variance, ``RewardEnsemble.score_with_uncertainty``): ``max_uncertainty``
drops the replies above it before the pair is picked, and ``judge.aggregation=uwo`` ranks by
mean − λ·variance, the over-optimisation code's uncertainty-weighted reward (Coste et al. 2024). The
paper's own reliability measure, R² against true scores, needs labelled replies the loop does not have.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Sequence

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
    max_uncertainty: float | None = None,
    judge_probability: bool = False,
) -> list[PreferencePair]:
    """``strength_from="scores"``: σ(s_w − s_l) even where the judge compared the two (DNO's win-rate target);
    ``max_uncertainty``: only replies whose ensemble variance is at most this are candidates;
    ``judge_probability``: the judge's σ(ℓ(chosen, rejected)) is the pair's ``judge_probability``."""

    def worst(judged: Judgement, kept: list[int], g: int) -> int:
        return _argmin(judged.scores, kept)

    return _best_over(
        prompts, replies, judgements, worst, min_gap, round_index, consistencies, strength_from, max_uncertainty,
        judge_probability,
    )  # fmt: skip


def best_random_pairs(
    prompts: Sequence[Prompt],
    replies: Sequence[Sequence[str]],
    judgements: Sequence[Judgement],
    min_gap: float,
    round_index: int,
    seed: int,
    consistencies: Sequence[float] | None = None,
    strength_from: str = "oracle",
    max_uncertainty: float | None = None,
    judge_probability: bool = False,
) -> list[PreferencePair]:
    """PF-PPO's best-random: the best candidate over one of the others drawn uniformly, by a generator seeded
    with (``seed``, round, prompt), so a resumed round draws the same; options as :func:`best_worst_pairs`."""

    def drawn(judged: Judgement, kept: list[int], g: int) -> int:
        best = _argmax(judged.scores, kept)
        return random.Random(f"{seed}/{round_index}/{g}").choice([i for i in kept if i != best])

    return _best_over(
        prompts, replies, judgements, drawn, min_gap, round_index, consistencies, strength_from, max_uncertainty,
        judge_probability,
    )  # fmt: skip


def reliable_replies(judged: Judgement, max_uncertainty: float | None) -> list[int]:
    """The replies whose reward is trusted: all, or those whose members' variance is at most ``max_uncertainty``."""
    if max_uncertainty is None:
        return list(range(len(judged.scores)))
    if judged.uncertainties is None:
        raise ValueError("pairs.max_uncertainty needs an ensemble judge (judge.members) to measure the uncertainty")
    return [i for i, u in enumerate(judged.uncertainties) if u <= max_uncertainty]


def _best_over(
    prompts: Sequence[Prompt],
    replies: Sequence[Sequence[str]],
    judgements: Sequence[Judgement],
    rejected_of: Callable[[Judgement, list[int], int], int],
    min_gap: float,
    round_index: int,
    consistencies: Sequence[float] | None,
    strength_from: str,
    max_uncertainty: float | None,
    judge_probability: bool,
) -> list[PreferencePair]:
    """Per prompt, its best reliable reply over the one ``rejected_of`` picks among the reliable others; a blank
    reply (a greedy reference reply may be one) is no candidate, so it does not cost the prompt its pair."""
    pairs = []
    for g, (prompt, group, judged) in enumerate(zip(prompts, replies, judgements, strict=True)):
        kept = [i for i in reliable_replies(judged, max_uncertainty) if group[i].strip()]
        if len(kept) < 2:
            continue
        best, worst = _argmax(judged.scores, kept), rejected_of(judged, kept, g)
        pair = _pair(prompt, group[best], group[worst], judged.scores[best] - judged.scores[worst], min_gap)
        if pair is not None:
            logodds = judged.logodds(best, worst)
            strength = sigmoid(logodds) if logodds is not None and strength_from == "oracle" else pair.strength
            scores = (judged.scores[best], judged.scores[worst])
            consistency = consistencies[g] if consistencies is not None else None
            named = _named(pair, strength, round_index, g, best, worst, scores, consistency)
            if judge_probability and logodds is not None:
                named = dataclasses.replace(named, judge_probability=sigmoid(logodds))
            pairs.append(named)
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
    return PreferencePair(prompt, chosen, rejected, strength=sigmoid(gap))


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


def sigmoid(x: float) -> float:
    """σ(x), without overflow for large |x|."""
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _argmax(values: Sequence[float], among: Sequence[int] | None = None) -> int:
    """The index of the highest value (``among`` those indices, else all); the first on a tie."""
    return max(range(len(values)) if among is None else among, key=lambda i: (values[i], -i))


def _argmin(values: Sequence[float], among: Sequence[int] | None = None) -> int:
    """The index of the lowest value (``among`` those indices, else all); the first on a tie."""
    return min(range(len(values)) if among is None else among, key=lambda i: (values[i], i))
