"""Load a run's preference data as k cross-validation folds, with the training-side additions of a run.

``runs/data.py`` splits a run's data once; this reads the same data (same file, columns, bad-row
handling) and splits it into ``folds`` test parts instead (``data.split.kfold_splits``). What a run
adds to its training pairs only (MAPL's multi-level pairs, ConvexDA rewrites) is added to each fold's
training pairs by the same functions, so a fold trains on what ``rewardlab train`` would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rewardlab.data.loading import LoadedPreferences
from rewardlab.data.split import Splits, content_key, kfold_splits
from rewardlab.runs.data import SplitDataConfig, load_one_source, with_training_additions


@dataclass(frozen=True)
class FoldData:
    loaded: LoadedPreferences
    folds: list[Splits]

    def assignment(self) -> list[list[str]]:
        """Each fold's test pairs as content digests: what ``--resume`` checks it continues the same folds."""
        return [sorted(content_key(p) for p in fold.test) for fold in self.folds]


def load_folds(config: SplitDataConfig, folds: int, say: Callable[[str], None] = print) -> FoldData:
    """Read the pairs ``config`` names and split them into ``folds`` folds by the seeded hash of their
    prompt group (``config.split_seed``), validation ``config.validation_fraction`` of all pairs;
    ``config.test_fraction`` is not used (each fold's test part is 1/``folds``)."""
    if folds < 2:  # before the data is read: a typo costs nothing
        raise ValueError(f"folds must be at least 2 (got {folds})")
    if config.sources:
        raise ValueError("cv reads one data source; data.sources is not supported yet (run cv on each source)")
    loaded = load_one_source(config, say)
    splits = kfold_splits(
        loaded.pairs,
        folds,
        validation=config.validation_fraction,
        seed=config.split_seed,
        rankings=loaded.rankings,
    )
    for fold in splits:
        fold.train = with_training_additions(fold.train, config, say)
        if not fold.train:
            raise ValueError(
                f"{loaded.path}: a fold has no training pairs left after its test and validation parts "
                f"({len(loaded.pairs)} pairs, {folds} folds); use fewer folds or a smaller data.validation_fraction"
            )
    return FoldData(loaded, splits)
