"""Environments by name, for the command line: a shipped gridworld, a random one, a layout file, or Gymnasium.

``--env`` takes one of:

- a shipped layout (``LAYOUTS``): ``delivery`` (Knox et al.'s delivery domain in small), ``cliff``, ``bridge``
  and ``ledge`` (the short way runs beside hazards: where mean and risk part ways), ``corridor``, ``pocket``;
- ``random:SIZE`` (a random delivery-style grid, drawn from ``--seed``);
- a text file of grid rows (``.`` empty, ``c`` coin, ``m`` mud, ``G`` goal, ``X`` hazard, ``#`` wall, ``S``
  start);
- any other name is a Gymnasium environment id (``CartPole-v1``, ``Pendulum-v1``...), whose true reward is the
  environment's own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardlab.control.mdp import TabularMDP, gridworld, random_gridworld

LAYOUTS: dict[str, tuple[str, ...]] = {
    "delivery": (
        "S..m..c",
        ".#.m.#.",
        "..c.X..",
        "m.#..m.",
        "..X.c.G",
    ),
    "cliff": ("............", "............", "............", "SXXXXXXXXXXG"),
    "bridge": ("............", ".##########.", ".XXXXXXXXXX.", "S..........G", ".XXXXXXXXXX."),
    "ledge": ("S.........G", ".XXXXXXXXX.", "...........", "...........", "...........", "..........."),
    "corridor": ("S....G",),
    "pocket": ("S.........", "..........", "..........", "..........", "..........", ".........#", "........cG"),
}
"""``cliff``, ``bridge`` and ``ledge`` are where risk matters: the short way runs beside hazards and a longer one
is safe, so with slip the mean-optimal and the CVaR-optimal routes differ (Sutton & Barto's cliff, a bridge with
hazards on both sides, a ledge whose detour is long). ``pocket`` hides its goal in the far corner behind a coin:
a sparse reward a random walk seldom finds (ONI's setting)."""

RISK_LAYOUTS = ("cliff", "bridge", "ledge")


class UnknownEnvironment(ValueError):
    """An ``--env`` that names nothing rewardlab can build."""


def is_tabular(spec: str) -> bool:
    """Whether ``spec`` names a gridworld (rather than a Gymnasium id)."""
    return spec in LAYOUTS or spec.startswith("random:") or Path(spec).is_file()


def tabular_env(spec: str, seed: int = 0, gamma: float = 0.99, slip: float = 0.0) -> TabularMDP:
    """The gridworld ``spec`` names (see the module docstring)."""
    if spec in LAYOUTS:
        return gridworld(LAYOUTS[spec], gamma=gamma, slip=slip)
    if spec.startswith("random:"):
        size = spec.removeprefix("random:")
        if not size.isdigit() or not 3 <= int(size) <= 30:
            raise UnknownEnvironment(f'--env "{spec}": expected random:SIZE with SIZE from 3 to 30')
        if slip:
            raise UnknownEnvironment(f'--env "{spec}": slip applies to shipped layouts and layout files only')
        return random_gridworld(np.random.default_rng(seed), int(size), gamma=gamma)
    path = Path(spec)
    if not path.is_file():
        raise UnknownEnvironment(
            f'--env "{spec}" is no shipped layout ({", ".join(LAYOUTS)}), random:SIZE or layout file'
        )
    rows = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        return gridworld(rows, gamma=gamma, slip=slip)
    except ValueError as error:
        raise UnknownEnvironment(f"{path}: {error}") from None
