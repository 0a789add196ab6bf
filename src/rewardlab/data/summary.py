"""Describe a loaded dataset in numbers, for ``rewardlab data check``, before any training is spent on it."""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from typing import Any

from rich.table import Table

from rewardlab.data.loading import LoadedPreferences
from rewardlab.data.prompts import prompt_key
from rewardlab.data.records import Prompt
from rewardlab.data.split import content_key


def summarize(loaded: LoadedPreferences, *, sample: int = 5) -> dict[str, Any]:
    """Counts, length statistics and duplicates of ``loaded``; plain values, ready for JSON or a table.

    Lengths are in characters; a conversation prompt counts the characters of all its messages.
    ``with_weight`` counts pairs whose weight differs from the default 1.
    """
    pairs = loaded.pairs
    conversations = sum(pair.is_conversation for pair in pairs)
    contents = Counter(content_key(pair) for pair in pairs)
    return {
        "path": loaded.path,
        "rows": loaded.records + len(loaded.skipped),
        "pairs": len(pairs),
        "skipped": {
            "count": len(loaded.skipped),
            "sample": [str(error) for error in loaded.skipped[:sample]],
        },
        "fields": list(loaded.fields),
        "prompt_forms": {"text": len(pairs) - conversations, "conversation": conversations},
        "lengths": {
            "prompt": _stats([_prompt_length(pair.prompt) for pair in pairs]),
            "chosen": _stats([len(pair.chosen) for pair in pairs]),
            "rejected": _stats([len(pair.rejected) for pair in pairs]),
        },
        "ties": sum(pair.tie for pair in pairs),
        "rankings": len(loaded.rankings),
        "groups": len({pair.group for pair in pairs if pair.group is not None}),
        "with_strength": sum(pair.strength is not None and not pair.tie for pair in pairs),
        "with_ratings": sum(pair.chosen_rating is not None for pair in pairs),
        "with_margin": sum(pair.margin is not None for pair in pairs),
        "with_weight": sum(pair.weight != 1.0 for pair in pairs),
        "with_subset": sum(pair.subset is not None for pair in pairs),
        "with_annotator": sum(pair.annotator is not None for pair in pairs),
        "subsets": dict(Counter(pair.subset for pair in pairs if pair.subset is not None).most_common()),
        "duplicate_pairs": sum(count - 1 for count in contents.values()),
        "distinct_prompts": len({prompt_key(pair.prompt) for pair in pairs}),
    }


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "median": statistics.median(ordered),
        "mean": round(statistics.fmean(ordered), 1),
        "p95": ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)],  # nearest rank
        "max": ordered[-1],
    }


def _prompt_length(prompt: Prompt) -> int:
    return len(prompt) if isinstance(prompt, str) else sum(len(m["content"]) for m in prompt)


SUMMARY_COUNTS = (
    "rows",
    "pairs",
    "fields",
    "prompt_forms",
    "ties",
    "rankings",
    "groups",
    "with_strength",
    "with_ratings",
    "with_margin",
    "with_weight",
    "with_subset",
    "with_annotator",
    "duplicate_pairs",
    "distinct_prompts",
)
"""The counts of ``summarize`` that ``rewardlab data check`` shows, in this order."""


def summary_tables(summary: dict[str, Any]) -> tuple[Table, Table, Table | None]:
    """``data check``'s tables: the counts, the lengths, and the pairs per subset (if any)."""
    counts = Table(title=f"{summary['path']}", show_header=False, title_justify="left")
    for key in SUMMARY_COUNTS:
        value = summary[key]
        counts.add_row(key.replace("_", " "), value if isinstance(value, str) else json.dumps(value))
    counts.add_row("skipped rows", str(summary["skipped"]["count"]))
    lengths = Table("characters", "min", "median", "mean", "p95", "max", title_justify="left")
    for name, stats in summary["lengths"].items():
        lengths.add_row(name, *(str(stats.get(k, "")) for k in ("min", "median", "mean", "p95", "max")))
    if not summary["subsets"]:
        return counts, lengths, None
    subsets = Table("subset", "pairs")
    for name, n in summary["subsets"].items():
        subsets.add_row(name, str(n))
    return counts, lengths, subsets
