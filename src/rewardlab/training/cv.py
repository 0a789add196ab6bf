"""``rewardlab cv``: a k-fold cross-validated accuracy estimate of any ``rewardlab train`` recipe.

Each fold is one ordinary training run (``trainer.train`` with the fold's splits passed in), in
``output/fold-i``: it trains on the fold's training pairs, keeps its best step and fits its probe
and temperature on the fold's validation slice, and is scored on the fold's test part, which nothing
in the run saw. A fold that finished wrote ``fold.json`` and ``predictions.jsonl`` (atomically, the
marker last); ``--resume`` skips such folds and continues an unfinished one from its checkpoint.
Weights are dropped once a fold is scored unless ``keep_models`` (5 models of a real backbone are
gigabytes; the predictions are all the estimate needs).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from rewardlab.atomic import remove_own, write_files_atomic, write_text_atomic
from rewardlab.data.split import Splits
from rewardlab.evaluate.cv_report import CVSummary, FoldPredictions, summarise_folds
from rewardlab.runs.cv_data import FoldData, load_folds
from rewardlab.runs.folder import RunExists, RunFolder, RunRules, claim_run_folder, holds_anything
from rewardlab.runs.peak_memory import peak_mb, reset_peak
from rewardlab.training.config import TrainConfig
from rewardlab.training.trainer import RESUMABLE
from rewardlab.training.trainer import train as run_training
from rewardlab.tuning import tune_cpu

RULES = RunRules(
    occupied=holds_anything,
    may_change=RESUMABLE.__contains__,
    owned=("fold-*", "folds.json", "config.yaml", "cv.json", "cv.md"),
)
"""A cross-validation folder: its config, its fold assignment, one run folder per fold, the report."""
DONE = "fold.json"
PREDICTIONS = "predictions.jsonl"


@dataclass
class CVResult:
    output_dir: Path
    summary: CVSummary
    report_files: list[Path]
    markdown: str
    """``cv.md``'s text."""
    trained: list[int]
    """The folds trained by this call (the others were finished already and were read back)."""


def cross_validate(
    config: TrainConfig,
    folds: int = 5,
    *,
    resume: bool = False,
    overwrite: bool = False,
    keep_models: bool = False,
) -> CVResult:
    """Train and test ``config``'s recipe on each of ``folds`` folds of its data (``data.split.kfold_splits``)
    and write ``cv.json`` and ``cv.md`` to ``config.output_dir``."""
    tune_cpu()
    config.check()
    if config.data.bootstrap_seed is not None:
        raise ValueError("data.bootstrap_seed is not supported by cv (it resamples train's own split); leave it unset")
    root = claim_run_folder(config.output_dir, config, RULES, resume=resume, overwrite=overwrite)
    data = load_folds(config.data, folds, print)
    assignment = _assignment(data, config)
    _check_same_folds(root, assignment, resume)
    root.start()
    config.save(root.config)
    write_text_atomic(root.path / "folds.json", json.dumps(assignment, indent=1) + "\n")
    predictions, trained = [], []
    for i, splits in enumerate(data.folds):
        folder = root.path / f"fold-{i}"
        fold = _read_fold(folder) if resume else None
        if fold is None:
            print(
                f"fold {i + 1}/{folds}: {len(splits.train)} train, {len(splits.validation)} validation, "
                f"{len(splits.test)} test pairs"
            )
            fold = _run_fold(config, splits, folder, resume, f"fold {i + 1}/{folds}")
            trained.append(i)
        else:
            print(f"fold {i + 1}/{folds}: finished before, read from {folder / PREDICTIONS}")
        remove_own(folder / "checkpoint")  # only a resume needed it; the fold is done
        if not keep_models:
            remove_own(folder / "model")
        predictions.append(fold)
    summary = summarise_folds(predictions)
    title = f"Cross-validated accuracy: {folds} folds of {assignment['data']}"
    markdown = summary.markdown(title)
    files = {
        root.path / "cv.json": json.dumps({"setup": assignment} | summary.to_dict(), indent=1, allow_nan=False) + "\n",
        root.path / "cv.md": markdown,
    }
    write_files_atomic(files)
    return CVResult(root.path, summary, list(files), markdown, trained)


def _assignment(data: FoldData, config: TrainConfig) -> dict:
    """What fixes the folds (``folds.json``): the data, the seed, and a digest of each fold's test pairs."""
    digest = hashlib.sha256(json.dumps(data.assignment()).encode()).hexdigest()
    return {
        "data": config.data.path or "embedded HH-RLHF harmless",
        "pairs": len(data.loaded.pairs),
        "folds": len(data.folds),
        "split_seed": config.data.split_seed,
        "validation_fraction": config.data.validation_fraction,
        "sizes": [{"train": len(f.train), "validation": len(f.validation), "test": len(f.test)} for f in data.folds],
        "test_pairs_sha256": digest,
    }


def _check_same_folds(root: RunFolder, assignment: dict, resume: bool) -> None:
    saved = root.path / "folds.json"
    if not (resume and saved.is_file()):
        return
    before = json.loads(saved.read_text(encoding="utf-8"))
    if before.get("test_pairs_sha256") != assignment["test_pairs_sha256"]:
        raise RunExists(
            f"{root.path} holds other folds ({before.get('folds')} folds of {before.get('pairs')} pairs, "
            f"split seed {before.get('split_seed')}); --resume needs the same --folds, data and data.split_seed"
        )


def _run_fold(config: TrainConfig, splits: Splits, folder: Path, resume: bool, label: str) -> FoldPredictions:
    """One ``rewardlab train`` run on the fold's splits; its test predictions written beside it."""
    fold_config = copy.deepcopy(config)
    fold_config.output_dir = str(folder)
    reset_peak()
    started = time.perf_counter()
    result = run_training(fold_config, resume=resume, splits=splits)
    test = result.test
    if test is None:  # kfold_splits gives every fold a test part; a guard, not a user's case
        raise RuntimeError(f"{folder}: the fold was not evaluated")
    fold = FoldPredictions(
        chosen_scores=[s for s, keep in zip(test.chosen_scores, test.ordered, strict=True) if keep],
        rejected_scores=[s for s, keep in zip(test.rejected_scores, test.ordered, strict=True) if keep],
        chosen_lengths=[n for n, keep in zip(test.chosen_lengths, test.ordered, strict=True) if keep],
        rejected_lengths=[n for n, keep in zip(test.rejected_lengths, test.ordered, strict=True) if keep],
        per_reply_rewards=not test.compares_pairs,
        seconds=time.perf_counter() - started,
        peak_memory_mb=peak_mb(),
    )
    columns = (test.chosen_scores, test.rejected_scores, test.chosen_lengths, test.rejected_lengths, test.ordered)
    names = ("chosen_score", "rejected_score", "chosen_length", "rejected_length", "ordered")
    rows = [
        {"id": p.id, "group": p.group} | dict(zip(names, values, strict=True))
        for p, *values in zip(splits.test, *columns, strict=True)
    ]
    done = {k: v for k, v in vars(fold).items() if not isinstance(v, list)}
    done |= {"accuracy": test.overall.accuracy, "ci_low": test.overall.ci_low, "ci_high": test.overall.ci_high}
    done |= {"n": test.overall.n, "steps": result.steps, "best_step": result.best_step}
    done |= {k: [v for v, keep in zip(getattr(test, k), test.ordered, strict=True) if keep] for k in _LISTS}
    write_files_atomic(  # the predictions first, the marker last: a kill between them leaves the fold unfinished
        {folder / PREDICTIONS: "".join(json.dumps(row) + "\n" for row in rows), folder / DONE: json.dumps(done) + "\n"}
    )
    print(
        f"{label}: test accuracy {test.overall.accuracy:.4f} ({test.overall.ci_low:.4f}–"
        f"{test.overall.ci_high:.4f}, n={test.overall.n}), {fold.seconds:.0f} s, "
        f"peak memory {fold.peak_memory_mb:.0f} MB"
    )
    return fold


_LISTS = ("chosen_scores", "rejected_scores", "chosen_lengths", "rejected_lengths")
"""What a finished fold keeps of its test predictions (the pairs with a labelled order) in ``fold.json``."""


def _read_fold(folder: Path) -> FoldPredictions | None:
    """A finished fold's predictions and costs, or None when the fold has not finished."""
    if not ((folder / DONE).is_file() and (folder / PREDICTIONS).is_file()):
        return None
    done = json.loads((folder / DONE).read_text(encoding="utf-8"))
    return FoldPredictions(
        *(done[k] for k in _LISTS),
        per_reply_rewards=done["per_reply_rewards"],
        seconds=done["seconds"],
        peak_memory_mb=done["peak_memory_mb"],
    )
