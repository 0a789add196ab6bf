"""``rewardlab detect``: a reward model as a detector of an aligned LM's text (ReMoDetect): build a
detection file (``detect make-data``), tune a reward model into a detector (``detect tune``), and
measure a model's AUROC on a detection file (``detect eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rewardlab.cli.base import app, out, user_errors

detect_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode="markdown", help="Detect an aligned LM's text with a reward model."
)
app.add_typer(detect_app, name="detect")


@detect_app.command("make-data")
@user_errors
def detect_make_data(
    answers: Annotated[Path, typer.Argument(help="JSON array of questions with human answers (question, gold)")],
    output: Annotated[Path, typer.Option(help="Detection file to write (JSONL: prompt, text, source)")],
    lm: Annotated[str, typer.Option(help="The aligned LM: smollm2 or a local causal LM folder")] = "smollm2",
    question_field: Annotated[str, typer.Option(help="Field of the question")] = "question",
    answer_field: Annotated[str, typer.Option(help="Field of the human answer")] = "gold",
    limit: Annotated[int | None, typer.Option(help="Use only the first this many questions")] = None,
    mixed: Annotated[bool, typer.Option(help="Add mixed texts: a human opening the LM continues")] = True,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens the LM writes at most per text")] = 128,
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the LM")] = 0.7,
    seed: Annotated[int, typer.Option(help="Seed of the LM's sampling")] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
) -> None:
    """Write human answers, the LM's replies to the questions and (with --mixed) human openings the LM continues."""
    from rewardlab.destinations import check_jsonl_destination
    from rewardlab.detect.records import write_detection
    from rewardlab.detect.texts import detection_records, human_answers
    from rewardlab.models.causal_lm import CausalLM

    check_jsonl_destination(output)
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be positive (got {limit})")
    pairs = human_answers(answers, question=question_field, answer=answer_field)[:limit]
    model = CausalLM.from_pretrained(lm)
    records = detection_records(
        pairs, model, mixed=mixed, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, progress=progress
    )
    write_detection(output, records)
    counts = {s: sum(r.source == s for r in records) for s in ("human", "lm", "mixed")}
    out.print(f"{output}: {', '.join(f'{n} {s}' for s, n in counts.items() if n)} texts", markup=False)


@detect_app.command("tune")
@user_errors
def detect_tune(
    model: Annotated[Path, typer.Argument(help="The reward model folder to start from (only read)")],
    data: Annotated[Path, typer.Argument(help="Detection file to tune on (hold the test prompts out)")],
    output: Annotated[Path, typer.Option(help="Run folder of the tuned detector: model/, metrics.jsonl")] = Path(
        "runs/detector"
    ),
    anchor_coef: Annotated[float, typer.Option(help="λ: pull towards the starting model's rewards")] = 1.0,
    mixed: Annotated[bool, typer.Option(help="Rank mixed texts between LM and human texts")] = True,
    epochs: Annotated[float, typer.Option(help="Passes over the pairs")] = 1.0,
    max_steps: Annotated[int | None, typer.Option(help="Optimiser steps, instead of --epochs")] = None,
    batch_size: Annotated[int, typer.Option(help="Pairs per optimiser step")] = 8,
    lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 2e-5,
    seed: Annotated[int, typer.Option(help="Seed of the validation split and the pairs' order")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace the run in --output")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
) -> None:
    """Tune a copy of a reward model to score LM text above mixed text above human text, near its starting rewards."""
    from rewardlab.detect.records import read_detection
    from rewardlab.detect.tuning import TuneConfig, tune_detector

    records = read_detection(data)
    config = TuneConfig(
        output_dir=str(output),
        anchor_coef=anchor_coef,
        mixed=mixed,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        progress=progress,
    )
    result = tune_detector(model, records, config, data_name=str(data), overwrite=overwrite)
    out.print(f"tuned detector: {result.model_dir} ({result.steps} steps)", markup=False)


@detect_app.command("eval")
@user_errors
def detect_eval(
    model: Annotated[Path, typer.Argument(help="A reward model folder")],
    data: Annotated[Path, typer.Argument(help="Detection file (JSONL: prompt, text, source)")],
    output: Annotated[Path | None, typer.Option(help="JSON file for the AUROCs and their intervals")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
) -> None:
    """AUROC of the reward model's score as a detector of LM text against human text, with DeLong's 95 % interval."""
    import json

    from rewardlab.atomic import write_text_atomic
    from rewardlab.destinations import check_file_destination
    from rewardlab.detect.records import read_detection
    from rewardlab.detect.scoring import detection_aurocs, score_records
    from rewardlab.models.reward_model import RewardModel

    if output is not None:
        check_file_destination(output)
    records = read_detection(data)
    scores = score_records(RewardModel.from_pretrained(model), records, progress=progress)
    found = detection_aurocs(records, scores)
    if output is not None:
        write_text_atomic(output, json.dumps({k: v.as_dict() for k, v in found.items()}, indent=2) + "\n")
    for name, estimate in found.items():
        out.print(
            f"{name}: AUROC {estimate.auroc:.3f} ({estimate.ci_low:.3f}–{estimate.ci_high:.3f}), "
            f"{estimate.positives} vs {estimate.negatives} texts",
            markup=False,
            highlight=False,
        )
