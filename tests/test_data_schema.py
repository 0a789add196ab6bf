"""Turning rows into validated pairs: forms, column mapping, every bad-input message, loading, summary."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from rewardlab.data import (
    ColumnMap,
    DataError,
    PreferencePair,
    default_dataset_path,
    load_preferences,
    parse_pair,
    summarize,
    transcript_to_messages,
)
from rewardlab.data.prompts import split_shared_messages, split_shared_prefix
from rewardlab.data.schema import parse_prompt

LOCATION = "data.jsonl:7"
DEFAULT = ColumnMap()


def pair(row: dict[str, Any], columns: ColumnMap = DEFAULT) -> PreferencePair:
    return parse_pair(row, LOCATION, columns)


def bad(row: dict[str, Any], columns: ColumnMap = DEFAULT) -> DataError:
    with pytest.raises(DataError) as raised:
        parse_pair(row, LOCATION, columns)
    return raised.value


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


# --- column maps -------------------------------------------------------------------------------


def test_column_map_parse() -> None:
    columns = ColumnMap.parse(" prompt=question, chosen=response_j,rejected=response_k ")
    assert columns == ColumnMap(prompt="question", chosen="response_j", rejected="response_k")
    assert ColumnMap.parse("") == ColumnMap()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prompt=q,answer=a", 'unknown column "answer" in "answer=a" (known: prompt, chosen, rejected'),
        ("prompt", 'column mapping "prompt" is not of the form name=field'),
        ("chosen=", 'column mapping "chosen=" is not of the form name=field'),
        ("chosen=a,chosen=b", 'column "chosen" is mapped twice'),
    ],
)
def test_column_map_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        ColumnMap.parse(text)
    assert str(raised.value).startswith(message)


def test_mapped_field_names() -> None:
    columns = ColumnMap.parse("prompt=question,chosen=response_j,rejected=response_k,margin=metadata.score")
    row = {"question": "Q?", "response_j": "good", "response_k": "bad", "metadata": {"score": 2}}
    assert pair(row, columns) == PreferencePair(prompt="Q?", chosen="good", rejected="bad", margin=2.0)


def test_dotted_name_that_is_a_flat_key() -> None:
    row = {"prompt": "Q?", "chosen": "a", "rejected": "b", "metadata.score": "1.5"}
    assert pair(row, ColumnMap(margin="metadata.score")).margin == 1.5


def test_errors_name_the_users_field() -> None:
    columns = ColumnMap.parse("prompt=question,chosen=response_j,rejected=response_k,weight=meta.w")
    row = {"question": "Q?", "response_j": "good", "response_k": "  ", "meta": {"w": 1}}
    assert str(bad(row, columns)) == 'data.jsonl:7: field "response_k": is only whitespace (expected non-empty text)'
    row = {"question": "Q?", "response_j": "good", "response_k": "bad", "meta": {"w": -1}}
    assert bad(row, columns).field == "meta.w"


def test_mapped_prompt_that_is_missing_is_an_error() -> None:
    error = bad({"chosen": "a", "rejected": "b"}, ColumnMap(prompt="question"))
    assert str(error) == 'data.jsonl:7: field "question": is missing (this row has "chosen", "rejected")'


# --- explicit text form and field validation ---------------------------------------------------


def test_explicit_prompt_with_all_fields() -> None:
    row = {
        "prompt": "Q?",
        "chosen": "yes",
        "rejected": "no",
        "margin": 3,
        "weight": "0.5",
        "tie": "false",
        "id": 17,
        "subset": "math",
        "annotator": 4,
        "extra": [1, 2],
    }
    assert pair(row) == PreferencePair(
        prompt="Q?", chosen="yes", rejected="no", margin=3.0, weight=0.5, id="17", subset="math", annotator="4"
    )
    assert pair(row).source == LOCATION


def test_empty_csv_cells_mean_absent_optional_fields() -> None:
    row = {"prompt": "Q?", "chosen": "yes", "rejected": "no", "margin": "", "weight": "", "tie": "", "id": ""}
    assert pair(row) == PreferencePair(prompt="Q?", chosen="yes", rejected="no")


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"chosen": None}, "chosen", "is null (expected text or a list of messages)"),
        ({"chosen": ""}, "chosen", "is empty (expected non-empty text)"),
        ({"rejected": " \n\t"}, "rejected", "is only whitespace (expected non-empty text)"),
        ({"prompt": ""}, "prompt", "is empty (expected non-empty text)"),
        ({"prompt": None}, "prompt", "is null (expected text or a list of messages)"),
        ({"chosen": 42}, "chosen", "is a number (42) (expected text)"),
        ({"prompt": {"text": "Q"}}, "prompt", "is an object (expected text or a list of messages)"),
        ({"rejected": "yes"}, "rejected", 'is identical to "chosen"'),
        ({"margin": "big"}, "margin", "is text ('big') (expected a finite number)"),
        ({"margin": float("nan")}, "margin", "is a number (nan) (expected a finite number)"),
        ({"margin": "inf"}, "margin", "is text ('inf') (expected a finite number)"),
        ({"margin": True}, "margin", "is a boolean (true) (expected a finite number)"),
        ({"weight": [1]}, "weight", "is a list of 1 items (expected a finite number)"),
        ({"weight": -0.5}, "weight", "is negative (-0.5); a weight must be 0 or more"),
        ({"tie": "yes"}, "tie", "is text ('yes') (expected true or false)"),
        ({"tie": 2}, "tie", "is a number (2) (expected true or false)"),
        ({"id": {"a": 1}}, "id", "is an object (expected text or a number)"),
        ({"subset": ["a"]}, "subset", "is a list of 1 items (expected text or a number)"),
    ],
)
def test_bad_fields(change: dict[str, Any], field: str, reason: str) -> None:
    error = bad({"prompt": "Q?", "chosen": "yes", "rejected": "no", **change})
    assert error.location == LOCATION
    assert error.field == field
    assert str(error).startswith(f'{LOCATION}: field "{field}": {reason}')


@pytest.mark.parametrize("field", ["chosen", "rejected"])
def test_missing_reply_lists_the_fields_present(field: str) -> None:
    row = {"prompt": "Q?", "chosen": "yes", "rejected": "no"}
    del row[field]
    others = ", ".join(f'"{name}"' for name in row)
    assert str(bad(row)) == f'{LOCATION}: field "{field}": is missing (this row has {others})'


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), (1, True), (0, False), ("true", True), ("False", False), ("1", True), (None, False)],
)
def test_tie_values(value: Any, expected: bool) -> None:
    assert pair({"prompt": "Q?", "chosen": "a", "rejected": "b", "tie": value}).tie is expected


def test_identical_replies_are_fine_for_a_tie() -> None:
    assert pair({"prompt": "Q?", "chosen": "same", "rejected": "same", "tie": True}).tie


def test_zero_weight_is_allowed() -> None:
    assert pair({"prompt": "Q?", "chosen": "a", "rejected": "b", "weight": 0}).weight == 0.0


# --- implicit prompts (HH-RLHF) ----------------------------------------------------------------


def first_embedded_row() -> dict[str, str]:
    with gzip.open(default_dataset_path(), "rt", encoding="utf-8") as file:
        return json.loads(file.readline())


def test_hh_row_splits_after_the_last_assistant_marker() -> None:
    row = first_embedded_row()
    prompt, chosen, rejected = split_shared_prefix(row["chosen"], row["rejected"])
    assert prompt.endswith("\n\nAssistant:")
    assert prompt.count("\n\nHuman:") == 3  # the rows' last human turn belongs to the prompt
    assert prompt + chosen == row["chosen"]
    assert prompt + rejected == row["rejected"]
    assert "\n\nHuman:" not in chosen and "\n\nHuman:" not in rejected
    assert pair(row) == PreferencePair(prompt=prompt, chosen=chosen, rejected=rejected)


def test_shared_reply_opening_stays_in_the_replies() -> None:
    chosen = "\n\nHuman: Hi\n\nAssistant: Sure, here it is."
    rejected = "\n\nHuman: Hi\n\nAssistant: Sure, no."
    assert split_shared_prefix(chosen, rejected) == ("\n\nHuman: Hi\n\nAssistant:", " Sure, here it is.", " Sure, no.")


@pytest.mark.parametrize(
    ("chosen", "rejected", "expected"),
    [
        ("The cat sat", "The cat ran", ("The cat ", "sat", "ran")),
        ("The answer", "The ansatz", ("The ", "answer", "ansatz")),
        ("Yes", "Yes indeed", ("", "Yes", "Yes indeed")),
        ("abc", "xyz", ("", "abc", "xyz")),
    ],
)
def test_split_without_marker_keeps_words_whole(chosen: str, rejected: str, expected: tuple) -> None:
    assert split_shared_prefix(chosen, rejected) == expected


def test_implicit_prompt_with_nothing_shared_is_an_error() -> None:
    error = bad({"chosen": "Paris", "rejected": "London"})
    assert error.field == "prompt"
    assert "share no leading text" in str(error)


def test_identical_transcripts_are_an_error_unless_a_tie() -> None:
    text = "\n\nHuman: Hi\n\nAssistant: Hello"
    assert bad({"chosen": text, "rejected": text}).field == "rejected"
    assert pair({"chosen": text, "rejected": text, "tie": True}).chosen == " Hello"


def test_transcript_to_messages() -> None:
    text = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How are you?\n\nAssistant:"
    assert transcript_to_messages(text) == (user("Hi there"), assistant("Hello!"), user("How are you?"))
    assert transcript_to_messages("Human: a\n\nAssistant: b") == (user("a"), assistant("b"))
    assert transcript_to_messages("Just a question") == (user("Just a question"),)
    assert transcript_to_messages("Intro\n\nHuman: a") == (user("Intro"), user("a"))


# --- conversations -----------------------------------------------------------------------------


CONVERSATION = [user("Hi"), assistant("Hello"), user("Tell me a joke")]


def test_full_conversations_share_their_prompt() -> None:
    row = {"chosen": [*CONVERSATION, assistant("A pun.")], "rejected": [*CONVERSATION, assistant("No.")]}
    result = pair(row)
    assert result == PreferencePair(prompt=tuple(CONVERSATION), chosen="A pun.", rejected="No.")
    assert isinstance(result.prompt, tuple) and result.is_conversation


def test_prompt_messages_and_bare_replies() -> None:
    row = {"prompt": CONVERSATION, "chosen": [assistant("A pun.")], "rejected": [assistant("No.")]}
    assert pair(row) == PreferencePair(prompt=tuple(CONVERSATION), chosen="A pun.", rejected="No.")


def test_prompt_messages_and_text_replies() -> None:
    row = {"prompt": CONVERSATION, "chosen": "A pun.", "rejected": "No."}
    assert pair(row) == PreferencePair(prompt=tuple(CONVERSATION), chosen="A pun.", rejected="No.")


def test_text_prompt_with_message_replies() -> None:
    bare = {"prompt": "Joke?", "chosen": [assistant("A pun.")], "rejected": [assistant("No.")]}
    full = {
        "prompt": "Joke?",
        "chosen": [user("Joke?"), assistant("A pun.")],
        "rejected": [user("Joke?"), assistant("No.")],
    }
    expected = PreferencePair(prompt=(user("Joke?"),), chosen="A pun.", rejected="No.")
    assert pair(bare) == expected
    assert pair(full) == expected


def test_extra_message_keys_are_dropped() -> None:
    row = {"chosen": [{**user("Q"), "name": "x"}, assistant("a")], "rejected": [user("Q"), assistant("b")]}
    assert pair(row).prompt == (user("Q"),)


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        (
            {"chosen": [user("Q"), {"role": "bot", "content": "a"}], "rejected": [user("Q"), assistant("b")]},
            "chosen",
            "message [1] has role text ('bot') (expected one of: user, assistant, system)",
        ),
        (
            {"chosen": [user("Q"), {"role": "assistant"}], "rejected": [user("Q"), assistant("b")]},
            "chosen",
            "message [1] has no content (expected text)",
        ),
        (
            {"chosen": [user("Q"), assistant("a")], "rejected": [user("Q"), "b"]},
            "rejected",
            "message [1] is text ('b') (expected an object)",
        ),
        (
            {"chosen": [user("Q"), assistant("a")], "rejected": [user("Q"), {"role": "assistant", "content": 3}]},
            "rejected",
            "message [1] has content a number (3) (expected text)",
        ),
        ({"chosen": [user("Q"), assistant("a")], "rejected": []}, "rejected", "is an empty list of messages"),
        (
            {"chosen": [user("Q"), assistant("a")], "rejected": "b"},
            "rejected",
            "is text ('b'), but the other reply is a list of messages",
        ),
        (
            {
                "chosen": [user("Q"), assistant("a"), user("more?"), assistant("c")],
                "rejected": [user("Q"), assistant("b")],
            },
            "chosen",
            "has 3 messages after the 1 it shares with the other side",
        ),
        (
            {"chosen": [user("Q"), user("a")], "rejected": [user("Q"), assistant("b")]},
            "chosen",
            'ends with a "user" message (expected an assistant reply)',
        ),
        (
            {"chosen": [user("Q"), assistant(" ")], "rejected": [user("Q"), assistant("b")]},
            "chosen",
            "has an empty assistant reply",
        ),
        ({"chosen": [assistant("a")], "rejected": [assistant("b")]}, "prompt", "gives no prompt"),
        (
            {"prompt": [user("Q"), {"role": "tool", "content": "x"}], "chosen": "a", "rejected": "b"},
            "prompt",
            "message [1] has role text ('tool')",
        ),
    ],
)
def test_bad_conversations(row: dict[str, Any], field: str, reason: str) -> None:
    error = bad(row)
    assert error.field == field
    assert str(error).startswith(f'{LOCATION}: field "{field}": {reason}')


def test_parse_prompt() -> None:
    assert parse_prompt("Q?", LOCATION, "question") == "Q?"
    assert parse_prompt([user("Q?")], LOCATION, "question") == (user("Q?"),)
    with pytest.raises(DataError, match=r'data\.jsonl:7: field "question": is a number \(3\)'):
        parse_prompt(3, LOCATION, "question")


def test_split_shared_messages_directly() -> None:
    prompt, chosen, rejected = split_shared_messages([user("Q"), assistant("a")], [user("Q"), assistant("b")])
    assert (prompt, chosen, rejected) == ((user("Q"),), assistant("a"), assistant("b"))
    with pytest.raises(ValueError, match="chosen: has 2 messages after the 0 it shares"):
        split_shared_messages([user("Q"), assistant("a")], [user("R"), assistant("b")])


# --- loading -----------------------------------------------------------------------------------


def write_rows(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


GOOD = {"prompt": "Q?", "chosen": "yes", "rejected": "no"}
MIXED = [GOOD, {**GOOD, "chosen": ""}, GOOD, {**GOOD, "rejected": "yes"}, {"prompt": "Q?"}, GOOD]


def test_bad_row_stops_loading_with_a_hint(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "data.jsonl", MIXED)
    with pytest.raises(DataError) as raised:
        load_preferences(path)
    assert str(raised.value) == (
        f'{path}:2: field "chosen": is empty (expected non-empty text) (use --skip-bad-rows to skip such rows)'
    )
    assert raised.value.field == "chosen" and raised.value.location == f"{path}:2"


def test_skip_bad_rows_keeps_count_and_reasons(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "data.jsonl", MIXED)
    loaded = load_preferences(path, skip_bad_rows=True)
    assert len(loaded.pairs) == 3
    assert [pair.source for pair in loaded.pairs] == [f"{path}:1", f"{path}:3", f"{path}:6"]
    assert [(error.location, error.field) for error in loaded.skipped] == [
        (f"{path}:2", "chosen"),
        (f"{path}:4", "rejected"),
        (f"{path}:5", "chosen"),
    ]
    summary = loaded.skip_summary(n=2)
    assert summary.splitlines() == [
        f"skipped 3 of 6 rows in {path}:",
        f'  {path}:2: field "chosen": is empty (expected non-empty text)',
        f'  {path}:4: field "rejected": is identical to "chosen" (a preference needs two different replies; '
        'set "tie" to true if they were judged equally good)',
        "  ... and 1 more",
    ]
    assert loaded.fields == ["prompt", "chosen", "rejected"]


def test_all_rows_bad_raises_even_when_skipping(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "data.jsonl", [{"prompt": "Q?"}, {"question": "Q?"}])
    with pytest.raises(DataError, match=r"none of its 2 rows could be used; the first: .*:1: field \"chosen\""):
        load_preferences(path, skip_bad_rows=True)


def test_bad_jsonl_lines_are_rows_to_skip_or_stop_at(tmp_path: Path) -> None:
    """A malformed, non-object or undecodable JSONL line spoils one row, not the file."""
    path = tmp_path / "data.jsonl"
    good = json.dumps(GOOD).encode()
    path.write_bytes(b"\n".join([good, b"not json", b"[1, 2]", b'{"prompt": "\xff"}', good]) + b"\n")
    with pytest.raises(DataError, match=r"data\.jsonl:2: invalid JSON.*--skip-bad-rows"):
        load_preferences(path)
    loaded = load_preferences(path, skip_bad_rows=True)
    assert len(loaded.pairs) == 2
    assert [error.location.rsplit(":", 1)[1] for error in loaded.skipped] == ["2", "3", "4"]
    assert "expected a JSON object" in str(loaded.skipped[1]) and "UTF-8" in str(loaded.skipped[2])


def test_broken_files_are_not_skipped(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text("[" + json.dumps(GOOD) + ", oops]", encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.json:1: invalid JSON"):
        load_preferences(path, skip_bad_rows=True)


def test_limit_and_columns(tmp_path: Path) -> None:
    rows = [{"q": f"Q{i}", "a": "yes", "b": "no"} for i in range(10)]
    path = write_rows(tmp_path / "data.jsonl", rows)
    loaded = load_preferences(path, columns=ColumnMap.parse("prompt=q,chosen=a,rejected=b"), limit=4)
    assert [pair.prompt for pair in loaded.pairs] == ["Q0", "Q1", "Q2", "Q3"]
    with pytest.raises(ValueError, match="limit"):
        load_preferences(path, limit=0)


def test_embedded_default_loads_every_pair() -> None:
    loaded = load_preferences()
    assert len(loaded.pairs) == 1850
    assert loaded.skipped == []
    assert loaded.fields == ["chosen", "rejected"]
    assert all(isinstance(p.prompt, str) and p.prompt.endswith("\n\nAssistant:") for p in loaded.pairs)
    assert load_preferences("hh-rlhf-harmless", limit=3).pairs == loaded.pairs[:3]


def test_summarize(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Q1", "chosen": "aaaa", "rejected": "b", "subset": "x", "margin": 1},
        {"prompt": "Q1", "chosen": "aaaa", "rejected": "b", "subset": "x"},
        {"prompt": "Q2", "chosen": "cc", "rejected": "dd", "tie": True, "annotator": "ann", "weight": 2},
        {"prompt": [user("Q3")], "chosen": "e", "rejected": "f", "subset": "y"},
        {"prompt": "Q4", "chosen": "", "rejected": "g"},
    ]
    loaded = load_preferences(write_rows(tmp_path / "data.jsonl", rows), skip_bad_rows=True)
    summary = summarize(loaded)
    assert summary["rows"] == 5 and summary["pairs"] == 4
    assert summary["skipped"]["count"] == 1 and "data.jsonl:5" in summary["skipped"]["sample"][0]
    assert summary["prompt_forms"] == {"text": 3, "conversation": 1}
    assert summary["lengths"]["chosen"] == {"min": 1, "median": 3.0, "mean": 2.8, "p95": 4, "max": 4}
    assert summary["lengths"]["prompt"]["max"] == 2
    assert summary["ties"] == 1
    assert (summary["with_margin"], summary["with_weight"], summary["with_subset"], summary["with_annotator"]) == (
        1,
        1,
        3,
        1,
    )
    assert summary["subsets"] == {"x": 2, "y": 1}
    assert summary["duplicate_pairs"] == 1
    assert summary["distinct_prompts"] == 3
    json.dumps(summary)  # plain values only
