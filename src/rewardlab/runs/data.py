"""Load a run's preference data and split it, the same way for every run and command.

With the same settings a reward-model run, a policy run and ``eval --split test`` hold out the same
pairs, because they all split here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rewardlab.data.forms import MAX_PAIRS_PER_ROW
from rewardlab.data.loading import LoadedPreferences, load_preferences
from rewardlab.data.records import PreferencePair
from rewardlab.data.schema import ColumnMap
from rewardlab.data.split import Splits, split_pairs
from rewardlab.runs.sources import SplitSettings, load_sources, parse_sources

if TYPE_CHECKING:
    from rewardlab.runs.augmentation import ConvexDASettings

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
    multi_level: bool = False
    """Add MAPL's multi-level pairs to the training split (``data/multi_level.py``): inter-sample
    pairs (each pair, after its original, gets two whose prompt joins it with another training pair's
    and whose chosen reply answers more of the two requests well) and intra-sample pairs (each reply
    under a prompt with instructions it satisfies, preferred to itself under one with an instruction
    it violates). Held-out splits stay as they are."""
    multi_level_inter: bool = True
    """With ``multi_level``: add the inter-sample (two-request) pairs."""
    multi_level_intra: bool = True
    """With ``multi_level``: add the intra-sample pairs, whose two sides have different prompts
    (reward-model training only; ``dpo`` refuses them, so set this false there)."""
    multi_level_seed: int = 0
    """Seed of the multi-level construction (partners joined, instructions drawn)."""
    multi_level_weight: float = 1.0
    """Loss weight of each inter-sample pair relative to an original one (the paper's λ)."""
    multi_level_intra_weight: float = 1.0
    """Loss weight of each intra-sample pair relative to an original one (the paper's λ)."""
    multi_level_max_instructions: int = 3
    """Most instructions added to an intra-sample pair's prompts (1 to 4 kinds exist)."""
    convex_da: bool = False
    """ConvexDA (Shen et al. 2023, ``runs/augmentation.py``): give each training pair
    ``convex_da_candidates`` synonym rewrites (``data/synonyms.py``), embed them, and add those that are
    vertices of their group's convex hull. Held-out splits stay as they are."""
    convex_da_candidates: int = 4
    """ConvexDA: synonym rewrites made per training pair (each embedded twice: chosen and rejected)."""
    convex_da_dims: int = 2
    """ConvexDA: principal directions of a pair's group the hull is taken in (fewer keep fewer)."""
    convex_da_encoder: str = "minilm"
    """ConvexDA: sentence encoder of the embeddings (``models/embeddings.py``): minilm or a local folder."""
    convex_da_seed: int = 0
    """ConvexDA: seed of the synonym rewrites."""
    sources: list[dict[str, Any]] = field(default_factory=list)
    """Several sources instead of ``path``, each ``{data, name, columns, skip_bad_rows, weight}``
    (``runs/sources.py``): each split on its own, the splits joined, reported per source."""
    source_balance: bool = False
    """With ``sources``: weight each source's pairs so every source has the same total weight (times its weight)."""

    def convex_da_settings(self) -> ConvexDASettings:
        """The ``convex_da_*`` keys as ``runs/augmentation``'s settings (imported here: it loads the encoder code)."""
        from rewardlab.runs.augmentation import ConvexDASettings

        return ConvexDASettings(
            self.convex_da_candidates, self.convex_da_dims, self.convex_da_encoder, self.convex_da_seed
        )

    def describe(self) -> str:
        """The data as a report names it: the file, the sources joined by ``+``, or the embedded pairs."""
        if self.sources:
            return " + ".join(s.name for s in parse_sources(self.sources)[0])
        return self.path or "embedded HH-RLHF harmless"

    def problems(self) -> list[str]:
        problems = []
        if self.sources:
            problems += parse_sources(self.sources)[1]
            if self.path not in (None, "", "default"):
                problems.append(f"data.path ({self.path}) and data.sources are both set; list the path as a source")
        if not self.multi_level_weight > 0:
            problems.append(f"data.multi_level_weight must be > 0 (got {self.multi_level_weight})")
        if not self.multi_level_intra_weight > 0:
            problems.append(f"data.multi_level_intra_weight must be > 0 (got {self.multi_level_intra_weight})")
        if self.multi_level_max_instructions < 1:
            problems.append(
                f"data.multi_level_max_instructions must be at least 1 (got {self.multi_level_max_instructions})"
            )
        if self.multi_level and not (self.multi_level_inter or self.multi_level_intra):
            problems.append("data.multi_level=true adds nothing with data.multi_level_inter and _intra both false")
        fractions = (self.validation_fraction, self.test_fraction)
        if min(fractions) < 0 or sum(fractions) >= 1:
            problems.append(f"data.validation_fraction + data.test_fraction must be in [0, 1) (got {fractions})")
        if self.max_pairs_per_row < 1:
            problems.append(f"data.max_pairs_per_row must be positive (got {self.max_pairs_per_row})")
        if self.convex_da_candidates < 1 or self.convex_da_dims < 1:
            got = (self.convex_da_candidates, self.convex_da_dims)
            problems.append(f"data.convex_da_candidates and data.convex_da_dims must be at least 1 (got {got})")
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
    if config.sources:
        sources, problems = parse_sources(config.sources)
        if problems:
            raise ValueError("; ".join(problems))
        settings = SplitSettings(
            config.validation_fraction, config.test_fraction, config.split_seed, config.max_pairs_per_row
        )
        loaded, splits = load_sources(sources, settings, config.source_balance, say)
    else:
        loaded, splits = _load_one(config, say)
    splits.train = with_training_additions(splits.train, config, say)
    return SplitData(loaded, splits)


def with_training_additions(
    train: list[PreferencePair], config: SplitDataConfig, say: Callable[[str], None] = print
) -> list[PreferencePair]:
    """``train`` with what a run adds to its training pairs only: MAPL's multi-level pairs and ConvexDA
    rewrites (``runs/augmentation.py``). One function, so that ``cv``'s folds train on what ``train``'s would."""
    if config.multi_level:
        from rewardlab.runs.augmentation import MultiLevelSettings, multi_level_training_pairs

        levels = MultiLevelSettings(
            config.multi_level_inter,
            config.multi_level_intra,
            config.multi_level_weight,
            config.multi_level_intra_weight,
            config.multi_level_max_instructions,
            config.multi_level_seed,
        )
        train = multi_level_training_pairs(train, levels, say)
    if config.convex_da:
        from rewardlab.runs.augmentation import augment_training_pairs

        train = augment_training_pairs(train, config.convex_da_settings(), say)
    return train


def load_one_source(config: SplitDataConfig, say: Callable[[str], None] = print) -> LoadedPreferences:
    """Read and validate the one file (or name) ``config.path`` gives, ``say``-ing how many rows were skipped."""
    path = None if config.path in (None, "", "default") else config.path
    columns = ColumnMap.parse(config.columns) if config.columns else None
    loaded = load_preferences(
        path, columns=columns, skip_bad_rows=config.skip_bad_rows, max_pairs_per_row=config.max_pairs_per_row
    )
    if loaded.skipped:
        say(loaded.skip_summary())
    return loaded


def _load_one(config: SplitDataConfig, say: Callable[[str], None]) -> tuple[LoadedPreferences, Splits]:
    loaded = load_one_source(config, say)
    splits = split_pairs(
        loaded.pairs,
        validation=config.validation_fraction,
        test=config.test_fraction,
        seed=config.split_seed,
        rankings=loaded.rankings,
    )
    return loaded, splits
