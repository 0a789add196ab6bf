"""Two reward models on the same pairs: each one's evaluation, the paired test, and their STARC distance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from rewardlab.data.prompts import prompt_key
from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.paired import PairedComparison, compare_paired
from rewardlab.evaluate.pairwise import PairwiseEval, evaluate_pairs
from rewardlab.evaluate.starc import starc_distance
from rewardlab.models.reward_model import RewardModel
from rewardlab.precision import Precision


@dataclass
class ModelComparison:
    """``a`` and ``b`` are the two models' own evaluations; ``paired`` tests their difference.

    ``starc_distance`` compares the two rewards themselves (not their accuracy) over every scored
    reply, replies grouped by prompt; see ``evaluate/starc.py``. It is None when either model is a
    preference model (a GPM ``preference`` head): such a model scores a pair of replies, not each
    reply, so it has no reward function to compare (its per-reply pseudo-rewards are not one:
    STARC's canonicalisation and distance assume a reward per reply). ``starc_undefined`` says why.
    """

    a: PairwiseEval
    b: PairwiseEval
    paired: PairedComparison
    starc_distance: float | None
    starc_undefined: str | None = None

    def to_dict(self) -> dict:
        out = {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "paired": asdict(self.paired),
            "starc_distance": self.starc_distance,
        }
        if self.starc_undefined is not None:
            out["starc_undefined"] = self.starc_undefined
        return out


def starc_undefined_reason(model_a: RewardModel, model_b: RewardModel) -> str | None:
    """Why the STARC distance of two models is not defined (a preference model), or None if it is."""
    pairwise = [name for name, m in (("A", model_a), ("B", model_b)) if m.info.scores_pairs]
    if not pairwise:
        return None
    return (
        f"model {' and '.join(pairwise)}: a preference (GPM) model scores pairs of replies, not each reply, "
        "so it has no reward function to compare"
    )


def compare_models(
    model_a: RewardModel,
    model_b: RewardModel,
    pairs: Sequence[PreferencePair],
    *,
    precision: Precision = "auto",
    progress: bool = False,
    seed: int = 0,
) -> ModelComparison:
    """Score the pairs with both models and compare them pair by pair (see ``evaluate/paired.py``)."""
    a = evaluate_pairs(model_a, pairs, precision=precision, progress=progress)
    b = evaluate_pairs(model_b, pairs, precision=precision, progress=progress)
    if not any(a.ordered):
        raise ValueError("every pair is labelled as a tie: there is no right order to compare the models on")
    prompts = [prompt_key(p.prompt) for p in pairs] * 2
    undefined = starc_undefined_reason(model_a, model_b)
    distance = (
        starc_distance(a.chosen_scores + a.rejected_scores, b.chosen_scores + b.rejected_scores, prompts)
        if undefined is None
        else None
    )
    return ModelComparison(
        a=a,
        b=b,
        paired=compare_paired(a.correct(), b.correct(), seed=seed),
        starc_distance=distance,
        starc_undefined=undefined,
    )
