"""Who ranks a round's replies: a reward model, a preference model, or the policy itself.

Every judge turns each prompt's K replies into K scores (higher is better) and, for the pairwise
judges, the comparisons it made:

- ``rm``: a saved rewardlab reward model, r(x, y) per reply (Bradley–Terry: P(y ≻ y') = σ(r − r')); with
  further ``members``, an ensemble of reward models (:class:`rewardlab.models.ensemble.RewardEnsemble`: each
  member standardised, then mean, wco or uwo = mean − λ·variance, Coste et al. 2024), whose variance across
  members is each reply's ``uncertainty`` (PF-PPO's reliability filter reads it, ``online/pairs.py``);
- ``gpm``: a saved general preference model (preference-embedding head, ``objectives/general_preference.py``),
  asked for the log-odds ℓ(y_i, y_j) of every two replies; a reply's score is its mean win probability
  against the others, (1/(K−1))·Σ_{j≠i} σ(ℓ(y_i, y_j)) — the win rate against the policy's own samples
  that Direct Nash Optimization ranks by (Rosset et al. 2024, Alg. 2, from the abstract and the
  algorithm; the preference may be intransitive, so no single reward is assumed);
- ``self``: the policy's implicit DPO reward β·(log π(y|x) − log π_ref(y|x)) (Rafailov et al. 2023,
  eq. 5; as DICE and CREAM use it to reward the policy's own samples);
- ``judge``: the policy as a generative judge (Self-Rewarding Language Models, Yuan et al. 2024),
  :class:`rewardlab.evaluate.judge.JudgeScorer` on every two replies, both orders, scores as for ``gpm``.

A pairwise judge compares the K(K−1)/2 unordered pairs (i < j) of each prompt; the judgement lists
exactly those, so a reader can check what the judge was asked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Protocol

from rewardlab.data.records import Prompt
from rewardlab.evaluate.judge import JudgeScorer
from rewardlab.evaluate.likelihood_scorers import ImplicitRewardScorer
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.ensemble import RewardEnsemble
from rewardlab.models.reward_model import RewardModel


@dataclass(frozen=True)
class Judgement:
    """One prompt's judged replies."""

    scores: list[float]
    """One per reply, higher is better."""
    comparisons: list[tuple[int, int, float]] = field(default_factory=list)
    """(i, j, log-odds that reply i beats reply j) for each pair a pairwise judge compared; empty otherwise."""
    uncertainties: list[float] | None = None
    """One per reply: the variance of an ensemble's standardised member scores (None: one judge)."""

    def logodds(self, i: int, j: int) -> float | None:
        """The judge's log-odds that reply i beats reply j, if it compared them."""
        for a, b, value in self.comparisons:
            if (a, b) == (i, j):
                return value
            if (a, b) == (j, i):
                return -value
        return None

    def as_dict(self) -> dict[str, object]:
        """The row ``judgements.jsonl`` holds (``uncertainties`` only where an ensemble judged)."""
        row = asdict(self)
        if self.uncertainties is None:
            del row["uncertainties"]
        return row


class Judge(Protocol):
    pairwise: bool

    def judge(self, prompts: Sequence[Prompt], replies: Sequence[Sequence[str]]) -> list[Judgement]: ...


@dataclass
class PointwiseJudge:
    """A judge that scores each reply on its own: a reward model, or the implicit reward (``ImplicitRewardScorer``)."""

    score: Callable[[list[Prompt], list[str]], list[float]]
    pairwise: bool = False

    def judge(self, prompts: Sequence[Prompt], replies: Sequence[Sequence[str]]) -> list[Judgement]:
        flat_prompts = [p for p, group in zip(prompts, replies, strict=True) for _ in group]
        scores = self.score(flat_prompts, [r for group in replies for r in group])
        return [Judgement(chunk) for chunk in _regroup(scores, replies)]


@dataclass
class EnsembleJudge:
    """Reward models scored as one (``judge.members``): the aggregated reward and the members' variance."""

    ensemble: RewardEnsemble
    pairwise: bool = False

    def judge(self, prompts: Sequence[Prompt], replies: Sequence[Sequence[str]]) -> list[Judgement]:
        flat_prompts = [p for p, group in zip(prompts, replies, strict=True) for _ in group]
        flat = [r for group in replies for r in group]
        scores, variances = self.ensemble.score_with_uncertainty(flat_prompts, flat, precision="fp32")
        return [
            Judgement(s, uncertainties=v)
            for s, v in zip(_regroup(scores, replies), _regroup(variances, replies), strict=True)
        ]


class PairwiseJudge:
    """A judge that compares two replies: a GPM (``RewardModel.preference_logits``) or a ``JudgeScorer``."""

    pairwise = True

    def __init__(self, comparer: RewardModel | JudgeScorer) -> None:
        self.comparer = comparer

    def judge(self, prompts: Sequence[Prompt], replies: Sequence[Sequence[str]]) -> list[Judgement]:
        asked = [(g, i, j) for g, group in enumerate(replies) for i, j in combinations(range(len(group)), 2)]
        first = [replies[g][i] for g, i, _ in asked]
        second = [replies[g][j] for g, _, j in asked]
        asked_prompts = [prompts[g] for g, _, _ in asked]
        logodds = self._compare(asked_prompts, first, second) if asked else []
        comparisons: list[list[tuple[int, int, float]]] = [[] for _ in replies]
        for (g, i, j), value in zip(asked, logodds, strict=True):
            comparisons[g].append((i, j, float(value)))
        return [Judgement(win_rate_scores(len(group), c), c) for group, c in zip(replies, comparisons, strict=True)]

    def _compare(self, prompts: list[Prompt], a: list[str], b: list[str]) -> list[float]:
        if isinstance(self.comparer, JudgeScorer):
            return self.comparer.compare(prompts, a, b)
        model = self.comparer
        return model.preference_logits(model.encode(prompts, a).ids, model.encode(prompts, b).ids, precision="fp32")


def win_rate_scores(k: int, comparisons: Sequence[tuple[int, int, float]]) -> list[float]:
    """Each reply's mean win probability σ(ℓ) against the other k − 1 replies."""
    wins = [0.0] * k
    for i, j, value in comparisons:
        p = 1 / (1 + math.exp(-value))
        wins[i] += p
        wins[j] += 1 - p
    return [w / (k - 1) for w in wins]


def load_judge(
    kind: str,
    model_path: str | None,
    policy: CausalLM,
    reference: CausalLM | None,
    beta: float,
    principle: str | None,
    members: Sequence[str] = (),
    aggregation: str = "mean",
    uncertainty_weight: float = 1.0,
) -> Judge:
    """The judge ``kind`` names (``judge.kind``); a saved model of the wrong kind is refused, naming the key.
    ``members`` (rm only): further reward models scored with ``model_path`` as one ensemble."""
    if kind == "rm" and members:
        paths = [str(model_path), *members]
        return EnsembleJudge(
            RewardEnsemble.from_pretrained(paths, aggregation=aggregation, uncertainty_weight=uncertainty_weight)
        )
    if kind in ("rm", "gpm"):
        model = RewardModel.from_pretrained(str(model_path))
        if kind == "rm" and model.info.scores_pairs:
            raise ValueError(f"judge.model {model_path} compares pairs (a preference model): set judge.kind=gpm")
        if kind == "gpm" and not model.info.scores_pairs:
            raise ValueError(
                f"judge.model {model_path} scores single replies (head {model.info.head!r}), not pairs: "
                "set judge.kind=rm, or train a GPM (objective general_preference)"
            )
        if kind == "gpm":
            return PairwiseJudge(model)
        return PointwiseJudge(lambda prompts, replies: model.score(prompts, replies, precision="fp32"))
    if kind == "self":
        if reference is None:
            raise ValueError("judge.kind=self needs a reference policy for the implicit reward")
        return PointwiseJudge(ImplicitRewardScorer(policy, reference, beta, "dpo").score)
    if kind == "judge":
        return PairwiseJudge(JudgeScorer(policy, principle=principle))
    raise ValueError(f"judge.kind must be rm, gpm, self or judge (got {kind!r})")


def _regroup(values: Sequence[float], groups: Sequence[Sequence[str]]) -> list[list[float]]:
    out, start = [], 0
    for group in groups:
        out.append([float(v) for v in values[start : start + len(group)]])
        start += len(group)
    return out
