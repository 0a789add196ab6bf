"""What an evaluation on plain pairs checks beside accuracy: calibration against a fitted temperature,
contrast consistency, invariance and a policy's ranking accuracy, each only when asked for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.data import PreferencePair
from rewardlab.evaluate.consistency import evaluate_contrast, invariance_checks, read_contrast_pairs
from rewardlab.evaluate.data_split import Log, load_pairs
from rewardlab.evaluate.pairwise import PairwiseEval, evaluate_pairs, summarise_scores
from rewardlab.evaluate.policy_ranking import RankingAccuracyOutput, ranking_output
from rewardlab.evaluate.scorers import pair_scores, reward_model_scorer
from rewardlab.models.reward_model import RewardModel


@dataclass
class PairChecks:
    """The checks ``rewardlab eval`` runs on plain pairs beside accuracy (see its options)."""

    fit_temperature: str | None = None
    contrast: Path | None = None
    invariance: bool = False
    policy_ranking: bool = False
    ranking_p: float = 0.9

    def requested(self) -> bool:
        return bool(self.fit_temperature or self.contrast or self.invariance or self.policy_ranking)

    def run(
        self,
        scorer: Any,
        pairs: list[PreferencePair],
        data: str,
        columns: str | None,
        skip: bool,
        split: str,
        precision: str = "auto",
        *,
        progress: bool = False,
        log: Log | None = None,
    ) -> PairwiseEval:
        """Evaluate ``pairs`` with ``scorer`` (a reward model or any scorer) and run the checks asked for.

        ``data``, ``columns``, ``skip`` and ``split`` say where ``pairs`` came from, so that a
        temperature fitted on another split of the same file reads it the same way.
        """
        if self.fit_temperature == split and split != "all":
            raise ValueError(f"--fit-temperature {split} is the split being evaluated; fit on another one")
        contrast_pairs = read_contrast_pairs(self.contrast) if self.contrast else None
        as_scorer = reward_model_scorer(scorer, precision) if isinstance(scorer, RewardModel) else scorer
        validation = None
        if self.fit_temperature:
            fit_on = self.fit_temperature
            is_split = fit_on in ("train", "validation", "test")
            source, fit_split = (data, fit_on) if is_split else (fit_on, "all")
            fit_pairs = load_pairs(source, columns=columns, skip_bad_rows=skip, split=fit_split, log=log)
            validation = pair_scores(as_scorer, fit_pairs)
        if self.policy_ranking:
            result, ranking = evaluate_with_policy_ranking(scorer, pairs, self.ranking_p, validation)
            result.extras["policy_ranking"] = ranking
        else:
            result = evaluate_pairs(scorer, pairs, precision=precision, progress=progress, validation_scores=validation)  # type: ignore[arg-type]
        if contrast_pairs is not None:
            result.extras["contrast"] = evaluate_contrast(as_scorer, contrast_pairs)
        if self.invariance:
            result.extras["invariance"] = invariance_checks(as_scorer, pairs, batch_size=1)
        return result


def evaluate_with_policy_ranking(
    scorer: Any, pairs: list[PreferencePair], p: float, validation: Any = None
) -> tuple[PairwiseEval, RankingAccuracyOutput]:
    """An implicit-reward scorer's evaluation and its policy's ranking accuracy (Chen et al. 2024),
    idealised with its reference, both from one computation of the log-probabilities."""
    chosen = scorer.reply_logps([x.prompt for x in pairs], [x.chosen for x in pairs])
    rejected = scorer.reply_logps([x.prompt_of_rejected for x in pairs], [x.rejected for x in pairs])
    rewards = scorer.rewards(chosen), scorer.rewards(rejected)
    result = summarise_scores(pairs, *rewards, precision=scorer.precision, validation_scores=validation)
    reference = (chosen.reference, rejected.reference) if chosen.reference is not None else None
    return result, ranking_output(chosen.policy, rejected.policy, reference, p=p, beta=scorer.beta)
