"""Read raw rows from the file formats preference data comes in, each tagged with where it came from.

Every row carries a location (``file.jsonl:12`` or ``file.parquet[row 12]``) so that a problem found
later, when the row is parsed or trained on, can be traced back to the exact place in the user's
file. Anything wrong with the file itself raises ``DataError`` here.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from rewardlab.data.hub import hub_rows, is_hub_name, split_suffix
from rewardlab.data.records import DataError

SUPPORTED = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
"""File extensions understood (each also gzip-compressed as ``.gz``, except Parquet)."""

_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_CSV_FIELD_LIMIT = 2**31 - 1
"""The most a CSV cell may hold (the csv module's default, 131,072 characters, refuses texts JSONL takes)."""
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true/false"}


def iter_rows(
    path: str | Path, *, split: str | None = None, bad_lines: list[DataError] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, row)`` for every row of a JSONL, JSON, CSV or Parquet file, a datasets
    folder, or a Hub dataset ``org/name`` in the local Hugging Face cache (``data/hub.py``).

    ``split`` picks the split of a ``DatasetDict`` folder or Hub dataset (default ``train``); a
    ``:split`` tail on ``path`` does the same (``org/name:test``). An existing local path always wins:
    ``org/name`` is looked up in the cache only when no such file or folder exists. JSONL and Parquet
    are read as a stream, so huge files cost little memory. A JSONL line that is not one JSON object
    (malformed, not an object, undecodable bytes) raises, or, when ``bad_lines`` is given, is
    recorded there and passed over: one bad line does not make the rest of the file unreadable.
    """
    given = name = str(path)
    path = Path(path)
    reader: Iterator[tuple[str, dict[str, Any]]]
    if not path.exists():
        name, tail = split_suffix(given)
        if tail is not None and split not in (None, tail):
            raise DataError(given, f'names split "{tail}" but split "{split}" was also given')
        split, path = split or tail, Path(name)
        if not path.exists() and not is_hub_name(name):
            raise DataError(given, "no such file or directory")
    if not path.exists():
        reader = hub_rows(name, split)
    elif path.is_dir():
        reader = _datasets_rows(path, name, split)
    else:
        if split is not None:
            raise DataError(name, f'split "{split}" given, but only a datasets folder has splits')
        reader = _file_rows(path, name, bad_lines)
    empty = True
    for location, row in reader:
        empty = False
        yield location, row
    if empty:
        raise DataError(name, "holds no rows")


def read_json_file(path: str | Path) -> Any:
    """A small JSON file (a map or option file), with a ``DataError`` naming it when missing or malformed."""
    name = str(path)
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(name, "no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(name, f"is not valid JSON ({error})") from None
    except (RecursionError, ValueError) as error:  # nested too deep, or an integer too long to read
        raise DataError(name, f"is not readable JSON: {_unreadable_json(error)}") from None


def _file_rows(path: Path, name: str, bad_lines: list[DataError] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    kind = suffixes[-2] if compressed and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    if kind not in SUPPORTED or (compressed and kind == ".parquet"):
        raise DataError(
            name,
            f'unsupported file type "{"".join(path.suffixes) or path.name}" (supported: '
            f"{', '.join(SUPPORTED)}, those gzip-compressed as .gz except Parquet, "
            "or a folder written by datasets' save_to_disk)",
        )
    if kind == ".parquet":
        return _parquet_rows(path, name)
    if kind in (".jsonl", ".ndjson"):
        return _jsonl_rows(path, name, compressed, bad_lines)
    text = _decode_whole(path, name, compressed)
    if kind == ".csv":
        return _csv_rows(text, name)
    if text.lstrip().startswith("["):
        return _json_array_rows(text, name)
    # Many tools (datasets' to_json among them) write JSON Lines under a .json name.
    return _json_lines(
        io.StringIO(text), name, hint=" (a .json file must hold an array of objects, or one object per line)"
    )


def _open(path: Path, compressed: bool) -> IO[bytes]:
    return gzip.open(path) if compressed else path.open("rb")


def _jsonl_rows(
    path: Path, name: str, compressed: bool, bad_lines: list[DataError] | None
) -> Iterator[tuple[str, dict]]:
    with _open(path, compressed) as raw:
        yield from _json_lines(_decoded_lines(raw, name, bad_lines), name, bad_lines=bad_lines)


def _decoded_lines(raw: IO[bytes], name: str, bad_lines: list[DataError] | None = None) -> Iterator[str]:
    """Decode line by line so that a bad byte is reported on its own line (a skipped line reads as blank)."""
    lineno = 0
    try:
        for lineno, line in enumerate(raw, start=1):
            if lineno == 1:
                line = line.removeprefix(codecs.BOM_UTF8)
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError as error:
                _bad_line(DataError(f"{name}:{lineno}", _bad_byte(error, error.start)), bad_lines)
                yield ""
    except (OSError, EOFError, zlib.error) as error:  # a damaged or truncated .gz file
        raise DataError(f"{name}:{lineno + 1}", f"cannot read the file: {error}") from None


def _json_lines(
    lines: Iterator[str] | IO[str], name: str, hint: str = "", bad_lines: list[DataError] | None = None
) -> Iterator[tuple[str, dict]]:
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        location = f"{name}:{lineno}"
        try:
            row = _checked_row(json.loads(line), line, location)
        except json.JSONDecodeError as error:
            _bad_line(DataError(location, f"invalid JSON: {error.msg} (column {error.colno}){hint}"), bad_lines)
            continue
        except (RecursionError, ValueError) as error:  # a DataError is a ValueError too
            if not isinstance(error, DataError):
                error = DataError(location, f"invalid JSON: {_unreadable_json(error)}", _long_number_field(line))
            _bad_line(error, bad_lines)
            continue
        yield location, row


def _bad_line(error: DataError, bad_lines: list[DataError] | None) -> None:
    """Record a bad line when the caller skips them, else stop at it."""
    if bad_lines is None:
        raise error
    bad_lines.append(error)


def _json_array_rows(text: str, name: str) -> Iterator[tuple[str, dict]]:
    """Walk a JSON array element by element, keeping count of the line each one starts on."""
    decoder = json.JSONDecoder()
    position = _JSON_WHITESPACE.match(text, text.index("[") + 1).end()
    line, counted = 1, 0
    if text.startswith("]", position):
        return
    while True:
        line += text.count("\n", counted, position)
        counted = position
        location, start = f"{name}:{line}", position
        try:
            row, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise DataError(f"{name}:{error.lineno}", f"invalid JSON: {error.msg} (column {error.colno})") from None
        except (RecursionError, ValueError) as error:  # nested too deep, or an integer too long to read
            end = text.find("\n", start)
            field = _long_number_field(text[start : end if end >= 0 else len(text)])
            raise DataError(location, f"invalid JSON: {_unreadable_json(error)}", field) from None
        yield location, _checked_row(row, text[start:position], location)
        position = _JSON_WHITESPACE.match(text, position).end()
        if text.startswith(",", position):
            position = _JSON_WHITESPACE.match(text, position + 1).end()
        elif text.startswith("]", position):
            break
        else:
            line += text.count("\n", counted, position)
            counted = position
            raise DataError(f"{name}:{line}", "invalid JSON: expected ',' or ']' after an array element")
    if text[position + 1 :].strip():
        line += text.count("\n", counted, position)
        raise DataError(f"{name}:{line}", "invalid JSON: extra data after the closing ']'")


def _csv_rows(text: str, name: str) -> Iterator[tuple[str, dict]]:
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)  # a long reply is as welcome in CSV as in JSONL
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return
    start = reader.line_num + 1  # a quoted value may span lines: a row starts after the previous ends
    while True:
        location = f"{name}:{start}"
        try:
            values = next(reader, None)
        except csv.Error as error:
            raise DataError(location, f"invalid CSV: {error}") from None
        if values is None:
            return
        start = reader.line_num + 1
        if not values:
            continue
        if len(values) != len(header):
            raise DataError(location, f"row has {len(values)} values but the header has {len(header)} columns")
        yield location, dict(zip(header, values, strict=True))


def _parquet_rows(path: Path, name: str) -> Iterator[tuple[str, dict]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=1024)
        index = 0
        for batch in batches:
            for row in batch.to_pylist():
                yield f"{name}[row {index}]", row
                index += 1
    except (pa.ArrowException, OSError) as error:
        raise DataError(name, f"not a readable Parquet file: {error}") from None


def _datasets_rows(path: Path, name: str, split: str | None) -> Iterator[tuple[str, dict]]:
    """Rows of a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    if (path / "dataset_dict.json").is_file():
        splits = _load_from_disk(path, name)
        wanted = split or "train"
        if wanted not in splits:
            raise DataError(name, f'has no split "{wanted}" (available: {", ".join(splits)}); choose one with split')
        dataset, name = splits[wanted], f"{name}[{wanted}]"
    elif (path / "state.json").is_file():
        if split is not None:
            raise DataError(name, f'split "{split}" given, but this dataset folder has no splits')
        dataset = _load_from_disk(path, name)
    else:
        raise DataError(name, "is a folder but not one written by datasets' save_to_disk")
    index = 0
    try:
        for row in dataset:
            yield f"{name}[row {index}]", row
            index += 1
    except (OSError, ValueError, TypeError, KeyError) as error:  # damaged Arrow files
        raise DataError(f"{name}[row {index}]", f"cannot read the datasets folder: {error}") from None


def _load_from_disk(path: Path, name: str) -> Any:
    """``datasets.load_from_disk``, its failures on a damaged folder (a corrupt ``state.json``, missing
    Arrow files) said as a ``DataError`` naming the folder, not as a traceback from inside datasets."""
    from datasets import load_from_disk

    for metadata in sorted([*path.glob("*.json"), *path.glob("*/*.json")]):  # the split folders' too
        read_json_file(metadata)  # a damaged one is named, rather than the error found inside datasets
    try:
        return load_from_disk(str(path))
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        reason = str(error).strip() or type(error).__name__
        raise DataError(name, f"is not a readable datasets folder (a damaged or hand-edited file?): {reason}") from None


def _decode_whole(path: Path, name: str, compressed: bool) -> str:
    try:
        with _open(path, compressed) as file:
            raw = file.read().removeprefix(codecs.BOM_UTF8)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(name, f"cannot read the file: {error}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = raw.rfind(b"\n", 0, error.start) + 1
        lineno = raw.count(b"\n", 0, error.start) + 1
        raise DataError(f"{name}:{lineno}", _bad_byte(error, error.start - line_start)) from None


def _bad_byte(error: UnicodeDecodeError, column: int) -> str:
    """Describe an undecodable byte; ``column`` counts bytes from 0 within its line."""
    return (
        f"invalid UTF-8 byte 0x{error.object[error.start]:02x} at column {column + 1} "
        f"({error.reason}); save the file as UTF-8"
    )


def _as_object(row: object, location: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        kind = "null" if row is None else _JSON_TYPES.get(type(row), type(row).__name__)
        raise DataError(location, f"expected a JSON object (one row), got {kind}")
    return row


def _checked_row(row: object, raw: str, location: str) -> dict[str, Any]:
    """A decoded JSON object, refused when a text in it holds a lone surrogate escape such as
    ``"\\ud800"``: valid JSON, but not a character, so no tokenizer or UTF-8 writer accepts it."""
    row = _as_object(row, location)
    if _SURROGATE_ESCAPE.search(raw):  # only a \uD800-\uDFFF escape makes one: most rows skip the walk
        for key, value in row.items():
            bad = _lone_surrogate(key) or _lone_surrogate(value)
            if bad:
                raise DataError(
                    location,
                    f'holds a lone surrogate escape "\\u{ord(bad):04x}" (half of a UTF-16 pair, not a character); '
                    "fix or remove the escape",
                    field=key.encode("utf-8", "backslashreplace").decode("utf-8"),  # printable even if it is the key
                )
    return row


def _lone_surrogate(value: object) -> str | None:
    """The first unpaired surrogate in a text anywhere inside ``value`` (walked without recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as error:
                return item[error.start]
        elif isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item
    return None


def _unreadable_json(error: BaseException) -> str:
    """Why JSON that parses in principle could not be read: nested too deep, or an integer too long."""
    if isinstance(error, RecursionError):
        return f"nested deeper than can be read (at most about {sys.getrecursionlimit()} levels)"
    if "integer string conversion" in str(error):
        return (
            f"a number has more than {sys.get_int_max_str_digits()} digits, more than can be read "
            "(write it as text if it is an identifier)"
        )
    return str(error)


def _long_number_field(raw: str) -> str | None:
    """The field holding an integer too long to read, for the error message (None when not found)."""
    found = re.search(rf'"((?:[^"\\]|\\.)*)"\s*:\s*-?\d{{{sys.get_int_max_str_digits() + 1},}}', raw)
    return found.group(1) if found else None
