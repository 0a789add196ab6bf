"""The ``rewardlab`` command line: train, dpo, eval, compare, score, serve, overopt and data check."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

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
    """Turn a user's mistake (bad data, config, path) into one red line and exit code 2, not a traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from rewardlab.data.records import DataError
        from rewardlab.training.config import ConfigError
        from rewardlab.training.trainer import RunExists

        try:
            return command(*args, **kwargs)
        except (DataError, ConfigError, RunExists, FileNotFoundError, ValueError) as e:
            console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
            raise typer.Exit(2) from None

    return run


@app.callback()
def quiet_libraries() -> None:
    """rewardlab draws its own progress bars and messages; the libraries' own would repeat them."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


ColumnsOption = Annotated[
    str | None,
    typer.Option(help="Where your data keeps each field, as name=field pairs, e.g. prompt=question,chosen=response_j"),
]
DataArgument = Annotated[str, typer.Argument(help="Preference data file or folder; 'default' for the embedded data")]
SplitOption = Annotated[str, typer.Option(help="all, or train/validation/test of the default seeded split")]
PrecisionOption = Annotated[str, typer.Option(help="auto (bf16 where the CPU/GPU has it), bf16 or fp32")]
SCORER_NAMES = "reward-model, implicit, implicit-sum, implicit-mean, judge, bleu, rouge-l, cdr, flr, remote"
"""``evaluate.scorers.SCORER_KINDS``, written out so that ``--help`` needs no import of torch."""
SkipOption = Annotated[
    bool, typer.Option("--skip-bad-rows", help="Skip invalid rows (counted and reported) instead of failing")
]


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
@user_errors
def train(
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Config overrides: key.sub=value, e.g. optim.lr=1e-5")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file")] = None,
    data: Annotated[str | None, typer.Option(help="Preference data file or folder (default: embedded HH-RLHF)")] = None,
    backbone: Annotated[str | None, typer.Option(help="minilm, smollm2, or a local model folder")] = None,
    output: Annotated[Path | None, typer.Option(help="Output folder for the model, logs and report")] = None,
    objective: Annotated[str | None, typer.Option(help="Objective name (see `rewardlab objectives`)")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --output from its last checkpoint")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous run in --output")] = False,
) -> None:
    """Train a reward model, then evaluate it on the held-out test split."""
    from rewardlab.training.config import load_config
    from rewardlab.training.trainer import train as run_training

    shortcuts = {"data.path": data, "model.backbone": backbone, "output_dir": output, "objective.name": objective}
    items = [f"{k}={v}" for k, v in shortcuts.items() if v is not None] + list(overrides or [])
    result = run_training(load_config(config, items), resume=resume, overwrite=overwrite)
    if result.test is not None:
        o = result.test.overall
        out.print(f"held-out accuracy: [bold]{o.accuracy:.4f}[/] (95 % CI {o.ci_low:.4f}–{o.ci_high:.4f}, n={o.n})")
    out.print(f"model:  {result.model_dir}")
    if result.report_dir:
        out.print(f"report: {result.report_dir / 'eval.md'}")
    out.print(f"time: {result.seconds:.0f} s, {result.steps} steps, peak memory {result.peak_rss_mb:.0f} MB")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
@user_errors
def dpo(
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Config overrides: key.sub=value, e.g. train.steps=50 train.loss_args.beta=0.2"),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file")] = None,
    data: Annotated[str | None, typer.Option(help="Preference data file or folder (default: embedded HH-RLHF)")] = None,
    policy: Annotated[str | None, typer.Option(help="smollm2 (default) or a local causal LM folder")] = None,
    output: Annotated[Path | None, typer.Option(help="Output folder for the policy, metrics and report")] = None,
    loss: Annotated[
        str | None, typer.Option(help="Policy loss: dpo (default), ipo, simpo, ... (see rewardlab.policy)")
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
    out.print(f"policy: {result.policy_dir}")
    out.print(f"report: {result.output_dir / 'report.md'}")


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
        typer.Argument(help="Data file or folder; 'default' for the embedded data", show_default=False),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Folder for the report (eval, rewardbench, ... .json/.md)")
    ] = None,
    split: SplitOption = "all",
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
    precision: PrecisionOption = "auto",
    data_format: Annotated[
        str, typer.Option("--format", help="pairs, rewardbench (sections), rewardbench2 (best-of-N, Ties) or kwise")
    ] = "pairs",
    sections: Annotated[
        Path | None, typer.Option(help="RewardBench section map (JSON); default: RewardBench v1's")
    ] = None,
    tie_credit: Annotated[
        float, typer.Option(help="RewardBench: credit of an exact tie in score (RewardBench itself gives 0)")
    ] = 0.5,
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
) -> None:
    """Accuracy with 95 % bootstrap CIs of a reward model or any scorer, on pairs or benchmark formats.

    Plain pairs report accuracy, per-subset accuracy, margins, calibration (after the model's saved
    temperature, or one fitted with --fit-temperature) and length bias, and on request contrast
    consistency, invariance and policy ranking; --format rewardbench adds section scores,
    rewardbench2 best-of-N and Ties, kwise rankings.
    """
    from rewardlab.evaluate.scorers import ScorerSpec

    if data is None:
        if scorer is None:
            raise ValueError("give MODEL and DATA (or --scorer and DATA)")
        model, data = None, model  # type: ignore[assignment]
    if data_format not in ("pairs", "rewardbench", "rewardbench2", "kwise"):
        raise ValueError(f"--format must be pairs, rewardbench, rewardbench2 or kwise (got {data_format!r})")
    checks = PairChecks(fit_temperature, contrast, invariance, policy_ranking, ranking_p)
    if data_format != "pairs" and checks.requested():
        raise ValueError("--fit-temperature, --contrast, --invariance and --policy-ranking apply to --format pairs")
    if policy_ranking and not (scorer or "").startswith("implicit"):
        raise ValueError("--policy-ranking needs --scorer implicit, implicit-sum or implicit-mean (a policy)")
    if scorer is None and data_format == "pairs":
        _evaluate_reward_model(model, data, report, split, columns, skip_bad_rows, precision, checks)
        return
    spec = ScorerSpec(
        kind=scorer or "reward-model",
        model=model,
        policy=policy,
        reference=reference,
        beta=beta,
        judge=judge,
        principle=principle,
        reasoning=reasoning,
        reasoning_tokens=reasoning_tokens,
        temperature=temperature,
        seed=seed,
        strong=strong,
        weak=weak,
        instruction=instruction,
        lm=lm,
        follow_ups=str(follow_ups) if follow_ups else None,
        url=url,
        precision=precision,  # type: ignore[arg-type]
    )
    _evaluate_scorer(spec, data, report, split, columns, skip_bad_rows, data_format, sections, tie_credit, checks)


@dataclass
class PairChecks:
    """What ``eval`` checks beside accuracy on plain pairs (see its options)."""

    fit_temperature: str | None = None
    contrast: Path | None = None
    invariance: bool = False
    policy_ranking: bool = False
    ranking_p: float = 0.9

    def requested(self) -> bool:
        return bool(self.fit_temperature or self.contrast or self.invariance or self.policy_ranking)

    def run(
        self, scorer: Any, pairs: list, data: str, columns: str | None, skip: bool, split: str, precision: str = "auto"
    ) -> Any:
        """Evaluate ``pairs`` with ``scorer`` (a reward model or any scorer) and run the checks asked for."""
        from rewardlab.evaluate.consistency import evaluate_contrast, invariance_checks, read_contrast_pairs
        from rewardlab.evaluate.pairwise import evaluate_pairs, pair_scores
        from rewardlab.evaluate.scorers import reward_model_scorer
        from rewardlab.models.reward_model import RewardModel

        if self.fit_temperature == split and split != "all":
            raise ValueError(f"--fit-temperature {split} is the split being evaluated; fit on another one")
        contrast_pairs = read_contrast_pairs(self.contrast) if self.contrast else None
        as_scorer = reward_model_scorer(scorer, precision) if isinstance(scorer, RewardModel) else scorer
        validation = None
        if self.fit_temperature:
            fit_on = self.fit_temperature
            is_split = fit_on in ("train", "validation", "test")
            fit_pairs = _load_pairs(data if is_split else fit_on, columns, skip, fit_on if is_split else "all")
            validation = pair_scores(as_scorer, fit_pairs)
        if self.policy_ranking:
            result, ranking = _with_policy_ranking(scorer, pairs, self.ranking_p, validation)
            result.extras["policy_ranking"] = ranking
        else:
            result = evaluate_pairs(scorer, pairs, precision=precision, progress=True, validation_scores=validation)
        if contrast_pairs is not None:
            result.extras["contrast"] = evaluate_contrast(as_scorer, contrast_pairs)
        if self.invariance:
            result.extras["invariance"] = invariance_checks(as_scorer, pairs, batch_size=1)
        return result


def _with_policy_ranking(scorer: Any, pairs: list, p: float, validation: Any) -> tuple[Any, Any]:
    """An implicit-reward scorer's evaluation and its policy's ranking accuracy (Chen et al. 2024),
    idealised with its reference, both from one computation of the log-probabilities."""
    from rewardlab.evaluate.pairwise import summarise_scores
    from rewardlab.evaluate.policy_ranking import ranking_output

    prompts = [x.prompt for x in pairs]
    chosen = scorer.reply_logps(prompts, [x.chosen for x in pairs])
    rejected = scorer.reply_logps(prompts, [x.rejected for x in pairs])
    rewards = scorer.rewards(chosen), scorer.rewards(rejected)
    result = summarise_scores(pairs, *rewards, precision=scorer.precision, validation_scores=validation)
    reference = (chosen.reference, rejected.reference) if chosen.reference is not None else None
    return result, ranking_output(chosen.policy, rejected.policy, reference, p=p, beta=scorer.beta)


def _evaluate_reward_model(
    model: str,
    data: str,
    report: Path | None,
    split: str,
    columns: str | None,
    skip: bool,
    precision: str,
    checks: PairChecks,
) -> None:
    from rewardlab.evaluate.report import render_markdown, write_report
    from rewardlab.models.reward_model import RewardModel, inference_copy

    pairs = _load_pairs(data, columns, skip, split)
    reward_model, resolved = inference_copy(RewardModel.from_pretrained(model), precision)  # type: ignore[arg-type]
    result = checks.run(reward_model, pairs, data, columns, skip, split, resolved)
    out.print(render_markdown(result, str(model), data), markup=False, highlight=False)
    if report:
        out.print("report: {}, {}, {}".format(*write_report(result, report, str(model), data)))


def _evaluate_scorer(
    spec: Any,
    data: str,
    report: Path | None,
    split: str,
    columns: str | None,
    skip: bool,
    data_format: str,
    sections: Path | None,
    tie_credit: float,
    checks: PairChecks,
) -> None:
    from rewardlab.data import ColumnMap, load_preferences
    from rewardlab.evaluate import benchmarks
    from rewardlab.evaluate.benchmark_report import render_benchmark, write_benchmark_report
    from rewardlab.evaluate.reference_scorers import read_references
    from rewardlab.evaluate.report import render_markdown, write_report
    from rewardlab.evaluate.rewardbench import SectionMap, load_section_map, read_best_of_n
    from rewardlab.evaluate.scorers import build_scorer

    errors = spec.errors()
    if data_format in ("rewardbench2", "kwise") and split != "all":
        errors.append(f"--split applies to pairs only (--format {data_format} reads the whole file)")
    if data_format == "rewardbench2" and skip:
        errors.append("--skip-bad-rows is not available with --format rewardbench2")
    if (sections is not None or tie_credit != 0.5) and data_format != "rewardbench":
        errors.append("--sections and --tie-credit apply to --format rewardbench only")
    if errors:
        raise ValueError("; ".join(errors))
    column_map = ColumnMap.parse(columns) if columns else None
    path = None if data == "default" else data
    if spec.kind in ("bleu", "rouge-l"):
        spec.references = read_references(path or _default_data(), column_map)
    scorer = build_scorer(spec)
    name = _describe_spec(spec)
    if data_format == "pairs":
        result = checks.run(scorer, _load_pairs(data, columns, skip, split), data, columns, skip, split)
        out.print(render_markdown(result, name, data), markup=False, highlight=False)
        if report:
            out.print("report: {}, {}, {}".format(*write_report(result, report, name, data)))
        return
    if data_format == "rewardbench":
        section_map = load_section_map(sections) if sections else SectionMap.default()
        outcome = benchmarks.evaluate_rewardbench(
            scorer, _load_pairs(data, columns, skip, split), section_map, tie_credit=tie_credit
        )
    elif data_format == "rewardbench2":
        outcome = benchmarks.evaluate_rewardbench2(scorer, read_best_of_n(path or _default_data(), column_map))
    else:
        loaded = load_preferences(path, columns=column_map, skip_bad_rows=skip)
        if loaded.skipped:
            console.print(loaded.skip_summary(), markup=False)
        outcome = benchmarks.evaluate_kwise(scorer, loaded.rankings)
    out.print(render_benchmark(outcome, name, data), markup=False, highlight=False)
    if report:
        out.print("report: {}, {}".format(*write_benchmark_report(outcome, report, name, data)))


def _default_data() -> str:
    from rewardlab.data import default_dataset_path

    return str(default_dataset_path())


def _describe_spec(spec: Any) -> str:
    """The scorer as the report names it: a model folder, or the kind with its models and options."""
    spec = spec.resolved()
    if spec.kind == "reward-model":
        return str(spec.model)
    fields = {
        "implicit": ("policy", "reference", "beta"),
        "implicit-sum": ("policy", "beta"),
        "implicit-mean": ("policy", "beta"),
        "judge": ("judge", "principle", "reasoning"),
        "cdr": ("strong", "weak", "instruction"),
        "flr": ("lm", "follow_ups"),
        "remote": ("url",),
    }.get(spec.kind, ())
    shown = [f"{k}={getattr(spec, k)}" for k in fields if getattr(spec, k) not in (None, False)]
    if spec.kind == "judge" and spec.judge is None:
        shown.insert(0, "judge=smollm2")
    return f"{spec.kind}({', '.join(shown)})"


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
    from rewardlab.evaluate.compare import compare_models
    from rewardlab.evaluate.report import render_comparison_markdown, write_comparison_report
    from rewardlab.models.reward_model import RewardModel

    pairs = _load_pairs(data, columns, skip_bad_rows, split)
    if not pairs:
        raise ValueError(f"{data}: no pairs to compare (split {split!r})")
    a, b = RewardModel.from_pretrained(model_a), RewardModel.from_pretrained(model_b)
    comparison = compare_models(a, b, pairs, precision=precision, progress=True)
    out.print(render_comparison_markdown(comparison, str(model_a), str(model_b), data), markup=False, highlight=False)
    if report:
        json_path, md_path = write_comparison_report(comparison, report, str(model_a), str(model_b), data)
        out.print(f"report: {json_path}, {md_path}")


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
    from rewardlab.atomic import write_text_atomic
    from rewardlab.data.scoring import read_scoring_rows
    from rewardlab.models.ensemble import RewardEnsemble
    from rewardlab.models.reward_model import RewardModel

    rows = read_scoring_rows(input, prompt_field, response_field)
    prompts, responses = [r.prompt for r in rows], [r.response for r in rows]
    weights = _parse_direction(direction) if direction else None
    options = {
        k: v for k, v in (("aggregation", aggregation), ("uncertainty_weight", uncertainty_weight)) if v is not None
    }
    uncertainty = None
    if member:
        ensemble = RewardEnsemble.from_pretrained([model, *member], **options)
        rewards, uncertainty = ensemble.score_with_uncertainty(prompts, responses, precision=precision, progress=True)
    else:
        reward_model = RewardModel.from_pretrained(model)
        for key, value in options.items():
            setattr(reward_model.info, key, value)
        if reward_model.info.head == "ensemble":
            rewards, uncertainty = reward_model.score_with_uncertainty(prompts, responses, precision=precision)
        else:
            rewards = reward_model.score(prompts, responses, precision=precision, progress=True, direction=weights)
    extra = [{"uncertainty": u} for u in uncertainty] if uncertainty is not None else [{}] * len(rows)
    lines = [
        json.dumps({**r.row, "reward": value, **more}, ensure_ascii=False)
        for r, value, more in zip(rows, rewards, extra, strict=True)
    ]
    write_text_atomic(output, "\n".join(lines) + "\n")
    out.print(f"scored {len(rows)} rows → {output}")


def _parse_direction(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--direction must be numbers separated by commas, e.g. 1,0.5 (got {text!r})") from None


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
) -> None:
    """Serve rewards over HTTP: POST /score, POST /get_reward (OpenRLHF), GET /health, GET /info, /docs."""
    from rewardlab.serve.server import ServeConfig, serve

    config = ServeConfig(
        max_batch_items=max_batch_items,
        max_wait_ms=max_wait_ms,
        max_items=max_items,
        max_text_chars=max_text_chars,
        max_body_bytes=max_body_bytes,
        precision=precision,  # type: ignore[arg-type]  # checked by validate()
        warmup=warmup,
        **({} if tile_tokens is None else {"tile_tokens": tile_tokens}),
    )
    config.validate()
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
    from rewardlab.policy.evaluation import distinct_prompts
    from rewardlab.sampling.generation import SampleConfig
    from rewardlab.sampling.overopt import OveroptConfig, run_overopt
    from rewardlab.sampling.overopt_report import write_overopt_report

    if prompts < 1:
        raise ValueError(f"--prompts must be at least 1 (got {prompts})")
    sampling = SampleConfig(n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, chunk=chunk)
    sampling.validate()
    chosen = distinct_prompts(_load_pairs(data, None, False, split), prompts)
    config = OveroptConfig(
        policy=policy,
        gold=str(gold),
        proxies=[str(p) for p in proxy or []],
        prompts=chosen,
        sampling=sampling,
        precision=precision,  # type: ignore[arg-type]  # checked by errors()
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

    loaded = load_preferences(
        None if path == "default" else path,
        columns=ColumnMap.parse(columns) if columns else None,
        skip_bad_rows=skip_bad_rows,
    )
    summary = summarize(loaded)
    if as_json:
        out.print_json(data=summary)
        return
    counts = Table(title=f"{summary['path']}", show_header=False, title_justify="left")
    for key in (
        "rows",
        "pairs",
        "fields",
        "prompt_forms",
        "ties",
        "rankings",
        "groups",
        "with_strength",
        "with_ratings",
        "with_margin",
        "with_weight",
        "with_subset",
        "with_annotator",
        "duplicate_pairs",
        "distinct_prompts",
    ):
        value = summary[key]
        counts.add_row(key.replace("_", " "), value if isinstance(value, str) else json.dumps(value))
    counts.add_row("skipped rows", str(summary["skipped"]["count"]))
    lengths = Table("characters", "min", "median", "mean", "p95", "max", title_justify="left")
    for name, stats in summary["lengths"].items():
        lengths.add_row(name, *(str(stats.get(k, "")) for k in ("min", "median", "mean", "p95", "max")))
    out.print(counts, lengths)
    if summary["subsets"]:
        subsets = Table("subset", "pairs")
        for name, n in summary["subsets"].items():
            subsets.add_row(name, str(n))
        out.print(subsets)
    for reason in summary["skipped"]["sample"]:
        out.print(f"skipped: {reason}", markup=False, highlight=False)


@app.command()
def objectives() -> None:
    """List the registered objectives and their options."""
    from rewardlab.objectives import get_objective, objective_names

    names = objective_names()
    # the name is what users type: shown whole, the other columns wrap
    table = Table(Column("name", min_width=max(map(len, names)), no_wrap=True), "options", "what it is")
    for name in names:
        objective = get_objective(name)
        table.add_row(name, ", ".join(f"{k}={v}" for k, v in objective.options.items()), objective.summary)
    out.print(table)


def _load_pairs(data: str, columns: str | None, skip_bad_rows: bool, split: str):
    from rewardlab.data import ColumnMap, load_preferences, split_pairs
    from rewardlab.training.config import DataConfig

    loaded = load_preferences(
        None if data == "default" else data,
        columns=ColumnMap.parse(columns) if columns else None,
        skip_bad_rows=skip_bad_rows,
    )
    if loaded.skipped:
        console.print(loaded.skip_summary(), markup=False)
    if split == "all":
        return loaded.pairs
    if split not in ("train", "validation", "test"):
        raise ValueError(f"--split must be all, train, validation or test (got {split!r})")
    d = DataConfig()
    splits = split_pairs(loaded.pairs, validation=d.validation_fraction, test=d.test_fraction, seed=d.split_seed)
    return getattr(splits, split)
