"""The ``rewardlab`` command line: train, dpo, eval, compare, ensemble-errors, score, serve, overopt, sample-pairs,
data check and more (``rewardlab --help``)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from rewardlab.evaluate.scorers import scorer_names

# markdown: a docstring's paragraphs flow to the terminal's width (rich mode keeps their source line breaks)
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="Learn, measure and use reward models.",
)
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown", help="Inspect preference datasets.")
app.add_typer(data_app, name="data")
# soft wrap: lines are left for the terminal to wrap, so paths and reports piped to a file stay whole
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command as its user sees it: a mistake (bad data, config, path) as one red line and exit
    code 2, not a traceback, and the libraries' own progress bars and log lines quieted (rewardlab
    draws its own; theirs would repeat them). Applied when the command runs, so ``--help`` loads
    neither the libraries nor torch."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from rewardlab.tuning import tune_cpu

        tune_cpu()  # a command is rewardlab's own run: its CPU settings, set before torch computes anything
        from transformers.utils import logging as hf_logging

        from rewardlab.data.records import DataError
        from rewardlab.destinations import os_error_message
        from rewardlab.runs.config import ConfigError
        from rewardlab.runs.folder import RunExists

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        warnings.showwarning = _show_warning
        try:
            return command(*args, **kwargs)
        except (DataError, ConfigError, RunExists, FileNotFoundError, ValueError) as e:
            console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
            raise typer.Exit(2) from None
        except OSError as e:  # a path that cannot be read or written (read-only, full disk): the path and why
            console.print(f"[bold red]error:[/] {escape(os_error_message(e))}", highlight=False)
            raise typer.Exit(2) from None

    return run


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """A warning (an unfinished model, say) as one yellow line, not Python's file:line form."""
    console.print(f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False)


def _note(message: str) -> None:
    """Notes about the data (rows skipped) as the library reports them, on stderr."""
    console.print(message, markup=False)


def _print_version(value: bool) -> None:
    if value:
        from rewardlab import __version__

        typer.echo(f"rewardlab {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    # no docstring: typer would show it in place of the app's help
    pass


def _show(output: Any) -> None:
    """An evaluation's report as Markdown, and the files it was written to."""
    out.print(output.markdown(), markup=False, highlight=False)
    if output.report_files:
        out.print("report: " + ", ".join(map(str, output.report_files)))


ColumnsOption = Annotated[
    str | None,
    typer.Option(help="Where your data keeps each field, as name=field pairs, e.g. prompt=question,chosen=response_j"),
]
DATA_HELP = (
    "Preference data: a file, a datasets folder, a cached Hub dataset org/name[:split], or a packaged"
    " dataset: hh-harmless, ultrafeedback, tulu1, finegrained"
)
DataArgument = Annotated[str, typer.Argument(help=DATA_HELP + "; 'default' for the embedded data (hh-harmless)")]
SplitOption = Annotated[str, typer.Option(help="all, or train/validation/test of the default seeded split")]
PrecisionOption = Annotated[str, typer.Option(help="auto (bf16 where the CPU/GPU has it), bf16 or fp32")]
SCORER_NAMES = ", ".join(scorer_names())
"""The registered scorers (``evaluate.scorers.SCORERS``), plugins included."""
SkipOption = Annotated[
    bool, typer.Option("--skip-bad-rows", help="Skip invalid rows (counted and reported) instead of failing")
]


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
@user_errors
def train(
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Config overrides: key.sub=value, e.g. optim.lr=1e-5")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file (applied on top of --recipe)")] = None,
    recipe: Annotated[
        str | None, typer.Option(help="Start from a packaged config, e.g. general (`rewardlab recipes` lists them)")
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(
            help=DATA_HELP + " (default: embedded HH-RLHF); repeat for several sources, each PATH or PATH@WEIGHT"
        ),
    ] = None,
    backbone: Annotated[str | None, typer.Option(help="minilm, smollm2, or a local model folder")] = None,
    output: Annotated[Path | None, typer.Option(help="Output folder for the model, logs and report")] = None,
    objective: Annotated[str | None, typer.Option(help="Objective name (see `rewardlab objectives`)")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --output from its last checkpoint")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous run in --output")] = False,
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print the resolved config, each key with its doc, and exit")
    ] = False,
) -> None:
    """Train a reward model, then evaluate it on the held-out test split (per source when there are several)."""
    import json

    from rewardlab.runs.config import load_run_config
    from rewardlab.runs.recipes import apply_recipe
    from rewardlab.runs.sources import data_overrides
    from rewardlab.training.config import TrainConfig
    from rewardlab.training.trainer import train as run_training

    shortcuts = {"model.backbone": backbone, "output_dir": output, "objective.name": objective}
    items = [f"{k}={v}" for k, v in shortcuts.items() if v is not None]
    items += [f"{k}={json.dumps(v)}" for k, v in data_overrides(data or []).items()] + list(overrides or [])
    resolved = load_run_config(apply_recipe(TrainConfig(), recipe), config, items)
    if print_config:
        from rewardlab.runs.config_docs import render_config

        typer.echo(render_config(resolved), nl=False)
        return
    result = run_training(resolved, resume=resume, overwrite=overwrite)
    if not result.main_process:  # under torchrun the main process reports for all
        return
    if result.test is not None:
        o = result.test.overall
        out.print(f"held-out accuracy: [bold]{o.accuracy:.4f}[/] (95 % CI {o.ci_low:.4f}–{o.ci_high:.4f}, n={o.n})")
        if (by_source := result.test.extras.get("per_source")) is not None:
            for name, e in by_source.per_source.items():
                out.print(f"  {name}: {e.accuracy:.4f} (95 % CI {e.ci_low:.4f}–{e.ci_high:.4f}, n={e.n})")
            out.print(f"  mean over {len(by_source.per_source)} sources: {by_source.mean_accuracy:.4f}")
    out.print(f"model:  {result.model_dir}")
    if result.report_dir:
        out.print(f"report: {result.report_dir / 'eval.md'}")
    out.print(f"time: {result.seconds:.0f} s, {result.steps} steps, peak memory {result.peak_rss_mb:.0f} MB")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
@user_errors
def cv(
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Config overrides, as for train: key.sub=value, e.g. optim.lr=1e-5")
    ] = None,
    folds: Annotated[int, typer.Option(help="Number of folds (at least 2, at most the prompt groups)")] = 5,
    config: Annotated[Path | None, typer.Option(help="YAML config file")] = None,
    data: Annotated[str | None, typer.Option(help=DATA_HELP + " (default: embedded HH-RLHF)")] = None,
    backbone: Annotated[str | None, typer.Option(help="minilm, smollm2, or a local model folder")] = None,
    output: Annotated[Path, typer.Option(help="Output folder: one run folder per fold, cv.json and cv.md")] = Path(
        "runs/cv"
    ),
    objective: Annotated[str | None, typer.Option(help="Objective name (see `rewardlab objectives`)")] = None,
    keep_models: Annotated[
        bool, typer.Option("--keep-models", help="Keep each fold's model (default: only its predictions)")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip the folds finished in --output; continue an unfinished one")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous cv in --output")] = False,
) -> None:
    """Cross-validate a training recipe: train and test it on each of --folds folds (split by prompt group)."""
    from rewardlab.training.config import load_config
    from rewardlab.training.cv import cross_validate

    shortcuts = {"data.path": data, "model.backbone": backbone, "output_dir": output, "objective.name": objective}
    items = [f"{k}={v}" for k, v in shortcuts.items() if v is not None] + list(overrides or [])
    result = cross_validate(
        load_config(config, items), folds, resume=resume, overwrite=overwrite, keep_models=keep_models
    )
    out.print(result.markdown, markup=False, highlight=False)
    out.print("report: " + ", ".join(map(str, result.report_files)))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
@user_errors
def dpo(
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Config overrides: key.sub=value, e.g. train.steps=50 train.loss_args.beta=0.2"),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file")] = None,
    data: Annotated[str | None, typer.Option(help=DATA_HELP + " (default: embedded HH-RLHF)")] = None,
    policy: Annotated[str | None, typer.Option(help="smollm2 (default) or a local causal LM folder")] = None,
    output: Annotated[Path | None, typer.Option(help="Output folder for the policy, metrics and report")] = None,
    loss: Annotated[
        str | None, typer.Option(help="Policy loss: dpo (default), ipo, simpo, ... (see `rewardlab policy-losses`)")
    ] = None,
    guide_model: Annotated[
        Path | None, typer.Option(help="tgdpo: the DPO-trained causal LM folder whose token rewards guide the loss")
    ] = None,
    judge_model: Annotated[
        Path | None, typer.Option(help="A rewardlab reward model: report the win rate over the base policy")
    ] = None,
    gradient_checkpointing: Annotated[
        bool | None, typer.Option(help="Recompute activations in backward (less memory, slower)")
    ] = None,
    precision: Annotated[
        str | None, typer.Option(help="auto (bf16 passes, fp32 weights, where the CPU/GPU has bf16), bf16 or fp32")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --output from its last checkpoint")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous run in --output")] = False,
) -> None:
    """Train a policy from preferences (DPO family), then evaluate it on the held-out test split."""
    from rewardlab.policy.run import run_dpo
    from rewardlab.policy.run_config import load_dpo_config

    shortcuts = {
        "data.path": data,
        "policy": policy,
        "output_dir": output,
        "train.loss": loss,
        "guide_model": guide_model,
        "eval.judge_model": judge_model,
        "gradient_checkpointing": None if gradient_checkpointing is None else str(gradient_checkpointing).lower(),
        "train.precision": precision,
    }
    items = [f"{k}={v}" for k, v in shortcuts.items() if v is not None] + list(overrides or [])
    result = run_dpo(load_dpo_config(config, items), overwrite=overwrite, resume=resume)
    shown = [
        ("held-out implicit-reward accuracy", result.report["held_out"]["implicit_accuracy"]),
        ("held-out ranking accuracy", result.report["held_out"]["ranking_accuracy"]),
    ]
    if "win_rate" in result.report:
        shown.append(("win rate over the base policy", result.report["win_rate"]["win_rate"]))
    for name, e in shown:
        out.print(f"{name}: [bold]{e['accuracy']:.4f}[/] (95 % CI {e['ci_low']:.4f}–{e['ci_high']:.4f}, n={e['n']})")
    if "sampled_kl" in result.report:
        k = result.report["sampled_kl"]
        n = k["prompts"] * k["samples_per_prompt"]
        out.print(f"KL(π‖π_ref) on {n} sampled replies: [bold]{k['kl']:.4f}[/] ± {k['std_error']:.4f} nats")
    out.print(f"policy: {result.policy_dir}")
    out.print(f"report: {result.output_dir / 'report.md'}")


@app.command("cross-dataset", context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
@user_errors
def cross_dataset(
    overrides: Annotated[
        list[str] | None, typer.Argument(help="`rewardlab train` overrides for every reward model: key.sub=value")
    ] = None,
    sources: Annotated[
        str,
        typer.Option(help="Comma-separated sources: packaged names (hh-harmless, ultrafeedback, ...) or NAME=PATH"),
    ] = "hh-harmless,ultrafeedback,tulu1,finegrained",
    output: Annotated[Path, typer.Option(help="Study folder: one run per source, cells, the matrix")] = Path(
        "runs/cross-dataset"
    ),
    config: Annotated[Path | None, typer.Option(help="`rewardlab train` YAML config for every reward model")] = None,
    dpo: Annotated[
        bool, typer.Option("--dpo", help="Also a row per source for a DPO policy's implicit reward (DPORM vs EXRM)")
    ] = False,
    dpo_set: Annotated[
        list[str] | None,
        typer.Option("--dpo-set", help="`rewardlab dpo` override for every DPO run (repeat), e.g. policy=PATH"),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Keep finished models and cells; continue unfinished runs")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous study in --output")] = False,
) -> None:
    """Train a reward model per source, test each on every source's test split: an accuracy matrix."""
    from rewardlab.policy.cross_dataset import CrossDatasetConfig, parse_sources, run_cross_dataset

    study = CrossDatasetConfig(parse_sources(sources), output, list(overrides or []), config, dpo, list(dpo_set or []))
    _, markdown = run_cross_dataset(study, resume=resume, overwrite=overwrite, say=typer.echo)
    out.print(markdown, markup=False, highlight=False)
    out.print(f"matrix: {output / 'cross_dataset.json'}, {output / 'cross_dataset.md'}", highlight=False)


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
            help="pairs, rewardbench (sections), rewardbench2 (best-of-N, Ties), kwise, or principles "
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
    strong: Annotated[str | None, typer.Option(help="cdr: the better-aligned LM")] = None,
    weak: Annotated[str | None, typer.Option(help="cdr: the less-aligned LM")] = None,
    instruction: Annotated[str | None, typer.Option(help="cdr: system instruction, or @FILE")] = None,
    lm: Annotated[str | None, typer.Option(help="flr: the LM that reads follow-ups")] = None,
    follow_ups: Annotated[Path | None, typer.Option(help='flr: JSON {"positive": [...], "negative": [...]}')] = None,
    url: Annotated[str | None, typer.Option(help="remote: OpenRLHF reward endpoint, e.g. http://HOST:8000")] = None,
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
) -> None:
    """Accuracy with 95 % Wilson CIs of a reward model or any scorer, on pairs or benchmark formats.

    Plain pairs report accuracy, per-subset accuracy, margins, calibration (after the model's saved
    temperature, or one fitted with --fit-temperature) and length bias, and on request contrast
    consistency, invariance and policy ranking; --format rewardbench adds section scores,
    rewardbench2 best-of-N and Ties, kwise rankings, principles accuracy per principle and
    principle sensitivity.
    """
    options = dict(locals())  # the command's parameters are evaluate_data's keywords, defaults included
    from rewardlab.evaluate.run import evaluate_data

    _show(evaluate_data(**options, progress=True, log=_note))


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

    _show(compare_data(**options, progress=True, log=_note))


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

    _show(evaluate_length_removed(**{**options, "model": str(model)}, progress=True, log=_note))


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

    _show(ensemble_errors_data(**options, progress=True, log=_note))


@app.command()
@user_errors
def score(
    model: Annotated[Path, typer.Argument(help="Saved reward model folder")],
    input: Annotated[Path, typer.Argument(help="Rows with a prompt and a response (JSONL, JSON, CSV, Parquet)")],
    output: Annotated[Path, typer.Option(help="Where to write the rows with a 'reward' field (JSONL)")],
    prompt_field: str = "prompt",
    response_field: str = "response",
    precision: PrecisionOption = "auto",
    member: Annotated[
        list[Path] | None, typer.Option(help="Another model to score as one ensemble with MODEL (repeatable)")
    ] = None,
    aggregation: Annotated[
        str | None, typer.Option(help="Ensembles: mean, wco (worst member) or uwo (mean − λ·variance)")
    ] = None,
    uncertainty_weight: Annotated[float | None, typer.Option(help="Ensembles: λ of uwo")] = None,
    direction: Annotated[str | None, typer.Option(help="Multi-attribute models: attribute weights, e.g. 1,0.5")] = None,
) -> None:
    """Score each (prompt, response) row; the output is written whole or not at all.

    An ensemble (several --member models, or a model trained with an ensemble objective) also
    writes each reward's 'uncertainty': the variance across members.
    """
    options = dict(locals())  # the command's parameters are score_file's keywords
    from rewardlab.evaluate.score_file import score_file

    scored = score_file(**options, progress=True)
    out.print(f"scored {len(scored)} rows → {output}")


@app.command()
@user_errors
def export(
    model: Annotated[Path, typer.Argument(help="Saved reward model folder")],
    to: Annotated[str, typer.Option("--to", help="trl, openrlhf or rewardbench")],
    output: Annotated[Path, typer.Option(help="Folder to write (replaced whole)")],
) -> None:
    """Write MODEL as the folder TRL, OpenRLHF or RewardBench scores as `rewardlab score` does.

    A model that consumer would score differently is refused, with why (e.g. OpenRLHF and encoders).
    """
    from rewardlab.models.export import export_model

    out.print(f"exported for {to} → {export_model(model, to, output)}")


@app.command("serve")
@user_errors
def serve_command(
    model: Annotated[Path, typer.Argument(help="Saved reward model folder")],
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 for every interface")] = "127.0.0.1",
    precision: PrecisionOption = "auto",
    max_batch_items: Annotated[int, typer.Option(help="Items scored together at most")] = 256,
    max_wait_ms: Annotated[float, typer.Option(help="How long a request waits for others to batch with")] = 5.0,
    max_items: Annotated[int, typer.Option(help="Items per request at most (413 beyond)")] = 512,
    max_text_chars: Annotated[int, typer.Option(help="Characters per text at most (413 beyond)")] = 32_768,
    max_body_bytes: Annotated[int, typer.Option(help="Request body size at most (413 beyond)")] = 8 * 1024 * 1024,
    tile_tokens: Annotated[
        int | None, typer.Option(help="Tokens per forward pass (default: `rewardlab score`'s, so the same rewards)")
    ] = None,
    warmup: Annotated[bool, typer.Option(help="Run every forward shape once before serving")] = True,
    body_timeout_s: Annotated[
        float, typer.Option(help="Seconds a request body may take to arrive after its headers (408 beyond)")
    ] = 30.0,
    keep_alive_s: Annotated[
        float, typer.Option(help="Seconds an idle connection, or one still sending its request head, stays open")
    ] = 60.0,
    max_concurrent_requests: Annotated[
        int, typer.Option(help="Requests in progress at most (503 with Retry-After beyond; /health apart)")
    ] = 512,
    token_file: Annotated[
        Path | None,
        typer.Option(help="File with a bearer token: requests but /health must send 'Authorization: Bearer <token>'"),
    ] = None,
    direction: Annotated[
        str | None,
        typer.Option(help="Multi-attribute model: its attributes' weights, e.g. 1,0.5 (a request's direction wins)"),
    ] = None,
) -> None:
    """Serve rewards over HTTP: POST /score, POST /get_reward (OpenRLHF), GET /health, GET /info, /docs."""
    settings = {k: v for k, v in locals().items() if k not in ("model", "port", "host") and v is not None}
    from rewardlab.rewards.direction import direction_weights
    from rewardlab.serve.server import ServeConfig, serve

    if direction is not None:
        settings["direction"] = direction_weights(direction)

    config = ServeConfig(**settings)  # the options left are ServeConfig's fields (tile_tokens unset: its default)

    config.check()
    from rewardlab.models.reward_model import saved_model_problem

    if problem := saved_model_problem(model):
        raise FileNotFoundError(f"{model}: {problem}")
    serve(str(model), host=host, port=port, config=config)


@app.command()
@user_errors
def overopt(
    gold: Annotated[Path, typer.Option(help="Gold reward model folder: the reward really wanted")],
    proxy: Annotated[
        list[Path] | None, typer.Option(help="Proxy reward model folder that picks the reply; repeat for an ensemble")
    ] = None,
    output: Annotated[Path, typer.Option(help="Folder for overopt.json, overopt.md and overopt.png")] = Path(
        "runs/overopt"
    ),
    policy: Annotated[str, typer.Option(help="smollm2 or a local causal LM folder")] = "smollm2",
    data: Annotated[str, typer.Option(help="Preference data whose distinct prompts are used")] = "default",
    split: SplitOption = "test",
    prompts: Annotated[int, typer.Option(help="How many distinct prompts")] = 32,
    n: Annotated[int, typer.Option("--n", help="Replies sampled per prompt: best-of-N for every N up to it")] = 64,
    temperature: Annotated[float, typer.Option(help="Sampling temperature")] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per reply at most")] = 64,
    seed: Annotated[int, typer.Option(help="Sampling seed (combined with each prompt)")] = 0,
    chunk: Annotated[int, typer.Option(help="Replies per generate call (memory)")] = 64,
    precision: PrecisionOption = "auto",
    uncertainty_weight: Annotated[float, typer.Option(help="Ensembles: λ of uwo (mean − λ·variance)")] = 1.0,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where sampled replies are cached (default: OUTPUT/generations)")
    ] = None,
) -> None:
    """Best-of-N against proxy reward models, judged by a gold one: the over-optimisation curves vs KL.

    Replies are cached on disk, so a rerun with other reward models samples nothing again.
    """
    from rewardlab.evaluate.data_split import load_pairs
    from rewardlab.policy.evaluation import distinct_prompts
    from rewardlab.sampling.generation import SampleConfig
    from rewardlab.sampling.overopt import OveroptConfig, run_overopt
    from rewardlab.sampling.overopt_report import write_overopt_report

    if prompts < 1:
        raise ValueError(f"--prompts must be at least 1 (got {prompts})")
    sampling = SampleConfig(n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, chunk=chunk)
    sampling.check()
    chosen = distinct_prompts(load_pairs(data, split=split, log=_note), prompts)
    config = OveroptConfig(
        policy=policy,
        gold=str(gold),
        proxies=[str(p) for p in proxy or []],
        prompts=chosen,
        sampling=sampling,
        precision=precision,  # type: ignore[arg-type]  # checked by check()
        uncertainty_weight=uncertainty_weight,
        cache_dir=str(cache_dir or output / "generations"),
        progress=True,
    )
    result = run_overopt(config)
    paths = write_overopt_report(result, output)
    cache = result["cache"]
    out.print(f"{len(chosen)} prompts × {n} replies; {cache['reused_prompts']} prompts read from {cache['path']}")
    for name, curve in result["curves"].items():
        out.print(f"{name}: gold {curve['gold'][0]:.3f} at N=1 → {curve['gold'][-1]:.3f} at N={n}", highlight=False)
    out.print("report: {}, {}, {}".format(*paths))


@app.command("daa-overopt")
@user_errors
def daa_overopt(
    gold: Annotated[Path, typer.Option(help="Gold reward model folder: the reward really wanted")],
    losses: Annotated[str, typer.Option(help="Policy losses, comma-separated; +ra: on reward-augmented pairs")] = (
        "dpo,ipo,slic"
    ),
    betas: Annotated[str, typer.Option(help="β values, comma-separated: one curve per loss and β")] = "0.01,0.1,0.5",
    policy: Annotated[str, typer.Option(help="smollm2 or a local causal LM folder")] = "smollm2",
    data: Annotated[str, typer.Option(help="Preference data file or folder ('default': embedded HH-RLHF)")] = "default",
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
    max_train_pairs: Annotated[int | None, typer.Option(help="Train on the first N training pairs only")] = None,
    steps: Annotated[int, typer.Option(help="Training steps per curve")] = 40,
    eval_every: Annotated[int, typer.Option(help="Measure KL and gold reward every this many steps (and at 0)")] = 10,
    batch_pairs: Annotated[int, typer.Option(help="Pairs per step")] = 8,
    lr: Annotated[float, typer.Option(help="Learning rate")] = 5e-6,
    lora: Annotated[bool, typer.Option("--lora", help="Train LoRA adapters instead of every weight")] = False,
    lora_r: Annotated[int, typer.Option(help="LoRA rank (with --lora)")] = 16,
    max_prompt_tokens: Annotated[int, typer.Option(help="Prompt tokens at most (cut from the left)")] = 256,
    max_reply_tokens: Annotated[int, typer.Option(help="Reply tokens at most in training")] = 128,
    prompts: Annotated[int, typer.Option(help="Distinct held-out prompts sampled at each checkpoint")] = 8,
    samples: Annotated[int, typer.Option(help="Replies per prompt at each checkpoint")] = 4,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per sampled reply at most")] = 48,
    split: Annotated[str, typer.Option(help="Held-out split the prompts come from: test or validation")] = "test",
    seed: Annotated[int, typer.Option(help="Seed of the batches, the adapters and the sampling")] = 0,
    precision: PrecisionOption = "auto",
    output: Annotated[Path, typer.Option(help="Folder for daa_overopt.json, .md and .png")] = Path("runs/daa-overopt"),
) -> None:
    """Gold reward against KL along DPO/IPO/SLiC training at several β (Rafailov et al. 2024), with fits."""
    from rewardlab.policy.daa_overopt import DAAOveroptConfig, run_daa_overopt
    from rewardlab.policy.daa_overopt_report import write_daa_overopt_report
    from rewardlab.policy.lora import LoraSettings
    from rewardlab.policy.trainer import PolicyTrainConfig
    from rewardlab.runs.data import SplitDataConfig

    try:
        beta_values = [float(b) for b in betas.split(",") if b.strip()]
    except ValueError:
        raise ValueError(f"--betas must be numbers separated by commas (got {betas!r})") from None
    train = PolicyTrainConfig(
        steps=steps, batch_pairs=batch_pairs, lr=lr, seed=seed, max_prompt_tokens=max_prompt_tokens,
        max_reply_tokens=max_reply_tokens, precision=precision, cache_dir=str(output / "cache"),
    )  # fmt: skip
    config = DAAOveroptConfig(
        gold=str(gold), policy=policy, losses=[x.strip() for x in losses.split(",") if x.strip()], betas=beta_values,
        data=SplitDataConfig(path=data, columns=columns, skip_bad_rows=skip_bad_rows), max_train_pairs=max_train_pairs,
        train=train, lora=LoraSettings(enabled=lora, r=lora_r, alpha=2.0 * lora_r), eval_every=eval_every,
        prompts=prompts, samples=samples, max_new_tokens=max_new_tokens, seed=seed, split=split,
        gold_precision=precision, progress=True,  # type: ignore[arg-type]  # checked by check()
    )  # fmt: skip
    result = run_daa_overopt(config)
    paths = write_daa_overopt_report(result, output)
    for name, curve in result["curves"].items():
        first, last = curve["points"][0], curve["points"][-1]
        fit = curve["fit"]
        fitted = "no fit" if fit is None else f"fit α {fit['alpha']:.3f}, β {fit['beta']:.3f}"
        out.print(
            f"{name}: gold {first['gold']:.3f} → {last['gold']:.3f} at KL {last['kl']:.3f} ({fitted})", highlight=False
        )
    out.print("report: {}, {}, {}".format(*paths))


@app.command("sample-pairs")
@user_errors
def sample_pairs(
    policy: Annotated[str, typer.Option(help="The policy candidates are sampled from: smollm2 or a causal LM folder")],
    reward_model: Annotated[Path, typer.Option(help="Reward model folder: the tilt exp(r/β) and each pair's label")],
    output: Annotated[Path, typer.Option(help="Where to write the pairs (JSONL that `rewardlab dpo --data` reads)")],
    data: Annotated[str, typer.Option(help="Preference data whose distinct prompts are used")] = "default",
    split: SplitOption = "train",
    prompts: Annotated[int, typer.Option(help="How many distinct prompts")] = 32,
    n: Annotated[int, typer.Option("--n", help="Candidates sampled from the policy per prompt")] = 64,
    accept: Annotated[int, typer.Option(help="Draws of the tilted policy per prompt at most (pairs: half)")] = 8,
    beta: Annotated[float, typer.Option(help="β of π_sft·exp(r/β): large keeps the policy, small the best")] = 0.5,
    temperature: Annotated[float, typer.Option(help="Sampling temperature")] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per reply at most")] = 64,
    seed: Annotated[int, typer.Option(help="Sampling and acceptance seed (combined with each prompt)")] = 0,
    chunk: Annotated[int, typer.Option(help="Replies per generate call (memory)")] = 64,
    precision: PrecisionOption = "auto",
    direction: Annotated[
        str | None,
        typer.Option(help="Multi-attribute reward model: rank along these attribute weights, e.g. 1,0.5 (DPA)"),
    ] = None,
) -> None:
    """DPO pairs by statistical rejection sampling (RSO, Liu et al. 2023): draws of π_sft·exp(r/β), ranked by reward.

    N candidates per prompt are sampled from the policy and scored; rejection sampling accepts up to
    --accept of them as draws of the reward-tilted policy, which are paired as drawn and labelled by
    the reward (each reply's reward kept as chosen_rating / rejected_rating). With --direction and a
    multi-attribute reward model the reward is the attributes' projection on that direction, so DPO on
    the pairs moves the policy toward it (directional rejection-sampling fine-tuning, DPA).
    """
    from rewardlab.atomic import write_text_atomic
    from rewardlab.destinations import check_file_destination
    from rewardlab.evaluate.data_split import load_pairs
    from rewardlab.policy.evaluation import distinct_prompts
    from rewardlab.rewards.direction import direction_weights
    from rewardlab.sampling.generation import SampleConfig
    from rewardlab.sampling.rso_pairs import RSOPairsConfig, build_rso_pairs, pair_rows

    if prompts < 1:
        raise ValueError(f"--prompts must be at least 1 (got {prompts})")
    check_file_destination(output)  # before sampling, not after
    sampling = SampleConfig(n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, chunk=chunk)
    config = RSOPairsConfig(
        policy=policy,
        reward_model=str(reward_model),
        prompts=distinct_prompts(load_pairs(data, split=split, log=_note), prompts),
        sampling=sampling,
        beta=beta,
        accept=accept,
        precision=precision,  # type: ignore[arg-type]  # checked by check()
        progress=True,
        direction=direction_weights(direction),
    )
    config.check()
    result = build_rso_pairs(config)
    write_text_atomic(output, pair_rows(result.pairs))
    s = result.stats
    out.print(f"{s['prompts']} prompts × {n} candidates → {s['pairs']} pairs → {output}", highlight=False)
    out.print(
        f"mean reward: candidates {s['mean_candidate_reward']:.3f}, paired replies {s['mean_paired_reward']:.3f}",
        highlight=False,
    )


@data_app.command("check")
@user_errors
def data_check(
    path: DataArgument,
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Validate a dataset and summarise it: rows, fields, lengths, ties, subsets."""
    from rewardlab.data import ColumnMap, load_preferences, summarize
    from rewardlab.data.summary import summary_tables

    loaded = load_preferences(
        None if path == "default" else path,
        columns=ColumnMap.parse(columns) if columns else None,
        skip_bad_rows=skip_bad_rows,
    )
    summary = summarize(loaded)
    if as_json:
        out.print_json(data=summary)
        return
    counts, lengths, subsets = summary_tables(summary)
    out.print(counts, lengths)
    if subsets is not None:
        out.print(subsets)
    for reason in summary["skipped"]["sample"]:
        out.print(f"skipped: {reason}", markup=False, highlight=False)


@app.command()
def objectives() -> None:
    """List the registered objectives and their options."""
    from rewardlab.objectives import get_objective, objective_names

    _print_methods(objective_names(), get_objective)


@app.command()
def recipes() -> None:
    """List the packaged recipes of `rewardlab train --recipe`, each with what it trains."""
    from rewardlab.runs.recipes import recipe_description, recipe_names

    width = max(map(len, recipe_names()))
    for name in recipe_names():  # one line each, never wrapped: easy to grep
        out.print(f"[bold]{name:<{width}}[/]  {recipe_description(name)}", soft_wrap=True)


@app.command("policy-losses")
def policy_losses() -> None:
    """List the registered policy losses of `rewardlab dpo --loss` and their options."""
    from rewardlab.policy.registry import get_policy_loss, policy_loss_names

    _print_methods(policy_loss_names(), get_policy_loss)


def _print_methods(names: list[str], get: Callable[[str], Any]) -> None:
    """A registry's methods as a table: name, options with their defaults, the one-line summary."""
    # the name is what users type: shown whole, the other columns wrap
    table = Table(Column("name", min_width=max(map(len, names)), no_wrap=True), "options", "what it is")
    for name in names:
        method = get(name)
        table.add_row(name, ", ".join(f"{k}={v}" for k, v in method.options.items()), method.summary)
    out.print(table)
