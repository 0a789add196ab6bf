"""Where a command's output goes: checked before the work, written as one unit, failures said in one line.

A command that scores or evaluates for minutes must not find out only at the end that it cannot save
(a read-only mount, a folder where a file was meant, a file where a folder was meant), and a failure
while saving must leave what the user had untouched and read as one line naming the path, not a
traceback.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from rewardlab.atomic import write_files_atomic


class DestinationError(OSError):
    """An output path that cannot be written, read as ``path: cannot write (reason)``."""

    def __init__(self, path: str | Path, reason: str, code: int | None = None) -> None:
        super().__init__(code, reason, str(path))

    def __str__(self) -> str:
        return f"{self.filename}: cannot write ({self.strerror})"


JSONL_SUFFIXES = (".jsonl", ".ndjson")


def check_jsonl_destination(path: str | Path, option: str = "--output") -> Path:
    """``path`` as a writable JSON-lines file name (``.jsonl`` or ``.ndjson``), else one line naming ``option``."""
    path = Path(path)
    if path.suffix not in JSONL_SUFFIXES:
        raise ValueError(f"{option} {path}: rows are written as JSON lines; give a name ending in .jsonl")
    check_file_destination(path)
    return path


def check_file_destination(path: str | Path) -> None:
    """Raise ``DestinationError`` unless ``path`` can be written as a file (its folder may not exist yet)."""
    path = Path(path)
    if path.is_dir():
        raise DestinationError(path, "it is a folder; give a file name", errno.EISDIR)
    if path.exists() and not path.is_file():
        raise DestinationError(path, "it is not a regular file", errno.EINVAL)
    _check_can_create_in(_existing_ancestor(path.parent, path), path)


def check_folder_destination(path: str | Path) -> None:
    """Raise ``DestinationError`` unless files can be written into folder ``path`` (made if missing)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DestinationError(path, "it is a file; give a folder", errno.ENOTDIR)
    _check_can_create_in(_existing_ancestor(path, path), path)


def _existing_ancestor(folder: Path, path: Path) -> Path:
    """The nearest folder at or above ``folder`` that exists; a file in the way is an error."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise DestinationError(path, f"{candidate} is a file, not a folder", errno.ENOTDIR)
            return candidate
    return Path.cwd()  # pragma: no cover - a relative path's ancestors end at the working folder


def _check_can_create_in(folder: Path, path: Path) -> None:
    """Create and remove a probe file: the only test that holds for root, read-only mounts and ACLs alike."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".rewardlab-probe-", suffix=".tmp")
    except OSError as error:
        raise DestinationError(path, error.strerror or str(error), error.errno) from None
    os.close(fd)
    os.unlink(probe)


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing to ``path`` (a full disk, a mount gone read-only) into a
    ``DestinationError`` naming ``path``, the name the user gave rather than a temporary file's."""
    try:
        yield
    except DestinationError:
        raise
    except OSError as error:
        raise DestinationError(path, error.strerror or str(error), error.errno) from error


def os_error_message(error: OSError) -> str:
    """One line for an ``OSError``: the path and the reason, without Python's ``[Errno N]`` prefix."""
    if isinstance(error, DestinationError) or not error.strerror:
        return str(error)
    paths = " -> ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
    return f"{paths}: {error.strerror}" if paths else error.strerror


def write_report_files(directory: str | Path, files: Mapping[Path, str]) -> None:
    """All of a report's files or none (a failure leaves the old report whole, not half replaced);
    a failure to write reads as one line naming the folder."""
    with writing(directory):
        write_files_atomic(files)
