"""Commands that measure reward models: ``eval``, ``compare``, ``length-removed``, ``ensemble-errors``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rewardlab.cli.base import app, note, show, user_errors
from rewardlab.cli.options import ColumnsOption, DataArgument, PrecisionOption, SkipOption, SplitOption
from rewardlab.evaluate.scorers import scorer_names

SCORER_NAMES = ", ".join(scorer_names())
"""The registered scorers (``evaluate.scorers.SCORERS``), plugins included."""


@app.command("eval")
@user_errors
def evaluate(
    model: Annotated[
        str,
        typer.Argument(
            help="Saved reward model folder; with --scorer, the scorer's main model (policy, judge, "
            "strong LM, URL...) or leave it out and give only DATA",
            show_default=False,
        ),
    ],
    data: Annotated[
        str | None,
        typer.Argument(
            help="Data file or folder; 'default' for the embedded data, 'principles' for the principle set",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Folder for the report (eval, rewardbench, ... .json/.md)")
    ] = None,
    split: SplitOption = "all",
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
    precision: PrecisionOption = "auto",
    data_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="pairs, rewardbench (sections), rewardbench2 (best-of-N, Ties), rewardmath (one correct against "
            "many incorrect), kwise, or principles "
            "(principle flip-sets; DATA defaults to the embedded set)",
        ),
    ] = "pairs",
    sections: Annotated[
        Path | None, typer.Option(help="RewardBench section map (JSON); default: RewardBench v1's")
    ] = None,
    tie_credit: Annotated[
        float, typer.Option(help="RewardBench: credit of an exact tie in score (0, as RewardBench; 0.5: a coin flip)")
    ] = 0.0,
    scorer: Annotated[
        str | None, typer.Option(help="What scores replies: " + SCORER_NAMES + " (default: MODEL as a reward model)")
    ] = None,
    policy: Annotated[str | None, typer.Option(help="implicit*: the DPO-trained policy (causal LM folder)")] = None,
    reference: Annotated[str | None, typer.Option(help="implicit: the reference model of the DPO run")] = None,
    beta: Annotated[float, typer.Option(help="implicit*: β of β·(log π − log π_ref)")] = 0.1,
    judge: Annotated[str | None, typer.Option(help="judge: causal LM folder, or smollm2 (default)")] = None,
    principle: Annotated[str | None, typer.Option(help="judge: principle or rubric text, or @FILE")] = None,
    reasoning: Annotated[
        bool, typer.Option("--reasoning", help="judge: write a short rationale before the verdict")
    ] = False,
    reasoning_tokens: Annotated[int, typer.Option(help="judge: rationale length at most")] = 64,
    temperature: Annotated[float, typer.Option(help="judge: rationale sampling temperature (0: greedy)")] = 0.0,
    seed: Annotated[int, typer.Option(help="judge: seed of sampled rationales")] = 0,
    tools: Annotated[
        str | None, typer.Option(help="tool-judge: tools run on each reply: calculator, python, lookup=FOLDER")
    ] = None,
    reasoning_style: Annotated[
        str | None, typer.Option(help="reasoning-judge: rubric (default), solve or explain, written before the verdict")
    ] = None,
    strong: Annotated[str | None, typer.Option(help="cdr: the better-aligned LM")] = None,
    weak: Annotated[str | None, typer.Option(help="cdr: the less-aligned LM")] = None,
    instruction: Annotated[str | None, typer.Option(help="cdr: system instruction, or @FILE")] = None,
    lm: Annotated[str | None, typer.Option(help="flr: the LM that reads follow-ups")] = None,
    follow_ups: Annotated[Path | None, typer.Option(help='flr: JSON {"positive": [...], "negative": [...]}')] = None,
    url: Annotated[str | None, typer.Option(help="remote: OpenRLHF reward endpoint, e.g. http://HOST:8000")] = None,
    aggregate: Annotated[
        str | None, typer.Option(help="prm: how step probabilities make a reply's score: min (default), product, last")
    ] = None,
    fit_temperature: Annotated[
        str | None,
        typer.Option(help="Fit a calibration temperature on these pairs: a split name (validation) or a data file"),
    ] = None,
    contrast: Annotated[
        Path | None, typer.Option(help="Contrast pairs (JSONL: prompt_a, chosen_a, prompt_b, chosen_b): consistency")
    ] = None,
    invariance: Annotated[
        bool,
        typer.Option(
            "--invariance", help="Check that whitespace, candidate order and batch size do not change preferences"
        ),
    ] = False,
    policy_ranking: Annotated[
        bool,
        typer.Option(
            "--policy-ranking", help="implicit*: ranking accuracy of the policy (and idealised, with a reference)"
        ),
    ] = False,
    ranking_p: Annotated[
        float, typer.Option(help="--policy-ranking: share of raters preferring the chosen reply, for the ideal")
    ] = 0.9,
    fusion: Annotated[
        str | None,
        typer.Option(help="RewardFusion: fuse each reward with those of this data's replies ('default': embedded)"),
    ] = None,
    fusion_alpha: Annotated[float, typer.Option(help="--fusion: weight α of the neighbours' reward (0: plain)")] = 0.5,
    fusion_top_k: Annotated[
        int | None, typer.Option(help="--fusion: fuse with the K most similar memory replies (default: all)")
    ] = None,
    fusion_temperature: Annotated[float, typer.Option(help="--fusion: τ of the softmax over cosine similarity")] = 0.1,
    fusion_split: Annotated[str, typer.Option(help="--fusion: the memory data's split (all, train, ...)")] = "train",
    fusion_encoder: Annotated[
        str, typer.Option(help="--fusion: sentence encoder of the similarities: minilm or a local folder")
    ] = "minilm",
    by: Annotated[
        str | None,
        typer.Option(
            help="Accuracy per annotator or per group of annotators (worst first); a pluralistic model scores "
            "each annotator's pairs for that annotator"
        ),
    ] = None,
    groups: Annotated[
        Path | None,
        typer.Option(help='--by group: JSON {"group": ["annotator", ...]} (default: the pairs\' annotator_group)'),
    ] = None,
) -> None:
    """Accuracy with 95 % Wilson CIs of a reward model or any scorer, on pairs or benchmark formats.

    Plain pairs report accuracy, per-subset accuracy, margins, calibration (after the model's saved
    temperature, or one fitted with --fit-temperature) and length bias, and on request contrast
    consistency, invariance and policy ranking; --format rewardbench adds section scores,
    rewardbench2 best-of-N and Ties, rewardmath one-to-many accuracy and MRR, kwise rankings,
    principles accuracy per principle and principle sensitivity.
    """
    options = dict(locals())  # the command's parameters are evaluate_data's keywords, defaults included
    from rewardlab.evaluate.run import evaluate_data

    show(evaluate_data(**options, progress=True, log=note))


@app.command()
@user_errors
def compare(
    model_a: Annotated[Path, typer.Argument(help="Saved reward model folder (A)")],
    model_b: Annotated[Path, typer.Argument(help="Saved reward model folder (B)")],
    data: DataArgument,
    report: Annotated[Path | None, typer.Option(help="Folder for compare.json and compare.md")] = None,
    split: SplitOption = "all",
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
    precision: PrecisionOption = "auto",
) -> None:
    """Is A better than B? Both accuracies, the paired difference (bootstrap CI), McNemar's exact test."""
    options = dict(locals())  # the command's parameters are compare_data's keywords
    from rewardlab.evaluate.run import compare_data

    show(compare_data(**options, progress=True, log=note))


@app.command("length-removed")
@user_errors
def length_removed(
    model: Annotated[Path, typer.Argument(help="Saved reward model folder")],
    data: DataArgument,
    fit_split: Annotated[str, typer.Option(help="Split whose replies the length trend is fitted on")] = "validation",
    split: Annotated[str, typer.Option(help="Split evaluated: all, train, validation or test")] = "test",
    report: Annotated[Path | None, typer.Option(help="Folder for the report of the debiased reward")] = None,
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
    precision: PrecisionOption = "auto",
) -> None:
    """Remove the reward's length trend: fit r = a + b·length on one split, evaluate r − b·length on another."""
    options = dict(locals())  # the command's parameters are evaluate_length_removed's keywords
    from rewardlab.evaluate.length_removal import evaluate_length_removed

    show(evaluate_length_removed(**{**options, "model": str(model)}, progress=True, log=note))


@app.command("ensemble-errors")
@user_errors
def ensemble_errors(
    data: DataArgument,
    members: Annotated[list[Path], typer.Argument(help="Two or more saved reward model folders", show_default=False)],
    report: Annotated[Path | None, typer.Option(help="Folder for ensemble_errors.json and .md")] = None,
    split: SplitOption = "all",
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
    precision: PrecisionOption = "auto",
    uncertainty_weight: Annotated[float, typer.Option(help="λ of uwo (mean − λ·variance)")] = 1.0,
) -> None:
    """Do ensemble members err on the same pairs? Accuracies, shared errors, ensemble mean/wco/uwo."""
    options = dict(locals())  # the command's parameters are ensemble_errors_data's keywords
    from rewardlab.evaluate.run import ensemble_errors_data

    show(ensemble_errors_data(**options, progress=True, log=note))
