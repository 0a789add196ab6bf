"""Atomic writes: a reader sees the old file or the new one, never half of one.

A kill can still stop a write part-way. What it leaves has names only these writes use: a temporary
``.NAME.<pid>.<random>.tmp`` beside ``NAME``, and, during a folder's swap, the previous folder at
``.NAME.old``. :func:`clean_leftovers` finishes or rolls back such a write (a folder is never left
missing when a complete version of it exists) and is called before each write of ``NAME``, and for a
whole run folder when a run starts in it (:func:`clean_folder`).

A folder written here lists its own entries in ``.rewardlab-files.json``; what else a user put in it
is carried into the folder that replaces it, so replacing a model or checkpoint never deletes a
user's files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MANIFEST = ".rewardlab-files.json"
"""In a folder written by :func:`atomic_directory`: the names of the entries rewardlab wrote there."""

_TMP = re.compile(r"\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp")
"""``.NAME.<pid>.<8 random>.tmp`` (``tempfile``'s random names; older versions wrote no pid)."""
_OLD = re.compile(r"\.(?P<name>.+)\.old")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder and a rename."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as JSON lines (UTF-8 text, not escaped), atomically."""
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    write_files_atomic({Path(path): data})


def write_files_atomic(files: Mapping[Path, bytes | str]) -> None:
    """Write several files (text as UTF-8) so that a failure replaces none of them: each is staged
    beside its destination first, and only when all are staged are they renamed into place."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            staged.append((_stage(path, data.encode("utf-8") if isinstance(data, str) else data), path))
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)


def _stage(path: Path, data: bytes) -> str:
    """``data`` in a synced temporary file beside ``path``, named so that a later write cleans it up."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole.

    If the body raises, ``path`` keeps its old content and the temporary folder is removed. The swap
    is two renames (``path`` to ``.NAME.old``, the temporary folder to ``path``); a kill between them
    leaves ``path`` missing and ``.NAME.old`` complete, which :func:`clean_leftovers` puts back. Entries
    of the old folder that rewardlab did not write (not in its :data:`MANIFEST`) move into the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp"))
    old = path.with_name(f".{path.name}.old")
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        _write_manifest(tmp, sorted(p.name for p in tmp.iterdir() if p.name != MANIFEST))
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        if old.exists() and not path.exists():
            os.replace(old, path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _retire(old, path)


def clean_leftovers(path: str | Path) -> None:
    """Finish or roll back what killed writes of ``path`` left beside it.

    ``path`` missing with ``.NAME.old`` there: the kill fell between the two renames of a swap, and
    ``.NAME.old`` is the last complete version, so it is put back. ``path`` there with ``.NAME.old``:
    the swap was done; the user's entries of the old folder move over and the rest is removed.
    Temporary files and folders of writers no longer running are removed (a running writer's stay).
    """
    path = Path(path)
    if not path.parent.is_dir():
        return
    old = path.with_name(f".{path.name}.old")
    if old.is_dir():
        if not path.exists():
            with contextlib.suppress(OSError):  # another process of the same run put it back first
                os.replace(old, path)
        else:
            _retire(old, path)
    mine = re.compile(rf"\.{re.escape(path.name)}\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{{8}}\.tmp")
    for entry in path.parent.iterdir():
        match = mine.fullmatch(entry.name)
        if match and _writer_gone(match["pid"]):
            _remove(entry)


def clean_folder(folder: str | Path) -> None:
    """:func:`clean_leftovers` for every target in ``folder`` and in its subfolders (one level) that
    a killed write left something beside."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for parent in [folder, *(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))]:
        targets = set()
        for entry in parent.iterdir():
            match = _TMP.fullmatch(entry.name) or _OLD.fullmatch(entry.name)
            if match:
                targets.add(match["name"])
        for name in targets:
            clean_leftovers(parent / name)


def own_entries(folder: Path) -> list[Path] | None:
    """The entries of ``folder`` that rewardlab wrote (from its :data:`MANIFEST`, which included), or
    None when it has no manifest (written before manifests existed, or not by rewardlab)."""
    try:
        listed = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [folder / name for name in [*listed, MANIFEST] if isinstance(name, str) and (folder / name).exists()]


def remove_own(path: Path) -> None:
    """Remove what rewardlab wrote at ``path``: a file, or a folder's listed entries (the folder too
    once empty; otherwise its manifest stays, listing nothing, so the user's entries stay theirs). A
    folder without a manifest is taken as wholly rewardlab's, as earlier versions wrote it."""
    if not path.is_dir() or path.is_symlink():
        path.unlink(missing_ok=True)
        return
    own = own_entries(path)
    if own is None:
        shutil.rmtree(path)
        return
    for entry in own:
        _remove(entry)
    if any(path.iterdir()):
        _write_manifest(path, [])
    else:
        path.rmdir()


def _write_manifest(folder: Path, names: list[str]) -> None:
    (folder / MANIFEST).write_text(json.dumps({"written_by": "rewardlab", "files": names}) + "\n", encoding="utf-8")


def _retire(old: Path, new: Path) -> None:
    """Move the user's entries of the replaced folder ``old`` into ``new``, then remove ``old``."""
    own = own_entries(old)
    if own is not None:
        own_names = {p.name for p in own}
        for entry in old.iterdir():
            if entry.name not in own_names and not (new / entry.name).exists():
                with contextlib.suppress(FileNotFoundError):  # another process of the same run moved it
                    os.replace(entry, new / entry.name)
    shutil.rmtree(old, ignore_errors=True)


def _writer_gone(pid: str | None) -> bool:
    """True unless the process that made a temporary entry may still be writing it."""
    if pid is None:
        return True  # written before temporaries carried their writer's pid
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # someone else's process: running
        return False
    return False


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)
