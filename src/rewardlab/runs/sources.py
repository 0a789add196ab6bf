"""Training on several preference sources at once, each with its own weight.

``data.sources`` lists the sources (``{data, name, columns, skip_bad_rows, weight}``). Each source
is split on its own with the run's seeded split (``data/split.py``: by group, so no group straddles
two splits), and the splits are concatenated in the order the sources are listed. Every pair carries
its source's name (``data/source_names.py``), so a report gives accuracy per source.

A source's ``weight`` multiplies the loss weight of its training and validation pairs. With
``data.source_balance`` each source's pairs are weighted so that every source has the same total
weight in a split, whatever its size (times its ``weight``): a large source does not drown a small
one. This is plain reweighting by source size, not a method from a paper. Objectives over whole
rankings (Plackett-Luce) read rankings, which carry no weight: there the weights do not apply.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.data.loading import LoadedPreferences, load_preferences
from rewardlab.data.records import PreferencePair
from rewardlab.data.schema import ColumnMap
from rewardlab.data.source_names import NAME_PATTERN, tag_source
from rewardlab.data.split import Splits, split_pairs

SOURCE_KEYS = ("data", "name", "columns", "skip_bad_rows", "weight")
"""The keys one entry of ``data.sources`` may have; only ``data`` is required."""

_WEIGHT_SUFFIX = re.compile(r"^(?P<data>.+)@(?P<weight>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)$")


@dataclass(frozen=True)
class DataSource:
    """One entry of ``data.sources``: where the pairs are, what to call them, and their weight."""

    data: str
    name: str
    columns: str | None = None
    skip_bad_rows: bool = False
    weight: float = 1.0


@dataclass(frozen=True)
class SplitSettings:
    """The seeded split every source gets (the run's ``data.*_fraction`` and ``data.split_seed``)."""

    validation: float
    test: float
    seed: int
    max_pairs_per_row: int


def default_name(data: str) -> str:
    """A source's name when it gives none: ``a.jsonl.gz`` → ``a``, a dataset name stays itself."""
    stem = Path(data.rstrip("/")).name.split(".")[0] or data
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", stem)


def parse_sources(raw: Sequence[Any]) -> tuple[list[DataSource], list[str]]:
    """The entries of ``data.sources`` as sources, and every problem with them at once."""
    sources, problems = [], []
    for i, entry in enumerate(raw):
        where = f"data.sources[{i}]"
        if isinstance(entry, str):
            entry = {"data": entry}
        if not isinstance(entry, Mapping) or not entry.get("data"):
            problems.append(f"{where} must be a mapping with at least data: (got {entry!r})")
            continue
        if unknown := sorted(set(map(str, entry)) - set(SOURCE_KEYS)):
            problems.append(f"{where}: unknown key {', '.join(unknown)} (known: {', '.join(SOURCE_KEYS)})")
            continue
        weight = entry.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            problems.append(f"{where}.weight must be a positive number (got {weight!r})")
            continue
        name = str(entry.get("name") or default_name(str(entry["data"])))
        if not NAME_PATTERN.match(name):
            problems.append(f"{where}.name {name!r} may hold only letters, digits and _ . + -")
            continue
        columns = entry.get("columns")
        sources.append(
            DataSource(
                str(entry["data"]), name, str(columns) if columns else None, bool(entry.get("skip_bad_rows")), weight
            )
        )
    names = [s.name for s in sources]
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"data.sources: two sources are named {', '.join(repeated)}; give each its own name: key")
    return sources, problems


def sources_from_options(values: Sequence[str]) -> list[dict[str, Any]]:
    """``--data a.jsonl@0.5 --data b.jsonl`` → ``[{data: a.jsonl, weight: 0.5}, {data: b.jsonl}]``:
    a trailing ``@number`` is the source's weight."""
    entries: list[dict[str, Any]] = []
    for value in values:
        match = _WEIGHT_SUFFIX.match(value)
        entries.append({"data": match["data"], "weight": float(match["weight"])} if match else {"data": value})
    return entries


def source_multipliers(totals: Mapping[str, float], weights: Mapping[str, float], balance: bool) -> dict[str, float]:
    """What each source's pair weights are multiplied by in one split.

    Without ``balance``: the source's ``weight``. With it, source s of total pair weight W_s and
    weight w_s gets m_s = w_s · ΣW / (W_s · Σw), so its pairs sum to w_s · ΣW / Σw: equal totals for
    equal weights, and the split's total weight ΣW (so the mean loss scale) unchanged.
    """
    if not balance:
        return {name: float(weights[name]) for name in totals}
    present = {name: total for name, total in totals.items() if total > 0}
    all_weight, all_sources = sum(present.values()), sum(weights[name] for name in present)
    return {
        name: weights[name] * all_weight / (total * all_sources) if name in present else 0.0
        for name, total in totals.items()
    }


def load_sources(
    sources: Sequence[DataSource],
    settings: SplitSettings,
    balance: bool,
    say: Callable[[str], None] = print,
) -> tuple[LoadedPreferences, Splits]:
    """Read, validate and split each source; the pairs of all of them, and their concatenated splits
    with every pair tagged with its source and weighted (see the module's doc)."""
    loaded_all, split_all = [], []
    for source in sources:
        loaded = load_preferences(
            source.data,
            columns=ColumnMap.parse(source.columns) if source.columns else None,
            skip_bad_rows=source.skip_bad_rows,
            max_pairs_per_row=settings.max_pairs_per_row,
        )
        if loaded.skipped:
            say(loaded.skip_summary())
        splits = split_pairs(
            loaded.pairs,
            validation=settings.validation,
            test=settings.test,
            seed=settings.seed,
            rankings=loaded.rankings,
        )
        loaded_all.append(loaded)
        split_all.append(_tagged(splits, source.name))
    combined = Splits()
    weights = {s.name: s.weight for s in sources}
    for part in ("train", "validation", "test"):
        by_source = zip(sources, split_all, strict=True)
        totals = {s.name: sum(p.weight for p in getattr(split, part)) for s, split in by_source}
        factor = source_multipliers(totals, weights, balance) if part != "test" else dict.fromkeys(totals, 1.0)
        for source, split in zip(sources, split_all, strict=True):
            getattr(combined, part).extend(_weighted(getattr(split, part), factor[source.name]))
            getattr(combined, f"{part}_rankings").extend(getattr(split, f"{part}_rankings"))
    for source, split in zip(sources, split_all, strict=True):
        say(
            f"source {source.name}: {len(split.train)} train, {len(split.validation)} validation, "
            f"{len(split.test)} test pairs"
        )
    return _joined(sources, loaded_all), combined


def _tagged(splits: Splits, name: str) -> Splits:
    parts = {f.name: [tag_source(r, name) for r in getattr(splits, f.name)] for f in dataclasses.fields(splits)}
    return Splits(**parts)


def _weighted(pairs: list[PreferencePair], factor: float) -> list[PreferencePair]:
    return pairs if factor == 1.0 else [dataclasses.replace(p, weight=p.weight * factor) for p in pairs]


def _joined(sources: Sequence[DataSource], loaded: Sequence[LoadedPreferences]) -> LoadedPreferences:
    """One ``LoadedPreferences`` for all sources, its pairs tagged like the splits'."""
    pairs = [tag_source(p, s.name) for s, one in zip(sources, loaded, strict=True) for p in one.pairs]
    rankings = [tag_source(r, s.name) for s, one in zip(sources, loaded, strict=True) for r in one.rankings]
    fields = list(dict.fromkeys(f for one in loaded for f in one.fields))
    return LoadedPreferences(
        path=" + ".join(s.data for s in sources),
        pairs=pairs,
        rankings=rankings,
        records=sum(one.records for one in loaded),
        skipped=[e for one in loaded for e in one.skipped],
        fields=fields,
    )


def data_overrides(values: Sequence[str]) -> dict[str, Any]:
    """The config values ``--data`` sets (replacing a config's or a recipe's data): one file is
    ``data.path``; several, or any with an ``@weight``, are ``data.sources``."""
    if not values:
        return {}
    if len(values) == 1 and not _WEIGHT_SUFFIX.match(values[0]):
        return {"data.path": values[0], "data.sources": []}
    return {"data.path": None, "data.sources": sources_from_options(values)}
