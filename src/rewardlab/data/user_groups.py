"""Two groups of users who disagree on one aspect, built from real preference pairs
(``rewardlab data groups``), for pluralistic reward models (issue 33: PAL, VPL, MaxMin-RLHF, MiCRo).

The construction, exactly:

1. Read the pairs of a file or packaged dataset (``hh-harmless``, ``ultrafeedback``...); rows that
   state no preference (two identical replies) are skipped, as loading always does.
2. Make ``users`` users ``user-00``, ``user-01``...; ``round(minority × users)`` of them, drawn with
   ``seed``, form the group ``minority``, the others ``majority`` (both must be non-empty).
3. Shuffle the pairs with ``seed`` and deal them round-robin: each pair goes to one user, and every
   user gets ⌊N/U⌋ or ⌈N/U⌉ pairs, so the minority holds about ``minority`` of the pairs.
4. A majority user keeps the human label. A minority user keeps it too, except on the pairs where
   the two replies differ in the aspect, where it prefers the reply the aspect's rule names:
   - ``length``: the replies differ when the longer (in characters) is more than ``threshold``
     (default 0.2, i.e. 20 %) longer than the shorter; the minority prefers the **shorter** one
     (``prefer="longer"``: the longer one). Choose the side the human labels lean against: on HH
     harmless, where the chosen reply is more often the shorter, a minority for shorter replies agrees
     with what any reward model learns first, and a minority for longer replies does not.
   - ``refusal``: the replies differ when exactly one of them refuses (``data.refusals``: an apology,
     "I can't / I won't", a deflection, in its first 200 characters); the minority prefers the one that **does not
     refuse**.
   A minority pair whose human-chosen reply is already the one the rule prefers, and every pair
   labelled as a tie, is left as it is.
   With ``opposed`` (``length`` only) the majority follows the opposite rule where the lengths
   differ, so the two groups have opposite preferences on the aspect and the human label decides
   only where the lengths are close. Without it, the group that follows a rule is the easier one to learn
   whatever its size: one reward fitted to everybody learns the rule and serves the minority best
   (``benchmarks/RESULTS.md``, issue 33).
5. Write every original field of each row, with the chosen and rejected fields (and their ratings,
   when the column map names them) swapped where the label flipped, plus ``annotator`` (the user),
   ``annotator_group`` (``majority`` or ``minority``) and ``original_label`` (``kept`` or ``flipped``:
   whether this row's chosen reply is the one the human chose).

The groups disagree only where the aspect differs, so a single reward that follows the human label
fits the majority and is wrong for the minority on exactly those pairs (``GroupsOutput.minority_flipped``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.atomic import write_text_atomic
from rewardlab.data.forms import parse_row
from rewardlab.data.named import named_data
from rewardlab.data.readers import iter_rows
from rewardlab.data.records import DataError, PreferencePair
from rewardlab.data.refusals import refuses
from rewardlab.data.schema import MISSING, ColumnMap, NoPreference, lookup_field

MAJORITY, MINORITY = "majority", "minority"
ASPECTS = ("length", "refusal")
PREFERENCES = ("shorter", "longer")
"""Which reply the minority prefers where the lengths differ (``--aspect length``)."""
OTHER_SIDE = {"shorter": "longer", "longer": "shorter"}
REFUSAL_WITHIN = 200
"""A reply refuses when its first this many characters do (``data.refusals``): a refusal opens a reply."""


def group_rule(group: str, prefer: str, opposed: bool) -> str | None:
    """The length side ``group`` prefers where the replies differ (``prefer`` for the minority, the other
    side for an ``opposed`` majority), or None where the group keeps the human label."""
    if group == MINORITY:
        return prefer
    return OTHER_SIDE[prefer] if opposed else None


def prefers_other(pair: PreferencePair, aspect: str, threshold: float, prefer: str = "shorter") -> bool:
    """Whether the minority prefers ``pair.rejected``: the replies differ in ``aspect`` and the human
    chose the reply the minority's rule disfavours (the longer one, or the shorter with ``prefer="longer"``;
    the one that refuses)."""
    if pair.tie:
        return False
    if aspect == "length":
        chosen, rejected = len(pair.chosen), len(pair.rejected)
        if prefer == "longer":
            chosen, rejected = rejected, chosen
        return chosen > (1 + threshold) * rejected
    return refuses(pair.chosen, REFUSAL_WITHIN) and not refuses(pair.rejected, REFUSAL_WITHIN)


@dataclass
class GroupsOutput:
    """What ``build_user_groups`` wrote: the counts the docs report."""

    output: str
    pairs: int
    users: int
    minority_users: int
    pairs_by_group: dict[str, int]
    minority_flipped: int
    """Minority pairs whose label differs from the human one."""
    majority_flipped: int = 0
    """Majority pairs whose label differs from the human one (``opposed`` only)."""
    skipped: int = 0
    """Rows skipped (no preference stated, or bad with ``skip_bad_rows``)."""
    by_user: dict[str, int] = field(default_factory=dict)

    @property
    def minority_flipped_share(self) -> float:
        return self.minority_flipped / max(1, self.pairs_by_group[MINORITY])

    def summary(self) -> str:
        return (
            f"wrote {self.pairs} pairs for {self.users} users to {self.output}: majority "
            f"{self.users - self.minority_users} users, {self.pairs_by_group[MAJORITY]} pairs; minority "
            f"{self.minority_users} users, {self.pairs_by_group[MINORITY]} pairs, of which "
            f"{self.minority_flipped} ({self.minority_flipped_share:.1%}) have the human label reversed"
            + (f"; majority: {self.majority_flipped} reversed" if self.majority_flipped else "")
            + (f"; skipped {self.skipped} rows" if self.skipped else "")
        )


def check_options(
    aspect: str, minority: float, users: int, threshold: float, prefer: str = "shorter", opposed: bool = False
) -> list[str]:
    """Every problem with the options, at once."""
    errors = []
    if opposed and aspect != "length":
        errors.append(f"--opposed is for --aspect length (got {aspect!r})")
    if prefer not in PREFERENCES:
        errors.append(f"--prefer must be one of {', '.join(PREFERENCES)} (got {prefer!r})")
    if aspect not in ASPECTS:
        errors.append(f"--aspect must be one of {', '.join(ASPECTS)} (got {aspect!r})")
    if users < 2:
        errors.append(f"--users must be at least 2, one per group (got {users})")
    elif not 1 <= round(minority * users) <= users - 1:
        errors.append(
            f"--minority {minority:g} of {users} users gives {round(minority * users)} minority users; "
            "both groups need at least one (use a share between 0 and 1, or more users)"
        )
    if threshold < 0:
        errors.append(f"--threshold must be ≥ 0 (got {threshold:g})")
    return errors


def build_user_groups(
    data: str | Path,
    output: str | Path,
    *,
    aspect: str = "length",
    minority: float = 0.3,
    users: int = 20,
    seed: int = 0,
    threshold: float = 0.2,
    prefer: str = "shorter",
    opposed: bool = False,
    columns: ColumnMap | None = None,
    skip_bad_rows: bool = False,
) -> GroupsOutput:
    """Write ``data``'s pairs as judged by two groups of users (the construction in the module's
    docstring) to ``output`` (JSONL, atomically) and return the counts."""
    errors = check_options(aspect, minority, users, threshold, prefer, opposed)
    if errors:
        raise ValueError("; ".join(errors))
    path, columns, skip_bad_rows = _resolve(data, columns, skip_bad_rows)
    if Path(output).resolve() == Path(path).resolve():
        raise ValueError(f"--output {output} is the input file; write the groups elsewhere")
    rows, skipped = _pair_rows(path, columns, skip_bad_rows)
    rng = np.random.default_rng(seed)
    width = len(str(users - 1))
    names = [f"user-{i:0{width}d}" for i in range(users)]
    in_minority = set(rng.choice(users, size=round(minority * users), replace=False).tolist())
    owner = np.empty(len(rows), dtype=int)
    owner[rng.permutation(len(rows))] = np.arange(len(rows)) % users
    lines, flipped = [], {MAJORITY: 0, MINORITY: 0}
    counts = {MAJORITY: 0, MINORITY: 0}
    by_user = dict.fromkeys(names, 0)
    for (row, pair), user in zip(rows, owner.tolist(), strict=True):
        group = MINORITY if user in in_minority else MAJORITY
        rule = group_rule(group, prefer, opposed)
        flip = rule is not None and prefers_other(pair, aspect, threshold, rule)
        flipped[group] += flip
        counts[group] += 1
        by_user[names[user]] += 1
        out = _swapped(row, columns) if flip else dict(row)
        out.update(annotator=names[user], annotator_group=group, original_label="flipped" if flip else "kept")
        lines.append(json.dumps(out, ensure_ascii=False))
    write_text_atomic(output, "\n".join(lines) + "\n")
    return GroupsOutput(
        str(output),
        len(rows),
        users,
        len(in_minority),
        counts,
        flipped[MINORITY],
        majority_flipped=flipped[MAJORITY],
        skipped=skipped,
        by_user=by_user,
    )


def _resolve(data: str | Path, columns: ColumnMap | None, skip_bad_rows: bool) -> tuple[Path, ColumnMap, bool]:
    """The file, column map and bad-row handling of ``data`` (a packaged dataset by name, or a file)."""
    named = None if Path(data).exists() else named_data(data)
    if named is not None:
        return named.path(), named.column_map(columns), skip_bad_rows or named.skip_bad_rows
    if not Path(data).is_file():
        raise FileNotFoundError(f"{data}: no such file, nor a packaged dataset name")
    return Path(data), columns or ColumnMap(), skip_bad_rows


def _pair_rows(
    path: Path, columns: ColumnMap, skip_bad_rows: bool
) -> tuple[list[tuple[dict[str, Any], PreferencePair]], int]:
    """Each usable row with its pair; rows that state no preference are skipped (counted)."""
    rows, skipped = [], 0
    for location, row in iter_rows(path):
        try:
            parsed = parse_row(row, location, columns)
        except NoPreference:
            skipped += 1
            continue
        except DataError:
            if not skip_bad_rows:
                raise
            skipped += 1
            continue
        if lookup_field(row, columns.chosen) is MISSING or parsed.pairs[0].rejected_prompt is not None:
            raise ValueError(
                f'{location}: data groups needs rows with "{columns.chosen}" and "{columns.rejected}" '
                "under one prompt (not graded, k-wise, tree or two-prompt rows)"
            )
        rows.append((row, parsed.pairs[0]))
    if not rows:
        raise ValueError(f"{path}: no pairs to give to users ({skipped} rows skipped)")
    return rows, skipped


def _swapped(row: dict[str, Any], columns: ColumnMap) -> dict[str, Any]:
    """``row`` with its chosen and rejected fields exchanged, and their ratings when present."""
    out = json.loads(json.dumps(row))  # a deep copy: nested fields (metadata.score_chosen) change
    for a, b in ((columns.chosen, columns.rejected), (columns.chosen_rating, columns.rejected_rating)):
        first, second = lookup_field(out, a), lookup_field(out, b)
        if first is MISSING and second is MISSING:
            continue
        _assign(out, a, second)
        _assign(out, b, first)
    return out


def _assign(row: dict[str, Any], name: str, value: Any) -> None:
    """Set ``name`` (a key, or a dotted path into nested objects, as ``lookup_field`` reads it)."""
    if value is MISSING:
        return
    if name in row or "." not in name:
        row[name] = value
        return
    target: Any = row
    *parents, last = name.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value
