"""Load a preference file into validated pairs, accounting for every row that could not be used.

Bad rows stop loading by default, with a message pointing at the row; with ``skip_bad_rows`` they
are set aside in ``LoadedPreferences.skipped`` instead, so nothing is ever dropped silently. A row
that prefers one of two identical replies (``NoPreference``) is not an error the user can fix but a
row with nothing to learn: it is always set aside in ``skipped``, and counted in ``skip_summary``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rewardlab.data.forms import MAX_PAIRS_PER_ROW, parse_row
from rewardlab.data.named import known_names, named_data
from rewardlab.data.readers import iter_rows
from rewardlab.data.records import DataError, PreferencePair, Ranking
from rewardlab.data.schema import ColumnMap, NoPreference

DEFAULT_DATASET = "hh-rlhf-harmless"
"""The name that selects the embedded default data (1,850 HH-RLHF harmless-base pairs)."""

_DEFAULT_FILE = "hh-rlhf-harmless-1850.jsonl.gz"
_SKIP_HINT = " (use --skip-bad-rows to skip such rows)"


def default_dataset_path() -> Path:
    """Where the embedded default dataset lies inside the installed package."""
    return Path(str(resources.files("rewardlab.data") / "embedded" / _DEFAULT_FILE))


@dataclass
class LoadedPreferences:
    """The pairs read from ``path``, the rows skipped (with why), and the source field names seen.

    ``pairs`` holds every pair, including those drawn from k-wise and tree records; ``rankings``
    also keeps the full rankings whole, for objectives over rankings.
    """

    path: str
    pairs: list[PreferencePair]
    rankings: list[Ranking] = field(default_factory=list)
    records: int = 0
    """Rows read into pairs (a k-wise or tree row gives several pairs)."""
    skipped: list[DataError] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)

    def skip_summary(self, n: int = 5) -> str:
        """Say how many rows were skipped and show the reasons of the first ``n``."""
        if not self.skipped:
            return f"skipped no rows of {len(self.pairs)}"
        total = len(self.pairs) + len(self.skipped)
        lines = [f"skipped {len(self.skipped)} of {total} rows in {self.path}:"]
        lines += [f"  {error}" for error in self.skipped[:n]]
        if len(self.skipped) > n:
            lines.append(f"  ... and {len(self.skipped) - n} more")
        return "\n".join(lines)


def load_preferences(
    path: str | Path | None = None,
    *,
    columns: ColumnMap | None = None,
    skip_bad_rows: bool = False,
    split: str | None = None,
    limit: int | None = None,
    max_pairs_per_row: int = MAX_PAIRS_PER_ROW,
) -> LoadedPreferences:
    """Read and validate preference pairs from ``path`` (default: the embedded HH-RLHF data): a file,
    a datasets folder, a Hub dataset ``org/name[:split]`` in the local cache (``readers.iter_rows``),
    or a packaged dataset's name (``data/named.py``: its column map, with ``columns`` overriding the
    fields they map, and its bad-row handling; an existing file of that name wins).

    ``limit`` stops once that many pairs are loaded; a k-wise or tree row that would expand to more
    than ``max_pairs_per_row`` pairs is a bad row (one such row could fill the memory). A damaged or
    empty file always raises ``DataError``; so does a bad row (or a JSONL line that is not a JSON
    object) unless ``skip_bad_rows``, and so does a file whose rows are all bad.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if path is None or str(path) == DEFAULT_DATASET:
        path = default_dataset_path()
    named = None if Path(path).exists() else named_data(path)
    if named is not None:  # a packaged dataset by name: its file, column map and bad-row handling
        path, columns, skip_bad_rows = named.path(), named.column_map(columns), skip_bad_rows or named.skip_bad_rows
    elif not Path(path).exists() and not any(mark in str(path) for mark in "/:\\"):
        raise DataError(str(path), f"no such file or directory, nor a packaged dataset (known: {known_names()})")
    columns = columns or ColumnMap()
    loaded = LoadedPreferences(path=str(path), pairs=[])
    seen_fields: dict[str, None] = {}
    for location, row in iter_rows(path, split=split, bad_lines=loaded.skipped):
        _stop_unless_skipping(loaded, skip_bad_rows)
        seen_fields.update(dict.fromkeys(row))
        try:
            parsed = parse_row(row, location, columns, max_pairs_per_row)
            loaded.pairs += parsed.pairs
            loaded.records += 1
            if parsed.ranking is not None:
                loaded.rankings.append(parsed.ranking)
        except DataError as error:
            loaded.skipped.append(error)
            _stop_unless_skipping(loaded, skip_bad_rows)
        if limit is not None and len(loaded.pairs) >= limit:
            break
    _stop_unless_skipping(loaded, skip_bad_rows)
    loaded.fields = list(seen_fields)
    if not loaded.pairs:
        raise DataError(
            loaded.path,
            f"none of its {len(loaded.skipped)} rows could be used; the first: {loaded.skipped[0]}",
        )
    return loaded


def _stop_unless_skipping(loaded: LoadedPreferences, skip_bad_rows: bool) -> None:
    if skip_bad_rows:
        return
    error = next((e for e in loaded.skipped if not isinstance(e, NoPreference)), None)
    if error is not None:
        raise DataError(error.location, error.reason + _SKIP_HINT, field=error.field) from error
