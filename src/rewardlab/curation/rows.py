"""The rows curation reads and writes: each pair with the row it came from, every field kept.

Curation must give back the user's rows, not rewardlab's parsed records: a curated file keeps every
field of the original row (ids, metadata, fields rewardlab does not read), so it is read here row by
row with ``data.readers.iter_rows`` and each row is parsed beside it with ``data.forms.parse_row``.
A row that holds several pairs (a ranking or a tree) has no one label to flip and is refused; rows
that cannot be read are counted and reported (``skipped``), never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.data.forms import MAX_PAIRS_PER_ROW, parse_row
from rewardlab.data.loading import DEFAULT_DATASET, default_dataset_path
from rewardlab.data.named import named_data
from rewardlab.data.readers import iter_rows
from rewardlab.data.records import DataError, PreferencePair
from rewardlab.data.schema import ColumnMap, NoPreference


@dataclass(frozen=True)
class SourceRow:
    """One pair, the row it was read from (as the file has it) and where (``file:line``)."""

    pair: PreferencePair
    row: dict[str, Any]
    location: str


@dataclass
class SourceRows:
    rows: list[SourceRow]
    columns: ColumnMap
    skipped: list[DataError] = field(default_factory=list)

    @property
    def pairs(self) -> list[PreferencePair]:
        return [r.pair for r in self.rows]


def read_rows(data: str = "default", *, columns: str | None = None, skip_bad_rows: bool = False) -> SourceRows:
    """Every row of ``data`` (a file, a packaged dataset's name, or 'default') with its pair."""
    path: str | Path = default_dataset_path() if data in ("default", DEFAULT_DATASET) else data
    column_map = ColumnMap.parse(columns) if columns else ColumnMap()
    named = None if Path(path).exists() else named_data(path)
    if named is not None:
        path, column_map = named.path(), named.column_map(column_map)
        skip_bad_rows = skip_bad_rows or named.skip_bad_rows
    out = SourceRows([], column_map)
    for location, row in iter_rows(path, bad_lines=out.skipped):
        try:
            parsed = parse_row(row, location, column_map, MAX_PAIRS_PER_ROW)
        except DataError as error:
            if not (skip_bad_rows or isinstance(error, NoPreference)):
                hint = " (use --skip-bad-rows to skip such rows)"
                raise DataError(error.location, error.reason + hint, error.field) from error
            out.skipped.append(error)
            continue
        if len(parsed.pairs) != 1:
            raise DataError(
                location,
                f"holds {len(parsed.pairs)} pairs (a ranking or tree); curation flips or drops one label per row, "
                "so give rows of one pair each",
            )
        out.rows.append(SourceRow(parsed.pairs[0], row, location))
    if not out.rows:
        raise DataError(str(path), "holds no usable pair to curate")
    return out


def top_level(row: dict[str, Any], name: str, location: str) -> str:
    """``name`` if it is a top-level field of ``row``; a dotted path cannot be swapped in place."""
    if name not in row:
        raise DataError(location, "is a nested field; curation swaps chosen and rejected only at the top level", name)
    return name


def flipped_row(row: dict[str, Any], columns: ColumnMap, location: str) -> dict[str, Any]:
    """The row with its preference reversed: chosen and rejected swapped (and each side's prompt,
    when the row gives the rejected side its own)."""
    chosen, rejected = top_level(row, columns.chosen, location), top_level(row, columns.rejected, location)
    out = dict(row)
    out[chosen], out[rejected] = row[rejected], row[chosen]
    if columns.rejected_prompt in row and columns.prompt in row:
        out[columns.prompt], out[columns.rejected_prompt] = row[columns.rejected_prompt], row[columns.prompt]
    return out
