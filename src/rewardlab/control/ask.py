"""Asking a person which of two gridworld segments is better, in the terminal.

Each segment is drawn on the grid: the cells it visits numbered in order (0 where it starts; a number
replaces the cell's letter, which the line below the grid names), the two side by side, then the person
answers ``a``, ``b``, ``e`` (equally good), ``s`` (skip the pair) or ``q`` (stop; what was answered is kept).
Reading and writing are passed in, so the same loop serves a terminal and a test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rewardlab.control.mdp import CELL_NAMES, TabularMDP, grid_cells
from rewardlab.control.segments import Segment, SegmentPreference

ANSWERS = {"a": "a", "b": "b", "e": "equal"}
LEGEND = "cells: . empty, c coin, m mud, G goal, X hazard, # wall; digits: the segment's steps in order"


def draw_segment(mdp: TabularMDP, segment: Segment) -> list[str]:
    """The layout with the segment's visited cells numbered by the step they are reached (mod 10; the last
    visit shows), and one line naming what each step entered."""
    cells = grid_cells(mdp)
    rows = [list(row.replace("S", ".")) for row in mdp.layout]
    for step, state in enumerate(segment.observations):
        i, j = cells[int(state)]
        rows[i][j] = str(step % 10)
    entered = [
        CELL_NAMES[mdp.layout[i][j].replace("S", ".")] for i, j in (cells[int(s)] for s in segment.observations[1:])
    ]
    return ["".join(row) for row in rows] + ["entered: " + ", ".join(entered)]


def side_by_side(left: Sequence[str], right: Sequence[str], gap: int = 6) -> list[str]:
    width = max(len(line) for line in left)
    height = max(len(left), len(right))
    pad = lambda lines: list(lines) + [""] * (height - len(lines))  # noqa: E731
    return [f"{a:<{width}}{' ' * gap}{b}" for a, b in zip(pad(left), pad(right), strict=True)]


def ask_preferences(
    mdp: TabularMDP,
    pairs: Sequence[tuple[Segment, Segment]],
    read: Callable[[str], str],
    write: Callable[[str], None],
    task: str | None = None,
) -> list[SegmentPreference]:
    """One judgement per pair the person answers (skipped pairs are left out; ``q`` ends early). An answer
    that is none of a, b, e, s, q is asked again."""
    records = []
    for k, (a, b) in enumerate(pairs, start=1):
        write(f"\npair {k} of {len(pairs)}    ({LEGEND})")
        left, right = draw_segment(mdp, a), draw_segment(mdp, b)
        write("\n".join(side_by_side(["a", *left], ["b", *right])))
        while (answer := read("which is better? a, b, e (equal), s (skip), q (stop)").strip().lower()) not in (
            *ANSWERS,
            "s",
            "q",
        ):
            write(f"{answer!r} is not an answer")
        if answer == "q":
            break
        if answer in ANSWERS:
            records.append(SegmentPreference(a, b, ANSWERS[answer], task))
    return records
