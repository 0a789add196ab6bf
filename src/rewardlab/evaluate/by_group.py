"""Accuracy per annotator or per group of annotators (``rewardlab eval --by annotator|group``), and how
well a learned clustering of users recovers their true groups (purity, adjusted Rand index).

One reward for everyone serves the majority: its pooled accuracy can look fine while a minority
group is at chance (issue 33; the motivation of PAL, VPL, MaxMin-RLHF and MiCRo). So each annotator
(or group) gets its own accuracy with a Wilson interval, worst first. A pair without an annotator
(or whose annotator has no group) is counted under ``(none)``, never dropped.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.metrics import wilson_interval

NONE = "(none)"
"""The row of pairs without an annotator (``--by annotator``) or without a group (``--by group``)."""
BY = ("annotator", "group")


@dataclass
class GroupAccuracy:
    """One annotator's (or group's) accuracy over its pairs with a labelled order, with a 95 % Wilson
    interval; ``pairs`` counts all its pairs (tie-labelled ones included), ``members`` its annotators."""

    name: str
    accuracy: float
    ci_low: float
    ci_high: float
    n: int
    pairs: int
    members: int
    scored_for: str
    """Whose reward scored these pairs: ``population`` (one reward for all), ``that user``
    (a pluralistic model's row for the annotator), or ``each member`` (a group's pairs, each for its
    annotator)."""


@dataclass
class ByGroupOutput:
    by: str
    rows: list[GroupAccuracy]
    """Worst accuracy first; rows without a labelled pair (accuracy NaN) last."""


def annotator_groups(
    pairs: Sequence[PreferencePair], groups: Mapping[str, Sequence[str]] | None = None
) -> dict[str, str]:
    """Each annotator's group: from ``groups`` (group → annotator ids, a ``--groups`` file) when given,
    else from the pairs' ``annotator_group`` field. An annotator in two groups, or a group with no
    annotator that has pairs here, is a ``ValueError``: group accuracy would silently mean something else."""
    seen = {p.annotator for p in pairs if p.annotator is not None}
    owner: dict[str, str] = {}
    if groups is not None:
        for group, members in groups.items():
            if not any(m in seen for m in members):
                raise ValueError(f"--groups: group {group!r} has no annotator with pairs in the data")
            for member in members:
                if owner.setdefault(member, group) != group:
                    raise ValueError(f"--groups: annotator {member!r} is in two groups ({owner[member]!r}, {group!r})")
        return owner
    for pair in pairs:
        if pair.annotator is None or pair.annotator_group is None:
            continue
        if owner.setdefault(pair.annotator, pair.annotator_group) != pair.annotator_group:
            raise ValueError(
                f"{pair.source or 'data'}: annotator {pair.annotator!r} is in group {pair.annotator_group!r} "
                f"here and in {owner[pair.annotator]!r} elsewhere (a group is a property of the annotator)"
            )
    if not owner:
        raise ValueError(
            "--by group: no pair names its annotator's group (give an annotator_group field, map one with "
            "--columns annotator_group=FIELD, or give --groups FILE.json)"
        )
    return owner


def accuracy_by(
    pairs: Sequence[PreferencePair],
    correct: Sequence[float],
    ordered: Sequence[bool],
    by: str = "annotator",
    *,
    groups: Mapping[str, Sequence[str]] | None = None,
    personal: Sequence[bool] | None = None,
) -> ByGroupOutput:
    """Accuracy per annotator or group over the pairs with a labelled order (``correct``: each pair's
    1, 1/2 or 0; ``ordered``: not tie-labelled), worst first.

    ``personal[i]`` says pair i was scored for its annotator (a pluralistic model that knows the id),
    not for the population; a row reads ``that user`` / ``each member`` when all its pairs were.
    """
    if by not in BY:
        raise ValueError(f"--by must be annotator or group (got {by!r})")
    owner = annotator_groups(pairs, groups) if by == "group" else {}
    personal = [False] * len(pairs) if personal is None else personal
    values: dict[str, list[float]] = defaultdict(list)
    counts: Counter[str] = Counter()
    members: dict[str, set[str]] = defaultdict(set)
    mine: dict[str, list[bool]] = defaultdict(list)
    for pair, value, keep, own in zip(pairs, correct, ordered, personal, strict=True):
        name = pair.annotator if by == "annotator" else owner.get(pair.annotator or "")
        name = NONE if name is None else name
        counts[name] += 1
        mine[name].append(bool(own))
        if pair.annotator is not None:
            members[name].add(pair.annotator)
        if keep:
            values[name].append(float(value))
    rows = []
    for name, total in counts.items():
        v = np.asarray(values[name], dtype=float)
        low, high = wilson_interval(float(v.sum()), int(v.size))
        own = "that user" if by == "annotator" else "each member"
        scored = own if all(mine[name]) else "population" if not any(mine[name]) else f"{own} where known"
        accuracy = float(v.mean()) if v.size else float("nan")
        rows.append(GroupAccuracy(name, accuracy, low, high, int(v.size), total, len(members[name]), scored))
    rows.sort(key=lambda r: (np.isnan(r.accuracy), r.accuracy, r.name))
    return ByGroupOutput(by, rows)


def by_group_lines(output: ByGroupOutput) -> list[str]:
    """The Markdown table of ``output``, worst first."""
    lines = [
        "",
        f"### Per {output.by} (worst first)",
        "",
        f"| {output.by} | accuracy | 95 % Wilson CI | n | pairs | annotators | scored for |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in output.rows:
        interval = f"{r.ci_low:.4f} – {r.ci_high:.4f}" if r.n else "–"
        lines.append(f"| {r.name} | {r.accuracy:.4f} | {interval} | {r.n} | {r.pairs} | {r.members} | {r.scored_for} |")
    return lines


def purity(true: Sequence[object], predicted: Sequence[object]) -> float:
    """The share of items whose predicted cluster's most common true group is their own
    (Manning, Raghavan & Schütze 2008, §16.3): 1 for a perfect clustering, the largest group's share
    when everything is one cluster. Rewards many small clusters, so read it with the adjusted Rand index."""
    if len(true) != len(predicted) or not true:
        raise ValueError(f"purity needs two equal, non-empty labelings (got {len(true)} and {len(predicted)})")
    clusters: dict[object, Counter[object]] = defaultdict(Counter)
    for t, p in zip(true, predicted, strict=True):
        clusters[p][t] += 1
    return sum(c.most_common(1)[0][1] for c in clusters.values()) / len(true)


def adjusted_rand_index(true: Sequence[object], predicted: Sequence[object]) -> float:
    """Hubert & Arabie's (1985) adjusted Rand index: pair-counting agreement corrected for chance,

        ARI = (Σ_ij C(n_ij, 2) − E) / (½ (Σ_i C(a_i, 2) + Σ_j C(b_j, 2)) − E),
        E = Σ_i C(a_i, 2) · Σ_j C(b_j, 2) / C(n, 2)

    with n_ij the contingency counts and a_i, b_j its row and column sums. 1 for identical partitions
    (up to renaming), about 0 for a random one, negative when worse than chance. Equal to scikit-learn's
    ``adjusted_rand_score``, including its convention of 1 when both labelings put everything in one
    cluster or each item alone (the denominator is 0).
    """
    if len(true) != len(predicted) or not true:
        raise ValueError(f"adjusted Rand index: needs two equal, non-empty labelings ({len(true)}, {len(predicted)})")

    def pairs_in(counts: Counter[object]) -> float:
        return float(sum(c * (c - 1) / 2 for c in counts.values()))

    joint = pairs_in(Counter(zip(true, predicted, strict=True)))
    rows, columns = pairs_in(Counter(true)), pairs_in(Counter(predicted))
    n = len(true)
    expected = rows * columns / (n * (n - 1) / 2) if n > 1 else 0.0
    denominator = (rows + columns) / 2 - expected
    return 1.0 if denominator == 0 else (joint - expected) / denominator
