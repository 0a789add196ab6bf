"""``rewardlab eval`` and ``rewardlab compare`` as library calls: read the data, load the models,
evaluate, and write the report files where asked, so a notebook gets what the command prints.

The keywords and their defaults are the commands' options (``tests/test_evaluate_run.py`` holds them
equal), so ``evaluate_data("model", "pairs.jsonl", split="test")`` is ``rewardlab eval model
pairs.jsonl --split test``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rewardlab.data import ColumnMap, PreferencePair, default_dataset_path, load_preferences
from rewardlab.data.principles import PRINCIPLE_SET, principle_set_path
from rewardlab.data.records import Ranking
from rewardlab.destinations import check_folder_destination
from rewardlab.evaluate import benchmarks
from rewardlab.evaluate.benchmark_report import BenchmarkEval, render_benchmark, write_benchmark_report
from rewardlab.evaluate.by_group import BY
from rewardlab.evaluate.compare import ModelComparison, compare_models
from rewardlab.evaluate.data_split import Log, load_pairs, to_stderr
from rewardlab.evaluate.ensemble_errors import EnsembleErrors, ensemble_errors, render_ensemble_errors_markdown
from rewardlab.evaluate.fused import FusionOptions
from rewardlab.evaluate.pair_checks import PairChecks
from rewardlab.evaluate.pairwise import PairwiseEval
from rewardlab.evaluate.reference_scorers import read_references
from rewardlab.evaluate.report import (
    render_comparison_markdown,
    render_markdown,
    write_comparison_report,
    write_ensemble_errors_report,
    write_report,
)
from rewardlab.evaluate.rewardbench import SectionMap, load_section_map, read_best_of_n
from rewardlab.evaluate.scorers import SCORERS, Comparer, Scorer, ScorerSpec, build_scorer
from rewardlab.evaluate.user_scores import by_group_table
from rewardlab.models.reward_model import RewardModel, inference_copy

FORMATS = ("pairs", "rewardbench", "rewardbench2", "rewardmath", "kwise", "principles")


@dataclass
class EvalOutput:
    """One evaluation: the scorer as the report names it, the data, the result, the files written."""

    name: str
    data: str
    result: PairwiseEval | BenchmarkEval
    report_files: tuple[Path, ...] = ()

    def markdown(self) -> str:
        """The report as ``rewardlab eval`` prints it."""
        if isinstance(self.result, PairwiseEval):
            return render_markdown(self.result, self.name, self.data)
        return render_benchmark(self.result, self.name, self.data)


@dataclass
class ComparisonOutput:
    """Two reward models compared on one data set, and the report files written."""

    comparison: ModelComparison
    model_a: str
    model_b: str
    data: str
    report_files: tuple[Path, ...] = ()

    def markdown(self) -> str:
        """The report as ``rewardlab compare`` prints it."""
        return render_comparison_markdown(self.comparison, self.model_a, self.model_b, self.data)


def evaluate_data(
    model: str | None = None,
    data: str | None = None,
    *,
    report: str | Path | None = None,
    split: str = "all",
    columns: str | None = None,
    skip_bad_rows: bool = False,
    precision: str = "auto",
    data_format: str = "pairs",
    sections: str | Path | None = None,
    tie_credit: float = 0.0,
    scorer: str | None = None,
    policy: str | None = None,
    reference: str | None = None,
    beta: float = 0.1,
    judge: str | None = None,
    principle: str | None = None,
    reasoning: bool = False,
    reasoning_tokens: int = 64,
    temperature: float = 0.0,
    seed: int = 0,
    tools: str | None = None,
    reasoning_style: str | None = None,
    strong: str | None = None,
    weak: str | None = None,
    instruction: str | None = None,
    lm: str | None = None,
    follow_ups: str | Path | None = None,
    url: str | None = None,
    aggregate: str | None = None,
    fit_temperature: str | None = None,
    contrast: str | Path | None = None,
    invariance: bool = False,
    policy_ranking: bool = False,
    ranking_p: float = 0.9,
    fusion: str | None = None,
    fusion_alpha: float = 0.5,
    fusion_top_k: int | None = None,
    fusion_temperature: float = 0.1,
    fusion_split: str = "train",
    fusion_encoder: str = "minilm",
    by: str | None = None,
    groups: str | Path | None = None,
    progress: bool = False,
    log: Log | None = None,
) -> EvalOutput:
    """Evaluate a reward model (``model``) or a scorer (``scorer``, its options as ``rewardlab eval``'s)
    on ``data``; see ``rewardlab eval --help`` for each option. With ``report``, the report files
    are written there (checked first: a report that cannot be written fails before the work, not
    after it). ``log`` receives notes about the data as they happen (default: stderr)."""
    if data is None and data_format == "principles" and (scorer is None or model is None):
        data = PRINCIPLE_SET  # the embedded principle set
    if scorer is None and (model is None or data is None):
        raise ValueError("give MODEL and DATA (or --scorer and DATA)")
    if data is None:
        model, data = None, model  # the scorer's options name its models; the one argument is the data
    if data_format not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)} (got {data_format!r})")
    if data == PRINCIPLE_SET and not Path(data).exists():
        data = str(principle_set_path())
    checks = PairChecks(fit_temperature, Path(contrast) if contrast else None, invariance, policy_ranking, ranking_p)
    if data_format != "pairs" and checks.requested():
        raise ValueError("--fit-temperature, --contrast, --invariance and --policy-ranking apply to --format pairs")
    if policy_ranking and (scorer is None or SCORERS.get(scorer).main != "policy"):
        raise ValueError("--policy-ranking needs --scorer implicit, implicit-sum or implicit-mean (a policy)")
    fused = FusionOptions(fusion, fusion_alpha, fusion_top_k, fusion_temperature, fusion_split, fusion_encoder)
    if fused.problems() or (fusion and policy_ranking):
        raise ValueError("; ".join(fused.problems() or ["--fusion does not apply to --policy-ranking"]))
    if by is not None and by not in BY:
        raise ValueError(f"--by must be annotator or group (got {by!r})")
    if (by is not None and data_format != "pairs") or (groups is not None and by != "group"):
        raise ValueError("--by applies to --format pairs, and --groups to --by group")
    if report:
        check_folder_destination(report)
    source = EvalData(data, columns, skip_bad_rows, split, log)  # type: ignore[arg-type]
    if scorer is None and data_format == "pairs":
        pairs = source.pairs()
        reward_model, resolved = inference_copy(RewardModel.from_pretrained(model), precision)  # type: ignore[arg-type]
        scored, name = fused.apply(reward_model, str(model), resolved, progress=progress, log=log)
        result = checks.run(scored, pairs, *source.where(), resolved, progress=progress, log=log)
        if by is not None:  # a pluralistic model scores each annotator's pairs for that annotator
            own = reward_model if scored is reward_model else None  # a fused reward is the population's
            table = by_group_table(result, pairs, by, groups, own, precision=resolved, progress=progress)
            result.extras["by_group"] = table
        return _written(EvalOutput(name, source.data, result), report, pairs)
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
        tools=tools,
        reasoning_style=reasoning_style,
        strong=strong,
        weak=weak,
        instruction=instruction,
        lm=lm,
        follow_ups=str(follow_ups) if follow_ups else None,
        url=url,
        aggregate=aggregate,
        precision=precision,  # type: ignore[arg-type]  # checked by build_scorer
    )
    errors = spec.problems() + format_errors(data_format, split, skip_bad_rows, sections, tie_credit)
    if errors:
        raise ValueError("; ".join(errors))
    column_map = source.column_map()  # a bad --columns fails here, before any model loads
    if spec.needs_references:
        spec.references = read_references(source.file(), column_map)
    built, name = fused.apply(build_scorer(spec), spec.describe(), progress=progress, log=log)
    if data_format == "pairs":
        pairs = source.pairs()
        result = checks.run(built, pairs, *source.where(), progress=progress, log=log)
        if by is not None:
            result.extras["by_group"] = by_group_table(result, pairs, by, groups)
        return _written(EvalOutput(name, source.data, result), report, pairs)
    return _written(EvalOutput(name, source.data, _benchmark(built, data_format, source, sections, tie_credit)), report)


@dataclass(frozen=True)
class EvalData:
    """Where an evaluation's data comes from, read the same way by every format and check."""

    data: str
    columns: str | None = None
    skip_bad_rows: bool = False
    split: str = "all"
    log: Log | None = None

    def where(self) -> tuple[str, str | None, bool, str]:
        """``PairChecks.run``'s description of the data: a temperature is fitted on another split of it."""
        return self.data, self.columns, self.skip_bad_rows, self.split

    def pairs(self) -> list[PreferencePair]:
        return load_pairs(
            self.data, columns=self.columns, skip_bad_rows=self.skip_bad_rows, split=self.split, log=self.log
        )

    def column_map(self) -> ColumnMap | None:
        return ColumnMap.parse(self.columns) if self.columns else None

    def file(self) -> str:
        """The data file, the embedded one for 'default' (read by benchmark and reference readers)."""
        return str(default_dataset_path()) if self.data == "default" else self.data

    def rankings(self) -> list[Ranking]:
        """The k-wise rankings of the whole file (``split`` is for pairs only)."""
        path = None if self.data == "default" else self.data
        loaded = load_preferences(path, columns=self.column_map(), skip_bad_rows=self.skip_bad_rows)
        if loaded.skipped:
            (self.log or to_stderr)(loaded.skip_summary())
        return loaded.rankings


def _benchmark(
    scorer: Scorer | Comparer, data_format: str, source: EvalData, sections: str | Path | None, tie_credit: float
) -> BenchmarkEval:
    """A benchmark format's evaluation: RewardBench sections, RewardBench 2 best-of-N, k-wise rankings,
    or principle flip-sets."""
    if data_format == "rewardbench":
        section_map = load_section_map(sections) if sections else SectionMap.default()
        return benchmarks.evaluate_rewardbench(scorer, source.pairs(), section_map, tie_credit=tie_credit)
    if data_format == "rewardbench2":
        return benchmarks.evaluate_rewardbench2(scorer, read_best_of_n(source.file(), source.column_map()))
    if data_format == "rewardmath":
        return benchmarks.evaluate_rewardmath(scorer, read_best_of_n(source.file(), source.column_map()))
    if data_format == "principles":
        return benchmarks.evaluate_principles(scorer, source.pairs())
    return benchmarks.evaluate_kwise(scorer, source.rankings())


def format_errors(
    data_format: str, split: str, skip_bad_rows: bool, sections: str | Path | None, tie_credit: float
) -> list[str]:
    """Options given that the data format does not take, all at once."""
    errors = []
    if data_format in ("rewardbench2", "rewardmath", "kwise") and split != "all":
        errors.append(f"--split applies to pairs only (--format {data_format} reads the whole file)")
    if data_format in ("rewardbench2", "rewardmath") and skip_bad_rows:
        errors.append(f"--skip-bad-rows is not available with --format {data_format}")
    if (sections is not None or tie_credit != 0.0) and data_format != "rewardbench":
        errors.append("--sections and --tie-credit apply to --format rewardbench only")
    return errors


def compare_data(
    model_a: str | Path,
    model_b: str | Path,
    data: str = "default",
    *,
    report: str | Path | None = None,
    split: str = "all",
    columns: str | None = None,
    skip_bad_rows: bool = False,
    precision: str = "auto",
    progress: bool = False,
    log: Log | None = None,
) -> ComparisonOutput:
    """Is reward model A better than B on ``data``? What ``rewardlab compare`` prints and writes."""
    if report:
        check_folder_destination(report)
    pairs = load_pairs(data, columns=columns, skip_bad_rows=skip_bad_rows, split=split, log=log)
    if not pairs:
        raise ValueError(f"{data}: no pairs to compare (split {split!r})")
    a, b = RewardModel.from_pretrained(model_a), RewardModel.from_pretrained(model_b)
    comparison = compare_models(a, b, pairs, precision=precision, progress=progress)  # type: ignore[arg-type]
    output = ComparisonOutput(comparison, str(model_a), str(model_b), data)
    if report:
        output.report_files = write_comparison_report(comparison, report, output.model_a, output.model_b, data)
    return output


@dataclass
class EnsembleErrorsOutput:
    """Several reward models' errors on one data set, as one ensemble, and the report files written."""

    result: EnsembleErrors
    members: list[str]
    data: str
    report_files: tuple[Path, ...] = ()

    def markdown(self) -> str:
        """The report as ``rewardlab ensemble-errors`` prints it."""
        return render_ensemble_errors_markdown(self.result, self.members, self.data)


def ensemble_errors_data(
    members: list[str | Path],
    data: str = "default",
    *,
    report: str | Path | None = None,
    split: str = "all",
    columns: str | None = None,
    skip_bad_rows: bool = False,
    precision: str = "auto",
    uncertainty_weight: float = 1.0,
    progress: bool = False,
    log: Log | None = None,
) -> EnsembleErrorsOutput:
    """Each member's errors, the errors they share, and the ensemble's accuracy (``evaluate/ensemble_errors.py``).

    Members are loaded one at a time; each is standardised with its saved reward statistics, or,
    when one has none, all are aggregated raw with a ``RawEnsembleWarning`` (the rule of
    ``RewardEnsemble``).
    """
    from types import SimpleNamespace

    import numpy as np

    from rewardlab.models.ensemble import member_statistics

    if len(members) < 2:
        raise ValueError(f"give at least two reward models to compare as an ensemble (got {len(members)})")
    if uncertainty_weight < 0:
        raise ValueError(f"--uncertainty-weight must be ≥ 0 (got {uncertainty_weight})")
    if report:
        check_folder_destination(report)
    pairs = [
        p for p in load_pairs(data, columns=columns, skip_bad_rows=skip_bad_rows, split=split, log=log) if not p.tie
    ]
    if not pairs:
        raise ValueError(f"{data}: no pairs with a labelled order (split {split!r})")
    prompts = [p.prompt for p in pairs] + [p.prompt_of_rejected for p in pairs]
    replies = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    scores, loaded = [], []
    for path in members:
        model = RewardModel.from_pretrained(path)
        if model.info.scores_pairs or model.info.head != "reward":
            raise ValueError(f"{path}: ensemble members must be scalar reward models (head 'reward')")
        scores.append(model.score(prompts, replies, precision=precision, progress=progress))  # type: ignore[arg-type]
        loaded.append(SimpleNamespace(info=model.info))  # its statistics; the weights are freed
        del model
    names = [str(m) for m in members]
    statistics = member_statistics(loaded, names)  # type: ignore[arg-type]
    table = np.asarray(scores, dtype=np.float64)
    result = ensemble_errors(table[:, : len(pairs)], table[:, len(pairs) :], statistics, uncertainty_weight)
    output = EnsembleErrorsOutput(result, names, data)
    if report:
        output.report_files = write_ensemble_errors_report(result, report, names, data)
    return output


def _written(output: EvalOutput, report: str | Path | None, pairs: list[PreferencePair] | None = None) -> EvalOutput:
    """``output`` with its report files written to ``report``, if given (``pairs``: the evaluated
    pairs, whose text excerpts go into ``predictions.jsonl`` and the page's wrong pairs)."""
    if report:
        if isinstance(output.result, PairwiseEval):
            output.report_files = write_report(output.result, report, output.name, output.data, pairs)
        else:
            output.report_files = write_benchmark_report(output.result, report, output.name, output.data)
    return output
