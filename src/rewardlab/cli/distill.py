"""``rewardlab distill``: align a small student through an aligned teacher (DCKD, ADPA; Gao et al. 2025):
cut a student from its teacher (``distill student``), sample its own replies for ADPA (``distill samples``),
then train it (``distill train``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rewardlab.cli.base import app, out, user_errors

distill_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="Distil preference alignment from an aligned teacher into a smaller student (DCKD, ADPA).",
)
app.add_typer(distill_app, name="distill")


@distill_app.command("student")
@user_errors
def distill_student(
    output: Annotated[Path, typer.Option(help="Folder for the student model and its tokenizer")],
    teacher: Annotated[str, typer.Option(help="smollm2 (default) or a local causal LM folder")] = "smollm2",
    layers: Annotated[int, typer.Option(help="Layers the student keeps, its outer ones: a middle block cut")] = 20,
) -> None:
    """Cut a smaller student from a teacher: its tokenizer, embeddings and head, and a subset of its layers."""
    from rewardlab.distill.student import build_student

    folder = build_student(teacher, output, layers)
    out.print(f"student: {folder}")


@distill_app.command("samples")
@user_errors
def distill_samples(
    student: Annotated[str, typer.Option(help="The SFT student whose own replies ADPA's rejected side should be")],
    output: Annotated[Path, typer.Option(help="JSONL file: one {prompt, reply} row per training prompt")],
    data: Annotated[str | None, typer.Option(help="Preference file (default: embedded HH-RLHF)")] = None,
    max_train_pairs: Annotated[
        int | None, typer.Option(help="The training pairs `distill train` will read: the first N (default: all)")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens of a reply")] = 128,
    max_prompt_tokens: Annotated[int, typer.Option(help="Prompts are cut from the left to this many tokens")] = 512,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (> 0)")] = 1.0,
    seed: Annotated[int, typer.Option(help="Sampling seed (combined with each prompt)")] = 0,
    batch_rows: Annotated[int, typer.Option(help="Replies written at once")] = 16,
) -> None:
    """Sample one reply per training prompt from the SFT student, for `distill train --student-samples` (ADPA).

    Resumable: rerun the same command after an interruption and only the missing prompts are sampled.
    """
    from rewardlab.distill.run import run_student_samples
    from rewardlab.policy.run_config import DPODataConfig
    from rewardlab.sampling.generation import SampleConfig

    sampling = SampleConfig(n=1, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    sampling.check()
    written = run_student_samples(
        student,
        output,
        DPODataConfig(path=data, max_train_pairs=max_train_pairs),
        sampling,
        max_prompt_tokens=max_prompt_tokens,
        batch_rows=batch_rows,
    )
    out.print(f"student samples: {written}")


@distill_app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
@user_errors
def distill_train(
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Config overrides: key.sub=value, e.g. train.steps=50 train.weights.advantage=0.5"),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file")] = None,
    student: Annotated[str | None, typer.Option(help="The student's folder (sharing the teacher's tokenizer)")] = None,
    teacher: Annotated[
        str | None, typer.Option(help="The aligned teacher, e.g. a `rewardlab dpo` run's policy/")
    ] = None,
    teacher_reference: Annotated[
        str | None, typer.Option(help="adpa: the teacher before alignment (its DPO reference)")
    ] = None,
    method: Annotated[str | None, typer.Option(help="sft, kd, dckd (default), adpa or adpa+dckd")] = None,
    data: Annotated[str | None, typer.Option(help="Preference file (default: embedded HH-RLHF)")] = None,
    student_samples: Annotated[
        Path | None, typer.Option(help="adpa: the student's own replies as rejected (`rewardlab distill samples`)")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Output folder: student/, metrics.jsonl, report.json")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --output from its checkpoint")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous run in --output")] = False,
) -> None:
    """Train a student with a teacher's token distributions (kd, dckd) or advantage (adpa), or plain SFT."""
    from rewardlab.distill.run import load_distill_config, run_distill

    shortcuts = {
        "student": student,
        "teacher": teacher,
        "teacher_reference": teacher_reference,
        "train.method": method,
        "data.path": data,
        "student_samples": student_samples,
        "output_dir": output,
    }
    items = [f"{k}={v}" for k, v in shortcuts.items() if v is not None] + list(overrides or [])
    result = run_distill(load_distill_config(config, items), overwrite=overwrite, resume=resume)
    first, last = result.report["first"], result.report["last"]
    out.print(
        f"{result.report['method']}: loss {first['loss']:.4f} → [bold]{last['loss']:.4f}[/] "
        f"in {result.report['steps']} steps"
    )
    out.print(f"student: {result.student_dir}")
