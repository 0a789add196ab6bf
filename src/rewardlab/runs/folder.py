"""The output folder of a run: claim it, continue it (``--resume``) or replace it (``--overwrite``).

A kind of run states its rules once (:class:`RunRules`: what says the folder is taken, what
``--overwrite`` removes, which options a resumed run may change), and :func:`claim_run_folder` applies
them, so reward-model and policy runs follow one procedure. Claiming only checks (and finishes what a
killed save left, :func:`rewardlab.atomic.clean_folder`); the previous run's files go at
:meth:`RunFolder.start`, which a run calls once its data and model are loaded, so a mistake found
before then leaves the previous run whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.atomic import clean_folder, remove_own
from rewardlab.destinations import check_folder_destination
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
    """What ``--overwrite`` removes when the new run starts: names or globs in the folder (a folder
    rewardlab wrote loses only the entries it lists as its own; a user's files stay)."""


@dataclass(frozen=True)
class RunFolder:
    path: Path
    resuming: bool
    """A checkpoint is there and ``--resume`` asked to continue from it."""
    replacing: bool = False
    """``--overwrite``: the previous run's own files are removed at :meth:`start`."""
    owned: tuple[str, ...] = ()

    def start(self) -> None:
        """Make the folder ready to write, once the run has passed its checks and loaded its data and
        model: with ``--overwrite`` the previous run's own files go now, not before (a typo in
        ``--data`` must not cost the previous run)."""
        if self.replacing:
            for pattern in self.owned:
                for target in sorted(self.path.glob(pattern)):
                    remove_own(target)
                parent = (self.path / pattern).parent
                if parent != self.path and parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
        self.path.mkdir(parents=True, exist_ok=True)

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
    ``--overwrite``. ``--resume`` of a run killed before its first checkpoint starts it again.

    What a killed save left is finished or rolled back first (``.checkpoint.old`` is the last complete
    checkpoint when ``checkpoint/`` is missing), so the checks see the run as it was last saved."""
    path = Path(path)
    check_folder_destination(path)  # read-only, full or a file: said now, not after the data and model load
    clean_folder(path)
    folder = RunFolder(
        path,
        resuming=resume and (path / "checkpoint" / "state.json").is_file(),
        replacing=overwrite and not resume,
        owned=rules.owned,
    )
    if resume and (folder.resuming or folder.config.is_file()):
        changed = changed_options(folder.config, config, rules.may_change)
        if changed:
            raise RunExists(
                f"{folder.path} was trained with other options; --resume needs the same ones: " + "; ".join(changed)
            )
    elif not overwrite and rules.occupied(path):
        if resume or not (folder.checkpoint.exists() or folder.config.is_file()):
            raise RunExists(
                f"{path} is not empty and holds no run to --resume (no checkpoint/, no config.yaml); pass "
                "--overwrite to start a run there (only rewardlab's files are ever replaced) or choose another --output"
            )
        raise RunExists(
            f"{path} already holds a run; pass --resume to continue it, --overwrite to replace it "
            "(only rewardlab's files are replaced; yours stay), or choose another --output"
        )
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
