"""A pretraining-with-feedback run: score the corpus once, train each objective, compare with MLE.

Every objective trains from the same initial weights on the same blocks order for the same steps;
the report gives each one's held-out clean loss and its samples' undesirable rate next to plain
MLE's, the two axes of the paper's alignment-capability trade-off (Korbak et al. 2023, fig. 2).
Each objective's run lives in ``<output>/<objective>/`` (checkpoint/, model/, samples.jsonl), and
the segment scores in ``<output>/segment_scores.json``, so a rerun resumes and scores nothing twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from safetensors.torch import save_file
from transformers import PreTrainedTokenizerBase

from rewardlab.atomic import atomic_directory, write_jsonl, write_text_atomic
from rewardlab.evaluate.scorers import Scorer
from rewardlab.pretrain.blocks import Blocks, document_score, encode_documents, keep_documents
from rewardlab.pretrain.corpus import Document, read_corpus, split_documents
from rewardlab.pretrain.evaluation import UndesirableRate, clean_loss, sample_documents, undesirable_rate
from rewardlab.pretrain.model import MODEL_SIZES, PretrainLM, build_pretrain_lm
from rewardlab.pretrain.objectives import PRETRAIN_OBJECTIVES, get_pretrain_objective
from rewardlab.pretrain.scoring import percentile_threshold, score_segments
from rewardlab.pretrain.trainer import PretrainConfig, train_pretrain
from rewardlab.runs.config import Checked


@dataclass
class PretrainRunConfig(Checked):
    corpus: str = "hh-harmless"
    """A corpus file (rows with ``text``, or ``chosen``/``rejected``) or the packaged ``hh-harmless``."""
    max_documents: int | None = None
    size: str = "tiny"
    """Model size: tiny, small or base (``rewardlab.pretrain.model.MODEL_SIZES``)."""
    block_tokens: int = 128
    bad_percentile: float = 10.0
    """Segments scoring below this percentile of the training segments' scores are bad."""
    test_fraction: float = 0.1
    samples: int = 128
    """Unprompted samples per objective, judged by the scorer."""
    sample_tokens: int = 64
    mle_points: int = 4
    """MLE is also measured (clean loss, undesirable rate) at this many evenly spaced steps, the last being
    its end: the curve each objective is compared with at equal clean loss."""
    split_seed: int = 0
    train: PretrainConfig = field(default_factory=PretrainConfig)
    """Training settings; its ``objective_args`` are shared: each objective takes the options it has."""

    def problems(self) -> list[str]:
        found = replace(self.train, objective_args={}).problems()
        known = {o for name in PRETRAIN_OBJECTIVES.names() for o in PRETRAIN_OBJECTIVES.get(name).options}
        found += [
            f"no objective has the option {k!r} (options: {', '.join(sorted(known))})"
            for k in self.train.objective_args
            if k not in known
        ]
        if self.mle_points < 1:
            found.append(f"mle_points must be >= 1 (got {self.mle_points})")
        if self.size not in MODEL_SIZES:
            found.append(f"size must be one of {', '.join(MODEL_SIZES)} (got {self.size!r})")
        if not 0.0 < self.bad_percentile < 100.0:
            found.append(f"bad_percentile must be in (0, 100) (got {self.bad_percentile})")
        if not 0.0 < self.test_fraction < 1.0:
            found.append(f"test_fraction must be in (0, 1) (got {self.test_fraction})")
        for name in ("block_tokens", "samples", "sample_tokens"):
            if getattr(self, name) < 2:
                found.append(f"{name} must be >= 2 (got {getattr(self, name)})")
        return found


@dataclass(frozen=True)
class ScoredCorpus:
    """The split corpus with each segment's score, the segment threshold and filtering's document threshold."""

    train: list[Document]
    test: list[Document]
    train_scores: list[list[float]]
    test_scores: list[list[float]]
    threshold: float
    document_threshold: float

    @property
    def bad_share(self) -> float:
        flat = [s for doc in self.train_scores for s in doc]
        return sum(s < self.threshold for s in flat) / len(flat)


def score_corpus(
    config: PretrainRunConfig,
    documents: list[Document],
    scorer: Scorer,
    scorer_name: str,
    cache_path: Path | None,
    progress: bool = False,
) -> ScoredCorpus:
    train, test = split_documents(documents, config.test_fraction, config.split_seed)
    texts = [seg for doc in documents for seg in doc.segments]
    flat = dict(zip(texts, score_segments(scorer, texts, scorer_name, cache_path, progress=progress), strict=True))
    train_scores = [[flat[s] for s in d.segments] for d in train]
    test_scores = [[flat[s] for s in d.segments] for d in test]
    threshold = percentile_threshold([s for doc in train_scores for s in doc], config.bad_percentile)
    doc_threshold = percentile_threshold([document_score(s) for s in train_scores], config.bad_percentile)
    return ScoredCorpus(train, test, train_scores, test_scores, threshold, doc_threshold)


def objective_blocks(
    tokenizer: PreTrainedTokenizerBase, corpus: ScoredCorpus, objective: str, block_tokens: int
) -> tuple[Blocks, Blocks]:
    """(train, held-out) blocks in the objective's data format (held-out: never filtered)."""
    data = get_pretrain_objective(objective).data
    docs, scores = corpus.train, corpus.train_scores
    if data == "filtered":
        docs, scores = keep_documents(docs, scores, corpus.document_threshold)
    held_format = "conditional" if data == "conditional" else "plain"
    return (
        encode_documents(tokenizer, docs, scores, corpus.threshold, block_tokens, data),
        encode_documents(tokenizer, corpus.test, corpus.test_scores, corpus.threshold, block_tokens, held_format),
    )


@dataclass(frozen=True)
class CurvePoint:
    step: int
    clean_loss: float
    undesirable_rate: float


@dataclass(frozen=True)
class ObjectiveResult:
    objective: str
    clean_loss: float
    undesirable: UndesirableRate
    train_blocks: int
    final_train_loss: float
    seconds: float
    curve: list[CurvePoint] = field(default_factory=list)
    """MLE only: its clean loss and undesirable rate along training (``mle_points``)."""


def mle_rate_at(curve: Sequence[CurvePoint], loss: float) -> float | None:
    """MLE's undesirable rate at the clean loss ``loss``, interpolated linearly along its curve between
    the two measured points whose losses bracket it; None outside the losses MLE went through (the
    comparison "at equal held-out loss on the clean part" of Korbak et al. 2023 cannot be made there)."""
    points = sorted(curve, key=lambda c: c.clean_loss)
    if not points or not points[0].clean_loss <= loss <= points[-1].clean_loss:
        return None
    losses = [c.clean_loss for c in points]
    return float(np.interp(loss, losses, [c.undesirable_rate for c in points]))


def train_objective(
    config: PretrainRunConfig,
    objective: str,
    tokenizer: PreTrainedTokenizerBase,
    corpus: ScoredCorpus,
    scorer: Scorer,
    folder: Path,
    resume: bool = False,
    progress: bool = False,
) -> ObjectiveResult:
    """Train one objective from the shared seed, save it, and measure it."""
    start = time.perf_counter()
    spec = get_pretrain_objective(objective)
    train_blocks, test_blocks = objective_blocks(tokenizer, corpus, objective, config.block_tokens)
    model = build_pretrain_lm(
        tokenizer, config.size, max(config.block_tokens, config.sample_tokens + 2), spec.needs_values, config.train.seed
    )
    options = {k: v for k, v in config.train.objective_args.items() if k in spec.options}
    train = replace(config.train, objective=objective, objective_args=options)
    conditional = spec.data == "conditional"

    def judged() -> tuple[float, list[str], list[float]]:
        samples = sample_documents(model, tokenizer, config.samples, config.sample_tokens, conditional, train.seed)
        return clean_loss(model, test_blocks), samples, scorer.score([""] * len(samples), samples)

    curve_path, curve = folder / "curve.json", []
    if objective == "mle" and resume and curve_path.is_file():
        curve = [CurvePoint(**c) for c in json.loads(curve_path.read_text())]
    points = {round(train.steps * (i + 1) / config.mle_points) for i in range(config.mle_points)} - {train.steps}

    def measure(step: int, values: dict[str, float]) -> None:
        if objective == "mle" and step in points:
            loss, _, scores = judged()
            curve.append(CurvePoint(step, loss, undesirable_rate(scores, corpus.threshold).rate))
            write_text_atomic(curve_path, json.dumps([asdict(c) for c in curve]))
            model.train()

    history = train_pretrain(
        model, train_blocks, train, folder / "checkpoint", resume=resume, progress=progress, log=measure
    )
    save_model(model, tokenizer, folder / "model")
    loss, samples, scores = judged()
    rate = undesirable_rate(scores, corpus.threshold)
    if objective == "mle":
        curve.append(CurvePoint(train.steps, loss, rate.rate))
    write_jsonl(folder / "samples.jsonl", [{"text": t, "score": s} for t, s in zip(samples, scores, strict=True)])
    return ObjectiveResult(
        objective, loss, rate, len(train_blocks), history[-1]["loss"], time.perf_counter() - start, curve
    )


def save_model(model: PretrainLM, tokenizer: PreTrainedTokenizerBase, path: Path) -> None:
    """The LM as an ordinary Hugging Face folder (safetensors), the value head beside it; atomic."""
    with atomic_directory(path) as tmp:
        model.lm.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if model.value_head is not None:
            save_file(
                {k: v.contiguous() for k, v in model.value_head.state_dict().items()}, tmp / "value_head.safetensors"
            )


@dataclass(frozen=True)
class PretrainReport:
    scorer: str
    corpus: str
    threshold: float
    bad_share: float
    results: list[ObjectiveResult]


def run_pretraining(
    config: PretrainRunConfig,
    objectives: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    scorer: Scorer,
    scorer_name: str,
    output_dir: str | Path,
    resume: bool = False,
    progress: bool = False,
) -> PretrainReport:
    """Train each of ``objectives`` (MLE is added first when missing: it is what the others are
    compared with) and write ``report.md`` and ``report.json`` in ``output_dir``."""
    config.check()
    names = [get_pretrain_objective(o).name for o in objectives]
    names = list(dict.fromkeys(["mle", *names]))
    documents = read_corpus(config.corpus, config.max_documents)  # a bad corpus leaves no output folder
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    corpus = score_corpus(config, documents, scorer, scorer_name, output / "segment_scores.json", progress)
    results = [
        train_objective(config, name, tokenizer, corpus, scorer, output / name, resume, progress) for name in names
    ]
    report = PretrainReport(scorer_name, config.corpus, corpus.threshold, corpus.bad_share, results)
    write_text_atomic(output / "report.md", render_report(report))
    write_text_atomic(output / "report.json", json.dumps(asdict(report), indent=1))
    return report


def render_report(report: PretrainReport) -> str:
    """The comparison as Markdown: each objective's clean loss and undesirable rate, and MLE's."""
    mle = next(r for r in report.results if r.objective == "mle")
    lines = [
        f"# Pretraining with feedback: {report.corpus}, scored by {report.scorer}",
        "",
        f"Bad segments: score < {report.threshold:.4g} ({report.bad_share:.1%} of the training segments).",
        "",
        "| objective | held-out clean loss | Δ vs MLE | undesirable samples (95% CI) | ratio to MLE "
        "| MLE at equal clean loss | mean sample score |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report.results:
        low, high = r.undesirable.interval
        ratio = r.undesirable.rate / mle.undesirable.rate if mle.undesirable.rate > 0 else float("nan")
        at_equal = mle_rate_at(mle.curve, r.clean_loss)
        equal = "outside MLE's losses" if at_equal is None else f"{at_equal:.3f}"
        lines.append(
            f"| {r.objective} | {r.clean_loss:.4f} | {r.clean_loss - mle.clean_loss:+.4f} | "
            f"{r.undesirable.rate:.3f} ({low:.3f}–{high:.3f}, n={r.undesirable.n}) | {ratio:.2f} | {equal} | "
            f"{r.undesirable.mean_score:.3f} |"
        )
    curve = ", ".join(f"step {c.step}: {c.clean_loss:.4f} / {c.undesirable_rate:.3f}" for c in mle.curve)
    lines += ["", f"MLE along training (clean loss / undesirable rate): {curve}."]
    return "\n".join(lines) + "\n"
