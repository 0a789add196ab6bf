"""How well a reward model orders human-labelled pairs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.bias import LengthBiasOutput, StyleBiasOutput, length_bias, style_bias
from rewardlab.evaluate.calibration import CalibrationOutput, calibration_metrics, fit_temperature
from rewardlab.evaluate.markdown_format import formatting_score
from rewardlab.evaluate.metrics import AccuracyEstimate, estimate, pairwise_correct
from rewardlab.evaluate.per_source import per_source_accuracy
from rewardlab.evaluate.scorers import Comparer, Scorer, pair_scores
from rewardlab.models.reward_model import RewardModel
from rewardlab.precision import Precision, resolve_precision

__all__ = ["AccuracyEstimate", "PairwiseEval", "estimate", "evaluate_pairs", "summarise_scores"]


@dataclass
class PairwiseEval:
    """Accuracy with a 95 % bootstrap interval, overall and per subset, plus the reward margins.

    ``calibration`` is that of the raw rewards, σ(r_c − r_r); ``calibrated`` is after temperature
    scaling, present when a temperature was fitted on validation scores or saved with the model
    (``temperature_source`` says which).
    ``length_bias`` measures reply lengths in characters. All three use the pairs with a labelled
    order (not the tie-labelled ones), like accuracy. The per-pair fields (scores, ``ordered``,
    reply lengths in characters) cover every pair in the input order; the HTML report plots them.

    ``compares_pairs``: the model compares two replies (preference embeddings, a pairwise judge) and
    its scores are ±ℓ/2 of each pair's log-odds ℓ. What needs only P(chosen ≻ rejected) = σ(ℓ) is
    reported (accuracy, calibration, accuracy by which reply is longer); what needs a reward per
    reply is not: ``mean_margin`` and the reward-length correlation are None, and absent from
    ``to_dict``.
    """

    overall: AccuracyEstimate
    per_subset: dict[str, AccuracyEstimate]
    mean_margin: float | None
    score_ties: int
    tie_pairs: int
    truncated_pairs: int
    precision: str
    calibration: CalibrationOutput
    length_bias: LengthBiasOutput
    chosen_scores: list[float] = field(repr=False)
    rejected_scores: list[float] = field(repr=False)
    ordered: list[bool] = field(repr=False)
    calibrated: CalibrationOutput | None = None
    tie_rule: str = "a pair whose two replies get exactly equal rewards counts as 1/2 correct"
    chosen_lengths: list[int] = field(default_factory=list, repr=False)
    rejected_lengths: list[int] = field(default_factory=list, repr=False)
    temperature_source: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    """Optional checks run beside accuracy (contrast consistency, invariance, policy ranking), by name."""
    compares_pairs: bool = False
    style_bias: StyleBiasOutput | None = None
    """Accuracy by which reply has more Markdown formatting, and ρ(reward, formatting) (``bias.style_bias``)."""

    def to_dict(self) -> dict:
        out = asdict(self)
        for name in ("chosen_scores", "rejected_scores", "ordered", "chosen_lengths", "rejected_lengths"):
            del out[name]
        if self.compares_pairs:  # undefined without a reward per reply: absent, not null
            del out["mean_margin"], out["length_bias"]["reward_length_spearman"]
            if out["style_bias"] is not None:
                del out["style_bias"]["reward_formatting_spearman"]
        return out

    def correct(self) -> np.ndarray:
        """Per-pair correctness (1, 1/2 or 0) on the pairs with a labelled order, in the input order."""
        ordered = np.asarray(self.ordered, dtype=bool)
        return pairwise_correct(self.chosen_scores, self.rejected_scores)[ordered]


def summarise_scores(
    pairs: Sequence[PreferencePair],
    chosen_scores: list[float],
    rejected_scores: list[float],
    *,
    precision: str,
    truncated_pairs: int = 0,
    validation_scores: tuple[Sequence[float], Sequence[float]] | None = None,
    temperature: float | None = None,
    compares_pairs: bool = False,
) -> PairwiseEval:
    """Everything ``PairwiseEval`` reports, from the rewards of each pair's two replies.

    Pairs labelled as ties have no right order, so they are scored but left out of accuracy,
    calibration and length bias (their count is reported). Calibration after temperature scaling
    uses a T fitted on ``validation_scores`` when given, else ``temperature`` (one saved with the
    model, fitted on its training run's validation split). With ``compares_pairs`` the scores are
    ±ℓ/2 of each pair's log-odds, and only what σ(ℓ) defines is computed (see ``PairwiseEval``).
    """
    ordered = np.array([not p.tie for p in pairs], dtype=bool)
    correct = pairwise_correct(chosen_scores, rejected_scores)
    groups: dict[str, list[float]] = defaultdict(list)
    for pair, value, keep in zip(pairs, correct, ordered, strict=True):
        if keep and pair.subset is not None:
            groups[pair.subset].append(value)
    by_source = per_source_accuracy(pairs, correct, ordered, (chosen_scores, rejected_scores))  # runs/sources.py tags
    chosen, rejected = np.asarray(chosen_scores)[ordered], np.asarray(rejected_scores)[ordered]
    gaps = chosen - rejected
    source = None
    if validation_scores is not None:
        temperature, source = fit_temperature(*validation_scores), "fitted on the validation pairs given"
    elif temperature is not None:
        source = "saved with the model, fitted on its validation split"
    lengths = np.array([[len(p.chosen), len(p.rejected)] for p in pairs], dtype=float).reshape(-1, 2)[ordered]
    formatting = np.array(
        [[formatting_score(p.chosen), formatting_score(p.rejected)] for p in pairs], dtype=float
    ).reshape(-1, 2)[ordered]
    return PairwiseEval(
        overall=estimate(correct[ordered]),
        per_subset={name: estimate(np.asarray(v)) for name, v in sorted(groups.items())},
        mean_margin=None if compares_pairs else float(gaps.mean()) if ordered.any() else float("nan"),
        score_ties=int((gaps == 0).sum()),
        tie_pairs=int((~ordered).sum()),
        truncated_pairs=truncated_pairs,
        precision=precision,
        calibration=calibration_metrics(chosen, rejected),
        length_bias=length_bias(
            chosen, rejected, lengths[:, 0], lengths[:, 1], unit="characters", per_reply_rewards=not compares_pairs
        ),
        chosen_scores=list(chosen_scores),
        rejected_scores=list(rejected_scores),
        ordered=ordered.tolist(),
        calibrated=calibration_metrics(chosen, rejected, temperature=temperature) if source else None,
        chosen_lengths=[len(p.chosen) for p in pairs],
        rejected_lengths=[len(p.rejected) for p in pairs],
        temperature_source=source,
        compares_pairs=compares_pairs,
        style_bias=style_bias(
            chosen, rejected, formatting[:, 0], formatting[:, 1], per_reply_rewards=not compares_pairs
        ),
        extras={"per_source": by_source} if by_source is not None else {},
    )


def evaluate_pairs(
    model: RewardModel | Scorer | Comparer,
    pairs: Sequence[PreferencePair],
    *,
    precision: Precision = "auto",
    progress: bool = False,
    validation_scores: tuple[Sequence[float], Sequence[float]] | None = None,
) -> PairwiseEval:
    """Score both replies of every pair and summarise (see ``summarise_scores``).

    ``model`` is a reward model, or any scorer (``evaluate/scorers.py``: an implicit reward, a
    judge, BLEU...), whose ``precision`` attribute, if any, is reported.
    ``validation_scores``: this model's (chosen, rejected) rewards on separate validation pairs;
    when given, a temperature is fitted on them and calibration is also reported after scaling.
    Otherwise a reward model's saved temperature (``model.info.temperature``) is used, if any.
    """
    if not pairs:
        raise ValueError("no pairs to evaluate")
    if not isinstance(model, RewardModel):
        chosen, rejected = pair_scores(model, pairs)
        return summarise_scores(
            pairs,
            chosen,
            rejected,
            precision=str(getattr(model, "precision", "n/a")),
            validation_scores=validation_scores,
            compares_pairs=isinstance(model, Comparer),  # pair_scores asks compare() whenever there is one
        )
    chosen, rejected, truncated = score_pairs(model, pairs, precision=precision, progress=progress)
    return summarise_scores(
        pairs,
        chosen,
        rejected,
        precision=resolve_precision(precision, model.model.device),
        truncated_pairs=truncated,
        validation_scores=validation_scores,
        temperature=model.info.temperature,
        compares_pairs=model.info.scores_pairs,
    )


def score_pairs(
    model: RewardModel, pairs: Sequence[PreferencePair], *, precision: Precision = "auto", progress: bool = False
) -> tuple[list[float], list[float], int]:
    """Scores of each pair's chosen and rejected reply, and how many pairs were truncated.

    A model that compares pairs (preference embeddings) has no reward per reply; it gets the
    antisymmetric scores ±ℓ/2 of the pair's log-odds ℓ, so that the pairwise metrics (accuracy,
    calibration of σ(r_c − r_r) = σ(ℓ)) read the model's own preference probability; those that need
    a reward per reply are not computed from them (``summarise_scores(compares_pairs=True)``).
    """
    chosen = model.encode([p.prompt for p in pairs], [p.chosen for p in pairs])
    rejected = model.encode([p.prompt_of_rejected for p in pairs], [p.rejected for p in pairs])  # its own prompt
    truncated = sum(c or r for c, r in zip(chosen.truncated, rejected.truncated, strict=True))
    if model.info.scores_pairs:
        logits = model.preference_logits(chosen.ids, rejected.ids, precision=precision, progress=progress)
        return [x / 2 for x in logits], [-x / 2 for x in logits], truncated
    scores = model.score_ids(chosen.ids + rejected.ids, precision=precision, progress=progress)
    return scores[: len(pairs)], scores[len(pairs) :], truncated
