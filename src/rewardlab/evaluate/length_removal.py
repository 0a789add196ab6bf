"""A reward with its length trend removed, and the evaluation of it: the post-hoc length debiasing.

The trend is the least-squares slope b of reward on reply length (characters) over the replies of
a split the model did not train on (``fit_split``, the validation split by default); the debiased
reward of a reply is r − b·ℓ (``rewards.transforms.remove_length``). The evaluation reports the
pairs' accuracy and length bias before and after, from one scoring pass over each split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from rewardlab.data.records import PreferencePair, Prompt
from rewardlab.destinations import check_folder_destination
from rewardlab.evaluate.data_split import Log, load_pairs
from rewardlab.evaluate.eval_markdown import render_markdown
from rewardlab.evaluate.pairwise import PairwiseEval, score_pairs, summarise_scores
from rewardlab.evaluate.report import write_report
from rewardlab.evaluate.scorers import Scorer
from rewardlab.models.reward_model import RewardModel, inference_copy
from rewardlab.rewards.transforms import LengthFit, fit_length_regression, remove_length


@dataclass
class LengthRemovedScorer:
    """``scorer``'s reward minus ``slope`` per character of the reply."""

    scorer: Scorer
    slope: float

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        rewards = torch.tensor(self.scorer.score(prompts, replies), dtype=torch.float64)
        lengths = torch.tensor([float(len(r)) for r in replies], dtype=torch.float64)
        return remove_length(rewards, lengths, self.slope).tolist()


def fit_on_pairs(chosen: Sequence[float], rejected: Sequence[float], pairs: Sequence[PreferencePair]) -> LengthFit:
    """The length fit over both replies of every pair, given their rewards."""
    rewards = torch.tensor([*chosen, *rejected], dtype=torch.float64)
    lengths = torch.tensor([float(len(p.chosen)) for p in pairs] + [float(len(p.rejected)) for p in pairs])
    return fit_length_regression(rewards, lengths)


@dataclass
class LengthRemovedOutput:
    """The fit, and the evaluation of the reward before and after the length trend is removed."""

    name: str
    data: str
    fit: LengthFit
    fit_split: str
    before: PairwiseEval
    after: PairwiseEval
    report_files: tuple[Path, ...] = ()

    def markdown(self) -> str:
        rows = [
            f"Length trend fitted on the {self.fit_split} split: r ≈ a + b·characters with a = "
            f"{self.fit.intercept:.4g}, b = {self.fit.slope:.4g}; reported below: r − b·characters.",
            "",
            "| reward | accuracy | chosen longer | chosen shorter | longer − shorter | ρ(reward, length) |",
            "|---|---|---|---|---|---|",
        ]
        for label, result in (("as trained", self.before), ("length removed", self.after)):
            bias = result.length_bias
            longer, shorter = bias.chosen_longer.accuracy, bias.chosen_shorter.accuracy
            rho = bias.reward_length_spearman
            rows.append(
                f"| {label} | {result.overall.accuracy:.3f} | {longer:.3f} | {shorter:.3f} | "
                f"{longer - shorter:+.3f} | {'n/a' if rho is None else f'{rho:.3f}'} |"
            )
        return "\n".join(rows) + "\n\n" + render_markdown(self.after, self.name, self.data)


def evaluate_length_removed(
    model: str,
    data: str = "default",
    *,
    fit_split: str = "validation",
    split: str = "test",
    report: str | Path | None = None,
    columns: str | None = None,
    skip_bad_rows: bool = False,
    precision: str = "auto",
    progress: bool = False,
    log: Log | None = None,
) -> LengthRemovedOutput:
    """Fit reward on length over ``fit_split``'s replies, then evaluate r − b·ℓ on ``split`` (both of
    ``data`` split as a training run splits it). ``rewardlab length-removed`` is this function."""
    if fit_split == split and split != "all":
        raise ValueError(f"--fit-split and --split are both {split!r}: fit the trend on pairs you do not report")
    if report:
        check_folder_destination(report)
    fit_pairs = load_pairs(data, columns=columns, skip_bad_rows=skip_bad_rows, split=fit_split, log=log)
    pairs = load_pairs(data, columns=columns, skip_bad_rows=skip_bad_rows, split=split, log=log)
    if not fit_pairs or not pairs:
        raise ValueError(f"{data}: no pairs in the {fit_split if not fit_pairs else split!r} split")
    loaded, resolved = inference_copy(RewardModel.from_pretrained(model), precision)  # type: ignore[arg-type]
    if loaded.info.scores_pairs:
        raise ValueError(f"{model}: this model compares pairs and has no reward per reply to debias")
    fit_chosen, fit_rejected, _ = score_pairs(loaded, fit_pairs, precision=resolved, progress=progress)
    fit = fit_on_pairs(fit_chosen, fit_rejected, fit_pairs)
    chosen, rejected, truncated = score_pairs(loaded, pairs, precision=resolved, progress=progress)
    before = summarise_scores(pairs, chosen, rejected, precision=resolved, truncated_pairs=truncated)
    debias = [
        remove_length(torch.tensor(scores, dtype=torch.float64), torch.tensor(lengths, dtype=torch.float64), fit.slope)
        for scores, lengths in (
            (chosen, [float(len(p.chosen)) for p in pairs]),
            (rejected, [float(len(p.rejected)) for p in pairs]),
        )
    ]
    after = summarise_scores(
        pairs, debias[0].tolist(), debias[1].tolist(), precision=resolved, truncated_pairs=truncated
    )
    after.extras["length_removal"] = {"intercept": fit.intercept, "slope": fit.slope, "fit_split": fit_split}
    name = f"{model} − {fit.slope:.4g}·characters"
    output = LengthRemovedOutput(name, data, fit, fit_split, before, after)
    if report:
        output.report_files = write_report(after, report, name, data, pairs)
    return output
