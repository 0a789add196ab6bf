"""Read a Hugging Face Hub dataset by name (``org/name``, ``org/name:split``) from the local cache, never the network.

Two caches are looked in, in this order:

- the datasets cache (``HF_DATASETS_CACHE``, by default ``$HF_HOME/datasets``), where an online
  ``load_dataset("org/name")`` leaves the prepared Arrow files (``org___name/<config>/<version>/<commit>/``).
  It is read by ``load_dataset("org/name")`` in offline mode: the way datasets itself resolves a
  name without the network (its ``CachedDatasetModuleFactory``);
- the Hub cache (``HF_HUB_CACHE``, by default ``$HF_HOME/hub``), where
  ``hf download --repo-type dataset org/name`` leaves the repository's files
  (``datasets--org--name/snapshots/<commit>/``). That snapshot folder is read by
  ``load_dataset(folder)``, which finds its data files and README configuration as the Hub does.

rewardlab never downloads at run time: datasets' offline switch is on for the call whatever
``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` say, and a name in neither cache is a ``DataError``
saying where it was looked for and how to fetch it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rewardlab.data.records import DataError

_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_SPLIT = re.compile(r"[A-Za-z0-9][\w.-]*")
_FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".gz", ".arrow", ".txt")
"""A name ending like a data file is a missing file, not a Hub name."""


def split_suffix(text: str) -> tuple[str, str | None]:
    """``org/name:split`` as ``("org/name", "split")``; text without a ``:split`` tail as ``(text, None)``."""
    base, colon, split = text.rpartition(":")
    if colon and base and _SPLIT.fullmatch(split):
        return base, split
    return text, None


def is_hub_name(text: str) -> bool:
    """Whether ``text`` reads as a Hub dataset id ``org/name`` rather than a path to a file."""
    return bool(_HUB_NAME.fullmatch(text)) and not text.lower().endswith(_FILE_SUFFIXES)


def hub_rows(name: str, split: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, row)`` for the rows of one split (default ``train``) of the cached dataset ``name``.

    Locations read ``org/name[train row 12]``, so a bad row is named as in a file.
    """
    splits = _load(name)
    wanted = split or ("train" if "train" in splits or len(splits) != 1 else next(iter(splits)))
    if wanted not in splits:
        raise DataError(name, f'has no split "{wanted}" (available: {", ".join(splits)}); choose one as {name}:SPLIT')
    index = 0
    try:
        for row in splits[wanted]:
            yield f"{name}[{wanted} row {index}]", row
            index += 1
    except (OSError, ValueError, TypeError, KeyError) as error:  # damaged Arrow files in the cache
        raise DataError(f"{name}[{wanted} row {index}]", f"cannot read the cached dataset: {error}") from None


def _load(name: str) -> Any:
    """The cached ``DatasetDict`` of ``name``: prepared in the datasets cache, or from a Hub-cache snapshot."""
    import datasets.config
    from datasets import load_dataset
    from datasets.naming import camelcase_to_snakecase

    datasets_cache = Path(datasets.config.HF_DATASETS_CACHE).expanduser()
    org, dataset = name.split("/")
    prepared = datasets_cache / f"{org}___{camelcase_to_snakecase(dataset)}"
    snapshot = None if prepared.is_dir() else _snapshot(name)
    if not prepared.is_dir() and snapshot is None:
        raise DataError(name, _not_found(name, datasets_cache))
    where = f"the datasets cache at {prepared}" if snapshot is None else f"the Hub cache at {snapshot}"
    try:
        with _offline_and_quiet():
            return load_dataset(snapshot or name, cache_dir=str(datasets_cache))
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataError(name, f"found in {where} but could not be read: {reason}") from None


def _snapshot(name: str) -> str | None:
    """The folder of the newest ``main`` snapshot of dataset ``name`` in the Hub cache, if any (no network)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(name, repo_type="dataset", local_files_only=True, cache_dir=constants.HF_HUB_CACHE)
    except (LocalEntryNotFoundError, ValueError):  # not cached, or an id the Hub would refuse
        return None


def _not_found(name: str, datasets_cache: Path) -> str:
    from huggingface_hub import constants

    return (
        f"is neither a local file or folder nor a dataset in the Hugging Face cache (looked in {datasets_cache} "
        f"and {constants.HF_HUB_CACHE}); rewardlab never downloads, so fetch it once with "
        f"`hf download --repo-type dataset {name}` (older huggingface_hub: `huggingface-cli download --repo-type "
        f'dataset {name}`) or an online `datasets.load_dataset("{name}")`, or set HF_HOME to the cache that holds it'
    )


@contextmanager
def _offline_and_quiet() -> Iterator[None]:
    """datasets' offline switch on (no Hub request, even without HF_HUB_OFFLINE) and its notes about
    using the cached version silenced, both restored afterwards."""
    import datasets.config
    from datasets.utils import logging

    offline, verbosity = datasets.config.HF_HUB_OFFLINE, logging.get_verbosity()
    datasets.config.HF_HUB_OFFLINE = True
    logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = offline
        logging.set_verbosity(verbosity)
