"""Commands that learn: ``train``, ``cv``, ``dpo``, ``cross-dataset``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rewardlab.cli.base import app, out, user_errors
from rewardlab.cli.options import DATA_HELP, OverwriteRunOption, PrintConfigOption


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
    overwrite: OverwriteRunOption = False,
    print_config: PrintConfigOption = False,
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
                ece = f", ECE {by_source.ece[name]:.4f}" if name in by_source.ece else ""
                out.print(f"  {name}: {e.accuracy:.4f} (95 % CI {e.ci_low:.4f}–{e.ci_high:.4f}, n={e.n}){ece}")
            out.print(f"  mean over {len(by_source.per_source)} sources: {by_source.mean_accuracy:.4f}")
        if (estimate := result.test.extras.get("cross_validated")) is not None:
            m = estimate["mean"]
            out.print(
                f"the {estimate['recipe']} recipe, {m['k']}-fold cross-validated: [bold]{m['mean']:.4f}[/] "
                f"(95 % CI {m['low']:.4f}–{m['high']:.4f} across folds; measured {estimate['measured']['date']})"
            )
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
    overwrite: OverwriteRunOption = False,
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
    if result is None:  # a process of a multi-process launch other than the main one, which reports
        return
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
