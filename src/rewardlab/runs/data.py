"""Load a run's preference data and split it, the same way for every run and command.

With the same settings a reward-model run, a policy run and ``eval --split test`` hold out the same
pairs, because they all split here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rewardlab.data.forms import MAX_PAIRS_PER_ROW
from rewardlab.data.loading import LoadedPreferences, load_preferences
from rewardlab.data.records import PreferencePair
from rewardlab.data.schema import ColumnMap
from rewardlab.data.split import Splits, split_pairs

SPLIT_NAMES = ("all", "train", "validation", "test")


@dataclass
class SplitDataConfig:
    """Which preference file to read and how to split it: shared by reward-model and policy runs,
    so that with the same defaults both hold out the same pairs."""

    path: str | None = None
    """Preference file or folder; empty (or ``default``) means the embedded HH-RLHF harmless pairs."""
    columns: str | None = None
    """Field mapping, e.g. ``prompt=question,chosen=response_j,rejected=response_k``."""
    skip_bad_rows: bool = False
    """Skip invalid rows (counted and reported) instead of stopping at the first one."""
    validation_fraction: float = 0.1
    """Share of the pairs held out to choose the best checkpoint (split by a seeded hash of each pair;
    the pairs of one ranking or tree stay together)."""
    test_fraction: float = 0.2
    """Share of the pairs held out for the final evaluation; never seen in training or model selection."""
    split_seed: int = 0
    """Seed of the split: the same seed and fractions hold out the same pairs in every run and command."""
    max_pairs_per_row: int = MAX_PAIRS_PER_ROW
    """A k-wise or tree row that would expand to more pairs than this is a bad row (memory bound)."""

    def problems(self) -> list[str]:
        problems = []
        fractions = (self.validation_fraction, self.test_fraction)
        if min(fractions) < 0 or sum(fractions) >= 1:
            problems.append(f"data.validation_fraction + data.test_fraction must be in [0, 1) (got {fractions})")
        if self.max_pairs_per_row < 1:
            problems.append(f"data.max_pairs_per_row must be positive (got {self.max_pairs_per_row})")
        return problems


@dataclass(frozen=True)
class SplitData:
    loaded: LoadedPreferences
    splits: Splits

    def part(self, name: str) -> list[PreferencePair]:
        """The pairs of one split by name, or ``all`` of them."""
        if name not in SPLIT_NAMES:
            raise ValueError(f"split must be {', '.join(SPLIT_NAMES[:-1])} or {SPLIT_NAMES[-1]} (got {name!r})")
        return self.loaded.pairs if name == "all" else getattr(self.splits, name)

    def require_training_pairs(self) -> None:
        """A run with nothing to train on fails here, before a model is built."""
        if not self.splits.train:
            raise ValueError(
                f"{self.loaded.path}: no training pairs left after splitting off validation and test "
                f"({len(self.loaded.pairs)} pairs)"
            )


def load_split(config: SplitDataConfig, say: Callable[[str], None] = print) -> SplitData:
    """Read and validate the pairs (and rankings) ``config`` names, ``say`` how many rows were skipped,
    and split them by their seeded hash."""
    path = None if config.path in (None, "", "default") else config.path
    columns = ColumnMap.parse(config.columns) if config.columns else None
    loaded = load_preferences(
        path, columns=columns, skip_bad_rows=config.skip_bad_rows, max_pairs_per_row=config.max_pairs_per_row
    )
    if loaded.skipped:
        say(loaded.skip_summary())
    splits = split_pairs(
        loaded.pairs,
        validation=config.validation_fraction,
        test=config.test_fraction,
        seed=config.split_seed,
        rankings=loaded.rankings,
    )
    return SplitData(loaded, splits)
