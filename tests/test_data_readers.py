"""Reading rows from every supported format, and the errors a damaged file gives."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from rewardlab.data import DataError, iter_rows

ROWS = [
    {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
    {"prompt": "Name a colour.", "chosen": "Blue,\nlike the sky", "rejected": 'a "colour"'},
    {"prompt": "Say hi in French.", "chosen": "Bonjour ☀", "rejected": "Hello"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def write_jsonl_gz(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.writelines(json.dumps(row) + "\n" for row in rows)
    return path


def write_json_array(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_dataset(path: Path, rows: list[dict]) -> Path:
    from datasets import Dataset

    Dataset.from_list(rows).save_to_disk(str(path))
    return path


WRITERS = {
    "data.jsonl": write_jsonl,
    "data.jsonl.gz": write_jsonl_gz,
    "data.json": write_json_array,
    "data.csv": write_csv,
    "data.parquet": write_parquet,
    "data_dir": write_dataset,
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_every_format_reads_the_same_rows(tmp_path: Path, name: str) -> None:
    path = WRITERS[name](tmp_path / name, ROWS)
    read = list(iter_rows(path))
    assert [row for _, row in read] == ROWS
    assert all(location.startswith(str(path)) for location, _ in read)


def test_jsonl_locations_are_one_based_file_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n", encoding="utf-8")
    assert [location for location, _ in iter_rows(path)] == [f"{path}:1", f"{path}:3"]


def test_location_uses_the_name_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "data.jsonl", ROWS)
    monkeypatch.chdir(tmp_path)
    assert next(iter_rows("data.jsonl"))[0] == "data.jsonl:1"


def test_json_array_locations_are_the_lines_where_elements_start(tmp_path: Path) -> None:
    path = write_json_array(tmp_path / "data.json", ROWS)
    lines = path.read_text(encoding="utf-8").splitlines()
    starts = [number for number, line in enumerate(lines, start=1) if line.strip() == "{"]
    assert len(starts) == 3
    assert [location for location, _ in iter_rows(path)] == [f"{path}:{n}" for n in starts]


def test_compact_json_array_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text("\n\n" + json.dumps(ROWS), encoding="utf-8")
    assert [location for location, _ in iter_rows(path)] == [f"{path}:3"] * 3


def test_json_lines_under_a_json_name(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.json", ROWS)
    assert [row for _, row in iter_rows(path)] == ROWS


def test_csv_locations_are_the_lines_where_records_start(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", ROWS)  # the second row's chosen text spans two lines
    assert [location for location, _ in iter_rows(path)] == [f"{path}:2", f"{path}:3", f"{path}:5"]


def test_parquet_and_dataset_locations_are_row_indexes(tmp_path: Path) -> None:
    parquet = write_parquet(tmp_path / "data.parquet", ROWS)
    expected = ["[row 0]", "[row 1]", "[row 2]"]
    assert [location for location, _ in iter_rows(parquet)] == [f"{parquet}{row}" for row in expected]
    folder = write_dataset(tmp_path / "data_dir", ROWS)
    assert [location for location, _ in iter_rows(folder)] == [f"{folder}{row}" for row in expected]


def test_dataset_dict_uses_train_or_the_split_asked_for(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    path = tmp_path / "dict_dir"
    DatasetDict({"train": Dataset.from_list(ROWS[:2]), "test": Dataset.from_list(ROWS[2:])}).save_to_disk(str(path))
    assert [row for _, row in iter_rows(path)] == ROWS[:2]
    assert list(iter_rows(path, split="test")) == [(f"{path}[test][row 0]", ROWS[2])]
    with pytest.raises(DataError, match=r'no split "valid" \(available: train, test\)'):
        list(iter_rows(path, split="valid"))


def test_dataset_dict_without_train_lists_its_splits(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    path = tmp_path / "dict_dir"
    DatasetDict({"dev": Dataset.from_list(ROWS)}).save_to_disk(str(path))
    with pytest.raises(DataError, match=r'no split "train" \(available: dev\)'):
        list(iter_rows(path))


def test_jsonl_is_read_as_a_stream(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1]) + "\n{broken\n", encoding="utf-8")
    rows = iter_rows(path)
    assert next(rows)[1] == ROWS[0]
    assert next(rows)[1] == ROWS[1]
    with pytest.raises(DataError):
        next(rows)


def read_error(path: Path | str, **kwargs: str) -> DataError:
    with pytest.raises(DataError) as raised:
        list(iter_rows(path, **kwargs))
    return raised.value


def test_malformed_json_line_names_file_line_and_json_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + '\n{"prompt": "x",}\n', encoding="utf-8")
    error = read_error(path)
    assert error.location == f"{path}:2"
    assert str(error).startswith(f"{path}:2: invalid JSON: Expecting property name enclosed in double quotes")


def test_row_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + '\n\n["a", "b"]\n', encoding="utf-8")
    assert str(read_error(path)) == f"{path}:3: expected a JSON object (one row), got an array"


def test_json_array_element_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"chosen": "a"},\n  null\n]', encoding="utf-8")
    assert str(read_error(path)) == f"{path}:3: expected a JSON object (one row), got null"


def test_malformed_json_array_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"chosen": "a"},\n  {"chosen": "b"\n  }\n  {"chosen": "c"}\n]', encoding="utf-8")
    assert str(read_error(path)) == f"{path}:5: invalid JSON: expected ',' or ']' after an array element"
    path.write_text('[\n  {"chosen": "a"},\n  {"chosen": tru}\n]', encoding="utf-8")
    assert read_error(path).location == f"{path}:3"


@pytest.mark.parametrize("name", ["bad.jsonl", "bad.csv", "bad.json"])
def test_undecodable_byte_names_its_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b'{"a": "1"}\n{"a": "2"}\n{"a": "caf\xe9"}\n' if name != "bad.csv" else b"a\n1\ncaf\xe9\n")
    error = read_error(path)
    assert error.location == f"{path}:3"
    assert "invalid UTF-8 byte 0xe9" in str(error)


def test_undecodable_byte_in_gzipped_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wb") as file:
        file.write(b'{"a": "1"}\n{"a": "\xff"}\n')
    assert read_error(path).location == f"{path}:2"


def test_damaged_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(b"this is not gzip\n")
    assert "cannot read the file" in str(read_error(path))


@pytest.mark.parametrize(
    ("name", "content"),
    [("empty.jsonl", ""), ("blank.jsonl", "\n\n"), ("empty.json", "[ ]"), ("header.csv", "a,b\n"), ("e.csv", "")],
)
def test_file_without_rows(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert str(read_error(path)) == f"{path}: holds no rows"


def test_csv_row_with_wrong_number_of_values(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("prompt,chosen,rejected\na,b,c\nd,e\n", encoding="utf-8")
    assert str(read_error(path)) == f"{path}:3: row has 2 values but the header has 3 columns"


def test_unknown_extension_lists_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("hello", encoding="utf-8")
    message = str(read_error(path))
    assert message.startswith(f'{path}: unsupported file type ".txt"')
    for extension in (".jsonl", ".json", ".csv", ".parquet", "save_to_disk"):
        assert extension in message


def test_missing_path(tmp_path: Path) -> None:
    assert str(read_error(tmp_path / "nope.jsonl")) == f"{tmp_path / 'nope.jsonl'}: no such file or directory"


def test_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    assert "not one written by datasets' save_to_disk" in str(read_error(tmp_path))


def test_split_is_refused_for_plain_files(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    assert "only a datasets folder has splits" in str(read_error(path, split="test"))


def test_file_that_is_not_parquet(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_text("not parquet", encoding="utf-8")
    assert str(read_error(path)).startswith(f"{path}: not a readable Parquet file")


@pytest.mark.parametrize("writer", [write_jsonl, write_csv])
def test_byte_order_mark_is_ignored(tmp_path: Path, writer) -> None:
    path = writer(tmp_path / ("data.jsonl" if writer is write_jsonl else "data.csv"), ROWS)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as Excel and Notepad save "UTF-8"
    assert [row for _, row in iter_rows(path)] == ROWS
