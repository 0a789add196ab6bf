"""The output folder of a run: claim it, continue it (``--resume``) or replace it (``--overwrite``).

A kind of run states its rules once (:class:`RunRules`: what says the folder is taken, what
``--overwrite`` removes, which options a resumed run may change), and :func:`claim_run_folder` applies
them, so reward-model and policy runs follow one procedure.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.runs.config import apply_config, flat_options


class RunExists(RuntimeError):
    """The output folder holds a run that this one would continue or replace without being asked to."""


def holds_checkpoint(path: Path) -> bool:
    return (path / "checkpoint").exists()


def holds_anything(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


@dataclass(frozen=True)
class RunRules:
    """How a kind of run treats its output folder."""

    occupied: Callable[[Path], bool]
    """True when the folder holds something a new run must not write over unasked."""
    may_change: Callable[[str], bool]
    """True for the dotted config keys a resumed run may change (they leave the weights as they are)."""
    owned: tuple[str, ...] = ()
    """The names in the folder that ``--overwrite`` removes before the run starts."""


@dataclass(frozen=True)
class RunFolder:
    path: Path
    resuming: bool
    """A checkpoint is there and ``--resume`` asked to continue from it."""

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint"

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"


def claim_run_folder(path: str | Path, config: Any, rules: RunRules, *, resume: bool, overwrite: bool) -> RunFolder:
    """The folder a run of ``config`` writes to, checked before any work: a resumed run must be the
    same run (``RunExists`` names every option that differs); a taken folder needs ``--resume`` or
    ``--overwrite``."""
    folder = RunFolder(Path(path), resuming=resume and (Path(path) / "checkpoint" / "state.json").is_file())
    if folder.resuming:
        changed = changed_options(folder.config, config, rules.may_change)
        if changed:
            raise RunExists(
                f"{folder.path} was trained with other options; --resume needs the same ones: " + "; ".join(changed)
            )
    elif not overwrite and rules.occupied(folder.path):
        raise RunExists(
            f"{folder.path} already holds a run; pass --resume to continue it, --overwrite to replace it, "
            "or choose another --output"
        )
    if overwrite and not resume:
        for name in rules.owned:
            target = folder.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    return folder


def changed_options(saved: Path, config: Any, may_change: Callable[[str], bool]) -> list[str]:
    """``key: before -> now`` for every option of ``config`` that differs from the config saved in
    ``saved`` and may not change; the saved file is read into the same config class, so a key it lacks
    counts as its default and values compare after the same type conversion."""
    if not saved.is_file():
        raise RunExists(f"{saved}: missing; cannot check that --resume continues the same run")
    before = type(config)()
    apply_config(before, saved)  # a key this version no longer knows cannot hold a weight it uses
    old, new = flat_options(before), flat_options(config)
    return [
        f"{key}: {old[key]!r} -> {value!r}" for key, value in new.items() if not may_change(key) and old[key] != value
    ]
