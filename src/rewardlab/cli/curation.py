"""``rewardlab data strength | curate | review-queue``: find noisy labels with reward models and act on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rewardlab.cli.base import data_app, note, out, user_errors
from rewardlab.cli.options import ColumnsOption, DataArgument, PrecisionOption, SkipOption

ModelsOption = Annotated[
    list[Path],
    typer.Option("--models", help="Saved reward model folders, listed after DATA", show_default=False),
]
ThresholdOption = Annotated[
    float, typer.Option(help="Flag a pair when the judge's mean margin for its label is below −threshold")
]


def _models(data: str, models: list[Path], rest: list[str] | None) -> list[Path]:
    """``DATA --models a b c`` as typer reads it: the first after the option, the rest as extra arguments."""
    if (Path(data) / "config.json").is_file():
        raise ValueError(f"DATA {data} is a model folder: give the data first, then --models M1 M2 ...")
    return [*models, *(Path(r) for r in rest or [])]


@data_app.command("strength", context_settings={"allow_extra_args": True})
@user_errors
def data_strength(
    ctx: typer.Context,
    data: DataArgument,
    models: ModelsOption,
    output: Annotated[Path | None, typer.Option(help="Per-pair strengths as JSON lines (and a .summary.json)")] = None,
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
    precision: PrecisionOption = "auto",
) -> None:
    """Each pair's preference strength from an ensemble: mean and spread of the members' margins."""
    from rewardlab.curation import strength_data

    result = strength_data(
        data, _models(data, models, ctx.args), output=output, columns=columns, skip_bad_rows=skip_bad_rows,
        precision=precision, progress=True,
    )  # fmt: skip
    out.print_json(data=result.summary())
    if result.files:
        note("written: " + ", ".join(map(str, result.files)))


@data_app.command("curate", context_settings={"allow_extra_args": True})
@user_errors
def data_curate(
    ctx: typer.Context,
    data: DataArgument,
    method: Annotated[str, typer.Option(help="flip, drop, soft or peer-review")],
    models: ModelsOption,
    output: Annotated[Path, typer.Option(help="The curated rows (JSON lines): every original field plus provenance")],
    threshold: ThresholdOption = 0.5,
    dropped: Annotated[Path | None, typer.Option(help="Where dropped pairs go (default OUTPUT.dropped.jsonl)")] = None,
    ensemble_weight: Annotated[float, typer.Option(help="soft: weight w of the ensemble in the label")] = 0.5,
    curriculum: Annotated[bool, typer.Option("--curriculum", help="Write the pairs from easy to hard")] = False,
    judge: Annotated[str, typer.Option(help="peer-review: peer (the other model) or self (baseline)")] = "peer",
    seed: Annotated[int, typer.Option(help="peer-review: the seed of the halves split")] = 0,
    report: Annotated[Path | None, typer.Option(help="Folder for curation.md and curation.html")] = None,
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
    precision: PrecisionOption = "auto",
) -> None:
    """Flip, drop or soften the pairs reward models doubt; dropped pairs go to their own file."""
    from rewardlab.curation import curate_data

    result = curate_data(
        data, method, _models(data, models, ctx.args), output, threshold=threshold, dropped=dropped,
        ensemble_weight=ensemble_weight, curriculum=curriculum, judge=judge, seed=seed, report=report,
        columns=columns, skip_bad_rows=skip_bad_rows, precision=precision, progress=True,
    )  # fmt: skip
    out.print(result.summary_line(), markup=False, highlight=False)
    out.print(json.dumps(result.counts()["by_subset"]), markup=False, highlight=False)
    out.print("written: " + ", ".join(map(str, result.files)), markup=False, highlight=False)


@data_app.command("halves")
@user_errors
def data_halves(
    data: DataArgument,
    output: Annotated[Path, typer.Option(help="Folder for half-0.jsonl and half-1.jsonl")],
    seed: Annotated[int, typer.Option(help="The seed of the split (give curate --seed the same)")] = 0,
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
) -> None:
    """Split the data in two halves for peer review: train one reward model on each."""
    from rewardlab.curation import peer_halves_data

    paths = peer_halves_data(data, output, seed=seed, columns=columns, skip_bad_rows=skip_bad_rows)
    counts = [sum(1 for _ in p.open(encoding="utf-8")) for p in paths]
    out.print(f"half 0: {counts[0]} rows, half 1: {counts[1]} rows: " + ", ".join(map(str, paths)), markup=False)


@data_app.command("review-queue", context_settings={"allow_extra_args": True})
@user_errors
def data_review_queue(
    ctx: typer.Context,
    data: DataArgument,
    models: ModelsOption,
    output: Annotated[Path, typer.Option(help="The pairs to relabel, most doubtful first (JSON lines)")],
    budget: Annotated[int, typer.Option(help="How many pairs people can relabel")] = 200,
    gold: Annotated[str | None, typer.Option(help="Pairs with verified labels, for error analysis by subset")] = None,
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
    precision: PrecisionOption = "auto",
) -> None:
    """The pairs people should relabel first: those the ensemble doubts (and errs on, per a gold set)."""
    from rewardlab.curation import review_queue_data

    result = review_queue_data(
        data, _models(data, models, ctx.args), output, budget=budget, gold=gold, columns=columns,
        skip_bad_rows=skip_bad_rows, precision=precision, progress=True,
    )  # fmt: skip
    reasons: dict[str, int] = {}
    for row in result.queue:
        reasons[row["review_reason"]] = reasons.get(row["review_reason"], 0) + 1
    queued = f"{len(result.queue)} of {result.pairs} pairs queued for review: {reasons}"
    out.print(queued, markup=False, highlight=False)
    out.print("written: " + ", ".join(map(str, result.files)), markup=False, highlight=False)
