"""``rewardlab data strength``, ``data curate`` and ``data review-queue`` as library calls.

Each reads the rows (every field kept, ``rows.py``), scores them with the given reward models
(``strength.py``), decides (``curate.py``, ``peer.py``, ``review_queue.py``) and writes its files
atomically. The keywords are the commands' options, so ``curate_data("pairs.jsonl", "flip", ["a",
"b"], "out.jsonl")`` is ``rewardlab data curate pairs.jsonl --method flip --models a b --output out.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.atomic import write_files_atomic
from rewardlab.curation.curate import curriculum_order, decide
from rewardlab.curation.peer import judge_margins, peer_halves
from rewardlab.curation.result import CurationOutput, curated_row
from rewardlab.curation.review_queue import gold_errors, reason, review_order, review_priority
from rewardlab.curation.rows import SourceRows, read_rows
from rewardlab.curation.strength import Strength, preference_strength, score_members, soft_label
from rewardlab.destinations import check_jsonl_destination

Log = Callable[[str], None]


def _member_paths(models: Sequence[str | Path], needed: str, count: int | None = None) -> list[str]:
    paths = [str(m) for m in models]
    if (count is None and len(paths) < 2) or (count is not None and len(paths) != count):
        raise ValueError(f"--models: {needed} (got {len(paths)})")
    for p in paths:
        if not Path(p).is_dir():
            raise FileNotFoundError(f"--models {p}: no such reward model folder")
    return paths


@dataclass
class StrengthOutput:
    data: str
    models: list[str]
    source: SourceRows
    strength: Strength
    files: tuple[Path, ...] = ()

    def summary(self) -> dict[str, Any]:
        s, ordered = self.strength, ~np.array([p.tie for p in self.source.pairs])
        mean = s.mean[ordered]
        return {
            "data": self.data,
            "models": self.models,
            "pairs": int(ordered.sum()),
            "ties": int((~ordered).sum()),
            "unreadable_rows": len(self.source.skipped),
            "negative_strength": int((mean < 0).sum()),
            "mean_strength": float(mean.mean()) if mean.size else None,
            "mean_spread": float(s.std[ordered].mean()) if mean.size else None,
            "unanimous": float((s.agreement[ordered] == 1).mean()) if mean.size else None,
        }

    def rows(self) -> list[dict[str, Any]]:
        s = self.strength
        return [
            {
                "location": r.location,
                "id": r.pair.id,
                "subset": r.pair.subset,
                "strength_mean": float(s.mean[i]),
                "strength_std": float(s.std[i]),
                "probability": float(s.probability[i]),
                "agreement": float(s.agreement[i]),
                "margins": [float(m) for m in s.margins[:, i]],
            }
            for i, r in enumerate(self.source.rows)
        ]


def strength_data(
    data: str,
    models: Sequence[str | Path],
    *,
    output: str | Path | None = None,
    columns: str | None = None,
    skip_bad_rows: bool = False,
    precision: str = "auto",
    progress: bool = False,
) -> StrengthOutput:
    """Each pair's preference strength: mean and spread of the members' margins, and their soft label."""
    paths = _member_paths(models, "give two or more reward models, an ensemble to measure strength with")
    destination = check_jsonl_destination(output, "--output") if output else None
    source = read_rows(data, columns=columns, skip_bad_rows=skip_bad_rows)
    strength = preference_strength(score_members(source.pairs, paths, precision=precision, progress=progress))  # type: ignore[arg-type]
    result = StrengthOutput(data, paths, source, strength)
    if destination is not None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.rows())
        summary = destination.with_suffix(".summary.json")
        write_files_atomic({destination: text, summary: json.dumps(result.summary(), indent=2) + "\n"})
        result.files = (destination, summary)
    return result


def curate_data(
    data: str,
    method: str,
    models: Sequence[str | Path],
    output: str | Path,
    *,
    threshold: float = 0.5,
    dropped: str | Path | None = None,
    ensemble_weight: float = 0.5,
    curriculum: bool = False,
    judge: str = "peer",
    seed: int = 0,
    report: str | Path | None = None,
    columns: str | None = None,
    skip_bad_rows: bool = False,
    precision: str = "auto",
    progress: bool = False,
) -> CurationOutput:
    """Flip, drop or soften the pairs an ensemble (or, for peer review, the peer model) doubts.

    Writes ``output`` (the curated rows), ``dropped`` (default ``OUTPUT.dropped.jsonl``: every pair
    removed, never silently) and ``OUTPUT.counts.json`` together, atomically."""
    if method == "peer-review":
        paths = _member_paths(models, "peer review takes exactly two models, trained on halves 0 and 1", 2)
    else:
        paths = _member_paths(models, "give two or more reward models, an ensemble to judge the labels with")
    destination = check_jsonl_destination(output, "--output")
    dropped_path = check_jsonl_destination(dropped or destination.with_suffix(".dropped.jsonl"), "--dropped")
    if dropped_path.resolve() == destination.resolve():
        raise ValueError(f"--dropped {dropped_path}: give a file other than --output, or leave it out")
    if report:
        from rewardlab.destinations import check_folder_destination

        check_folder_destination(report)
    source = read_rows(data, columns=columns, skip_bad_rows=skip_bad_rows)
    margins = score_members(source.pairs, paths, precision=precision, progress=progress)  # type: ignore[arg-type]
    ties = [p.tie for p in source.pairs]
    agreement = None
    if method == "peer-review":
        judged = judge_margins(margins, peer_halves(source.pairs, seed), judge)
        decisions = decide(method, judged, soft_label(judged[None, :]), ties, threshold=threshold)
    else:
        s = preference_strength(margins)
        agreement = s.agreement
        decisions = decide(
            method, s.mean, s.probability, ties, std=s.std, threshold=threshold, ensemble_weight=ensemble_weight
        )
    rows = [curated_row(r, d, source.columns) for r, d in zip(source.rows, decisions, strict=True)]
    kept = [i for i, d in enumerate(decisions) if d.action != "dropped"]
    if curriculum:
        written_margin = [-decisions[i].mean if decisions[i].reversed else decisions[i].mean for i in kept]
        kept = [kept[j] for j in curriculum_order(written_margin)]
    result = CurationOutput(
        data, method, paths, threshold, source, decisions,
        [rows[i] for i in kept], [rows[i] for i, d in enumerate(decisions) if d.action == "dropped"], agreement,
    )  # fmt: skip
    counts_path = destination.with_suffix(".counts.json")
    write_files_atomic(
        {
            destination: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.curated),
            dropped_path: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.dropped),
            counts_path: json.dumps(result.counts(), indent=2) + "\n",
        }
    )
    result.files = [destination, dropped_path, counts_path]
    if report:
        from rewardlab.curation.report import write_curation_report

        result.files += write_curation_report(result, report)
    return result


@dataclass
class ReviewQueueOutput:
    data: str
    models: list[str]
    queue: list[dict[str, Any]]
    pairs: int
    gold_pairs: int = 0
    files: tuple[Path, ...] = ()


def review_queue_data(
    data: str,
    models: Sequence[str | Path],
    output: str | Path,
    *,
    budget: int = 200,
    gold: str | None = None,
    columns: str | None = None,
    skip_bad_rows: bool = False,
    precision: str = "auto",
    progress: bool = False,
) -> ReviewQueueOutput:
    """The ``budget`` pairs people should relabel first (``review_queue.py``), as rows of ``output``."""
    paths = _member_paths(models, "give two or more reward models, an ensemble whose doubts rank the pairs")
    if budget < 1:
        raise ValueError(f"--budget must be at least 1 (got {budget})")
    destination = check_jsonl_destination(output, "--output")
    source = read_rows(data, columns=columns, skip_bad_rows=skip_bad_rows)
    order = [i for i, p in enumerate(source.pairs) if not p.tie]
    if not order:
        raise ValueError(f"{data}: every pair is a tie; there is no label to review")
    pairs = [source.pairs[i] for i in order]
    s = preference_strength(score_members(pairs, paths, precision=precision, progress=progress))  # type: ignore[arg-type]
    errors = None
    if gold:
        gold_pairs = [p for p in read_rows(gold, columns=columns).pairs if not p.tie]
        if not gold_pairs:
            raise ValueError(f"--gold {gold}: no pair with a labelled order")
        gold_s = preference_strength(score_members(gold_pairs, paths, precision=precision, progress=progress))  # type: ignore[arg-type]
        errors = gold_errors(gold_s.probability, [p.subset for p in gold_pairs])
    priority = review_priority(s.probability, [p.subset for p in pairs], errors)
    queue = []
    for rank, j in enumerate(review_order(priority, s.std, budget), start=1):
        row = dict(source.rows[order[j]].row)
        row |= {
            "review_rank": rank,
            "review_priority": float(priority[j]),
            "review_reason": reason(float(s.probability[j]), float(s.agreement[j])),
            "strength_mean": float(s.mean[j]),
            "strength_std": float(s.std[j]),
            "source_location": source.rows[order[j]].location,
        }
        queue.append(row)
    write_files_atomic({destination: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in queue)})
    return ReviewQueueOutput(data, paths, queue, len(pairs), errors.pairs if errors else 0, (destination,))


def peer_halves_data(
    data: str, output: str | Path, *, seed: int = 0, columns: str | None = None, skip_bad_rows: bool = False
) -> tuple[Path, Path]:
    """Write ``half-0.jsonl`` and ``half-1.jsonl`` (every field kept) into folder ``output``: train model A
    on half 0 and B on half 1, then ``curate_data(..., "peer-review", [A, B], ...)`` with the same seed."""
    from rewardlab.destinations import check_folder_destination

    folder = Path(output)
    check_folder_destination(folder)
    source = read_rows(data, columns=columns, skip_bad_rows=skip_bad_rows)
    halves = peer_halves(source.pairs, seed)
    paths = (folder / "half-0.jsonl", folder / "half-1.jsonl")
    folder.mkdir(parents=True, exist_ok=True)
    texts = ["", ""]
    for r, half in zip(source.rows, halves, strict=True):
        texts[half] += json.dumps(r.row, ensure_ascii=False) + "\n"
    write_files_atomic(dict(zip(paths, texts, strict=True)))
    return paths
