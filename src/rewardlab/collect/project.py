"""A collection project on disk: ``PROJECT/project.yaml`` (:class:`ProjectConfig`), ``PROJECT/collect.db``
(the SQLite database unless ``db`` names another), ``PROJECT/secret`` (32 random bytes, mode 0600: the
key for CSRF tokens) and the owner's login token (stored hashed as the reserved annotator ``owner``).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rewardlab.atomic import write_text_atomic
from rewardlab.collect.active import STRATEGIES
from rewardlab.collect.items import KINDS
from rewardlab.collect.store import OWNER, Store
from rewardlab.runs.config_docs import render_config

CONFIG = "project.yaml"
DATABASE = "collect.db"
SECRET = "secret"
DEFAULT_ATTRIBUTES = ("helpfulness", "harmlessness")
LOGIN_URL = "http://127.0.0.1:8100/login?token={token}"


@dataclass
class ProjectConfig:
    """What ``project.yaml`` holds; every key is optional but ``kind``."""

    kind: str = "pairwise"
    """pairwise (two replies, a side and a strength), ranking (order 2+ replies), rating (1..7 per reply),
    attributes (1..7 per reply for each of ``attributes``)."""
    title: str = "Which reply is better?"
    """Shown at the top of the annotator page."""
    guidelines: str = ""
    """Plain text or markdown shown to annotators above every task."""
    attributes: list[str] = field(default_factory=list)
    """Kind attributes: the attributes rated (default helpfulness, harmlessness)."""
    labels_per_item: int = 1
    """How many annotators label each item."""
    overlap_share: float = 0.1
    """Share of items (by key hash) asked of at least 2 annotators, to measure agreement on."""
    selection: str = "active"
    """active (ensemble uncertainty) or random order."""
    strategy: str = "disagreement"
    """How active selection measures what a label would teach (``collect/active.py``): disagreement,
    bald, batch-information, epig or flip."""
    random_share: float = 0.2
    """Share of picks made at random under active selection; those labels are the unbiased held-out set."""
    retrain_every: int = 10
    """Retrain the ensemble after this many new labels."""
    members: int = 5
    """Ensemble members (bootstrap resamples)."""
    encoder: str = "minilm"
    """The frozen encoder whose features the ensemble reads: minilm, smollm2 or a local model folder."""
    encoder_max_length: int = 128
    """Tokens of prompt and reply the encoder reads, cut from the left (128: MiniLM's own limit; the
    active-vs-random benchmark measured smollm2 at 256)."""
    db: str | None = None
    """Database URL (sqlite:///PATH or postgresql://...); unset: PROJECT/collect.db."""

    def errors(self) -> list[str]:
        """Every problem at once, each naming the key."""
        found = []
        if self.kind not in KINDS:
            found.append(f"kind: {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == "attributes" and not self.attributes:
            found.append("attributes: kind attributes needs at least one attribute name")
        if len(set(self.attributes)) != len(self.attributes) or not all(
            isinstance(a, str) and a.strip() for a in self.attributes
        ):
            found.append(f"attributes: names must be distinct non-empty texts, got {self.attributes}")
        if not isinstance(self.labels_per_item, int) or self.labels_per_item < 1:
            found.append(f"labels_per_item: {self.labels_per_item!r} must be a whole number >= 1")
        for name in ("overlap_share", "random_share"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                found.append(f"{name}: {value!r} must be between 0 and 1")
        if self.selection not in ("active", "random"):
            found.append(f"selection: {self.selection!r} is not active or random")
        if self.strategy not in STRATEGIES:
            found.append(f"strategy: {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if not isinstance(self.retrain_every, int) or self.retrain_every < 1:
            found.append(f"retrain_every: {self.retrain_every!r} must be a whole number >= 1")
        if not isinstance(self.encoder_max_length, int) or self.encoder_max_length < 8:
            found.append(f"encoder_max_length: {self.encoder_max_length!r} must be a whole number >= 8")
        if not isinstance(self.members, int) or self.members < 2:
            found.append(f"members: {self.members!r} must be a whole number >= 2")
        return found

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> ProjectConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        config = cls(**data)
        problems = config.errors()
        if problems:
            raise ValueError(f"{where}: " + "; ".join(problems))
        return config


@dataclass
class Project:
    path: Path
    config: ProjectConfig
    secret: bytes

    @property
    def db_url(self) -> str:
        return self.config.db or f"sqlite:///{(self.path / DATABASE).resolve()}"

    @property
    def features_path(self) -> Path:
        return self.path / "features.safetensors"

    @classmethod
    def open(cls, path: str | Path, db: str | None = None) -> tuple[Project, Store]:
        """The project in ``path`` and its Store (``db`` overrides the URL in project.yaml)."""
        path = Path(path)
        config_file = path / CONFIG
        if not config_file.is_file():
            raise FileNotFoundError(
                f"PROJECT: {path} is not a collect project (no {CONFIG}); create one with rewardlab collect init"
            )
        data = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{config_file}: expected a mapping of keys to values")
        config = ProjectConfig.from_dict(data, str(config_file))
        if db:
            config.db = db
        secret_file = path / SECRET
        if not secret_file.is_file():
            raise FileNotFoundError(f"PROJECT: {secret_file} is missing; the project folder is incomplete")
        project = cls(path, config, secret_file.read_bytes())
        return project, Store(project.db_url)


def create_project(path: str | Path, config: ProjectConfig, *, overwrite: bool = False) -> tuple[Project, Store, str]:
    """Create the project folder, its secret and database; returns the project, its Store and the owner's
    login token (shown once: only its hash is stored)."""
    path = Path(path)
    problems = config.errors()
    if problems:
        raise ValueError("; ".join(problems))
    if path.exists() and not path.is_dir():
        raise ValueError(f"PROJECT: {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise ValueError(f"PROJECT: {path} is not empty; pick a new folder or pass --overwrite")
        for name in (CONFIG, SECRET, DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm", "features.safetensors"):
            (path / name).unlink(missing_ok=True)
    path.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path / CONFIG, render_config(config))  # each key with its doc above it, to edit by hand
    secret = secrets.token_bytes(32)
    descriptor = os.open(path / SECRET, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secret)
        handle.flush()
        os.fsync(handle.fileno())
    project = Project(path, config, secret)
    store = Store(project.db_url)
    if any(a.is_owner for a in store.annotators()):  # an existing database (PostgreSQL): a new owner token
        token = store.reset_token(OWNER)
    else:
        token = store.add_annotator(OWNER, owner=True)
    return project, store, token


def login_link(token: str) -> str:
    return LOGIN_URL.format(token=token)
