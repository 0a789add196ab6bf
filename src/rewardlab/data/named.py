"""Datasets shipped inside the package, by name: ``--data ultrafeedback`` reads the packaged file with
the column map and bad-row handling it needs, so the name is all a user types.

The files and their licences lie in ``data/embedded/`` (its README gives each source and licence);
the column maps are those of the repository's ``data/README.md``. A user's ``--columns`` still
override the fields they name, and ``--skip-bad-rows`` can only add skipping, never take it away.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path

from rewardlab.data.schema import ColumnMap

_DEFAULT_COLUMNS = ColumnMap()


@dataclass(frozen=True)
class NamedData:
    """One packaged dataset: where it lies in the package, how its rows map onto pairs, and whose it is."""

    name: str
    file: str
    """The file's name inside ``rewardlab/data/embedded/``."""
    columns: str
    """The column map in the CLI form (``response_a=completion_a,...``); empty when the default fits."""
    skip_bad_rows: bool
    """Whether loading skips bad rows (counted and reported) rather than stopping at the first."""
    description: str
    licence: str

    def path(self) -> Path:
        """Where the file lies inside the installed package."""
        return Path(str(resources.files("rewardlab.data") / "embedded" / self.file))

    def column_map(self, overrides: ColumnMap | None = None) -> ColumnMap:
        """This dataset's column map, with every field ``overrides`` maps away from its default taken
        from ``overrides`` (a user's ``--columns``, parsed)."""
        base = ColumnMap.parse(self.columns)
        if overrides is None:
            return base
        changed = {
            f.name: getattr(overrides, f.name)
            for f in fields(ColumnMap)
            if getattr(overrides, f.name) != getattr(_DEFAULT_COLUMNS, f.name)
        }
        return replace(base, **changed)


NAMED: dict[str, NamedData] = {
    data.name: data
    for data in (
        NamedData(
            name="hh-harmless",
            file="hh-rlhf-harmless-1850.jsonl.gz",
            columns="",
            skip_bad_rows=False,
            description="1,850 HH-RLHF harmless-base test pairs (Bai et al. 2022); the default data",
            licence="MIT (hh-rlhf.LICENSE)",
        ),
        NamedData(
            name="ultrafeedback",
            file="ultrafeedback-binarized-1000.jsonl.gz",
            columns="chosen_rating=metadata.score_chosen,rejected_rating=metadata.score_rejected",
            skip_bad_rows=True,
            description="1,000 UltraFeedback binarized pairs with GPT-4 ratings (Cui et al. 2023)",
            licence="MIT (ultrafeedback.LICENSE)",
        ),
        NamedData(
            name="tulu1",
            file="tulu1-human-eval.jsonl.gz",
            columns="response_a=completion_a,response_b=completion_b,annotator=evaluator",
            skip_bad_rows=False,
            description="1,150 Tulu 1 human judgements, five-level (Wang et al. 2023)",
            licence="Apache-2.0 (open-instruct.LICENSE)",
        ),
        NamedData(
            name="finegrained",
            file="finegrained-rlhf-qa-feedback-dev.json.gz",
            columns="prompt=question,responses=prediction 1|prediction 2|prediction 3|prediction 4,"
            "judgements=preference",
            skip_bad_rows=False,
            description="FineGrained-RLHF QA feedback dev: 500 questions, 4 answers, 6 judgements (Wu et al. 2023)",
            licence="Apache-2.0 (finegrained-rlhf.LICENSE)",
        ),
    )
}
"""The packaged datasets by name (``--data NAME``); ``default`` is ``hh-harmless``."""

ALIASES = {"default": "hh-harmless", "hh-rlhf-harmless": "hh-harmless"}
"""Other names of the packaged datasets (``hh-rlhf-harmless`` is ``DEFAULT_DATASET``)."""


def named_data(name: str | Path | None) -> NamedData | None:
    """The packaged dataset called ``name`` (or ``default``), or None when it names none."""
    if name is None:
        return None
    text = str(name)
    return NAMED.get(ALIASES.get(text, text))


def known_names() -> str:
    """The names ``named_data`` knows, for error messages."""
    return ", ".join(NAMED)
