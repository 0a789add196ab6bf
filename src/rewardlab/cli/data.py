"""``rewardlab data``: commands that inspect preference datasets (``data check``)."""

from __future__ import annotations

from typing import Annotated

import typer

from rewardlab.cli.base import data_app, out, user_errors
from rewardlab.cli.options import ColumnsOption, DataArgument, SkipOption


@data_app.command("check")
@user_errors
def data_check(
    path: DataArgument,
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Validate a dataset and summarise it: rows, fields, lengths, ties, subsets."""
    from rewardlab.data import ColumnMap, load_preferences, summarize
    from rewardlab.data.summary import summary_tables

    loaded = load_preferences(
        None if path == "default" else path,
        columns=ColumnMap.parse(columns) if columns else None,
        skip_bad_rows=skip_bad_rows,
    )
    summary = summarize(loaded)
    if as_json:
        out.print_json(data=summary)
        return
    counts, lengths, subsets = summary_tables(summary)
    out.print(counts, lengths)
    if subsets is not None:
        out.print(subsets)
    for reason in summary["skipped"]["sample"]:
        out.print(f"skipped: {reason}", markup=False, highlight=False)
