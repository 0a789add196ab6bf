"""``rewardlab pretrain``: pretrain a small LM from scratch with human feedback (Korbak et al. 2023)
and compare its objective with plain MLE (``pretrain train``); list the objectives (``pretrain objectives``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rewardlab.cli.base import app, out, user_errors

pretrain_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode="markdown", help="Pretraining with human feedback: objectives vs MLE."
)
app.add_typer(pretrain_app, name="pretrain")


@pretrain_app.command("train")
@user_errors
def pretrain_train(
    objective: Annotated[
        list[str], typer.Option(help="mle, filtering, conditional, unlikelihood, rwr or awr (repeat for several)")
    ] = ["conditional"],  # noqa: B006
    corpus: Annotated[
        str, typer.Option(help="Corpus file (text, or chosen/rejected rows) or hh-harmless")
    ] = "hh-harmless",
    scorer: Annotated[
        str, typer.Option(help="words (a word list) or a rewardlab scorer kind, e.g. reward-model")
    ] = "words",
    model: Annotated[str | None, typer.Option(help="The scorer's model (a reward-model folder, ...)")] = None,
    words: Annotated[str | None, typer.Option(help="words: comma-separated list (default: a harm lexicon)")] = None,
    size: Annotated[str, typer.Option(help="Model size: tiny, small or base")] = "tiny",
    tokenizer: Annotated[str, typer.Option(help="smollm2 or a tokenizer folder")] = "smollm2",
    steps: Annotated[int, typer.Option(help="Optimiser steps per objective")] = 200,
    batch_blocks: Annotated[int, typer.Option(help="Blocks per step")] = 8,
    block_tokens: Annotated[int, typer.Option(help="Tokens per block")] = 128,
    lr: Annotated[float, typer.Option(help="Peak AdamW learning rate")] = 1e-3,
    bad_percentile: Annotated[float, typer.Option(help="Segments below this percentile of scores are bad")] = 10.0,
    alpha: Annotated[float | None, typer.Option(help="unlikelihood/awr: α")] = None,
    beta: Annotated[float | None, typer.Option(help="rwr/awr: β, in the scorer's units")] = None,
    samples: Annotated[int, typer.Option(help="Samples per objective judged by the scorer")] = 128,
    max_documents: Annotated[int | None, typer.Option(help="Read only this many documents")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the weights, the batch order and the samples")] = 0,
    output: Annotated[
        Path, typer.Option(help="Run folder: report.md, segment_scores.json, one folder per objective")
    ] = Path("runs/pretrain"),
    resume: Annotated[bool, typer.Option(help="Continue the objectives' checkpoints in --output")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
) -> None:
    """Score the corpus's segments, train each objective and MLE from the same start, and report held-out
    clean loss and the rate of undesirable samples (scoring below the threshold) of each."""
    from rewardlab.pretrain.model import load_pretrain_tokenizer
    from rewardlab.pretrain.objectives import get_pretrain_objective
    from rewardlab.pretrain.run import PretrainRunConfig, render_report, run_pretraining
    from rewardlab.pretrain.scoring import segment_scorer
    from rewardlab.pretrain.trainer import PretrainConfig

    names = [get_pretrain_objective(o).name for o in objective]
    options = {k: v for k, v in (("alpha", alpha), ("beta", beta)) if v is not None}
    config = PretrainRunConfig(
        corpus=corpus,
        max_documents=max_documents,
        size=size,
        block_tokens=block_tokens,
        bad_percentile=bad_percentile,
        samples=samples,
        split_seed=seed,
        train=PretrainConfig(steps=steps, batch_blocks=batch_blocks, lr=lr, seed=seed, objective_args=options),
    )
    config.check()
    word_list = [w.strip() for w in words.split(",") if w.strip()] if words else []
    built, name = segment_scorer(scorer, model, word_list)
    report = run_pretraining(config, names, load_pretrain_tokenizer(tokenizer), built, name, output, resume, progress)
    out.print(render_report(report), markup=False, highlight=False)


@pretrain_app.command("objectives")
@user_errors
def pretrain_objectives() -> None:
    """List the pretraining objectives: the data each trains on and its options."""
    from rewardlab.pretrain.objectives import PRETRAIN_OBJECTIVES

    for name in PRETRAIN_OBJECTIVES.names():
        spec = PRETRAIN_OBJECTIVES.get(name)
        options = ", ".join(spec.options) or "-"
        out.print(
            f"{name:13} data={spec.data:11} options={options:24} {spec.description}", markup=False, highlight=False
        )
