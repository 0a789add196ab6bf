"""The collection database: items, annotators, labels and the learning-curve metrics.

SQLAlchemy 2.0 Core over SQLite (default; WAL journal, ``synchronous=FULL`` so a committed label survives
a power cut or ``kill -9``, a busy timeout so writers wait rather than fail) or PostgreSQL by URL. One
engine is shared by all threads. Duplicates are impossible at the database level: a label's
``submission_id`` is unique, and so is (item, annotator); :meth:`Store.record_label` turns the resulting
``IntegrityError`` into ``False``. Tokens are stored only as their sha256.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    case,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from rewardlab.collect.items import CollectItem

OWNER = "owner"
"""The reserved annotator name of the project owner (the dashboard's login)."""

metadata = MetaData()
items_table = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("prompt", Text, nullable=False),
    Column("replies", JSON, nullable=False),
    Column("source", String(200), nullable=False),
    Column("meta", JSON, nullable=False),
    Column("overlap_rank", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    # candidates_for reads only these two columns of every item: from this index, not the item texts
    Index("ix_items_id_overlap", "id", "overlap_rank"),
)
annotators_table = Table(
    "annotators",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("is_owner", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)
labels_table = Table(
    "labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False, index=True),
    Column("annotator_id", Integer, ForeignKey("annotators.id"), nullable=False, index=True),
    Column("submission_id", String(100), nullable=False, unique=True),
    Column("payload", JSON, nullable=False),
    Column("skipped", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("shown_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("selection", String(20), nullable=False),
    UniqueConstraint("item_id", "annotator_id", name="one_label_per_annotator"),
)
metrics_table = Table(
    "metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("n_labels", Integer, nullable=False),
    Column("heldout_accuracy", Float, nullable=True),
    Column("heldout_n", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)


@dataclass(frozen=True)
class StoredItem:
    id: int
    key: str
    prompt: str
    replies: tuple[str, ...]
    source: str
    metadata: dict[str, Any] | None = None
    """What annotators are not shown: a file's known preference (``preferred``: reply index), its line."""


@dataclass(frozen=True)
class Annotator:
    id: int
    name: str
    is_owner: bool = False


@dataclass(frozen=True)
class StoredLabel:
    id: int
    item_id: int
    annotator_id: int
    annotator: str
    submission_id: str
    payload: dict[str, Any]
    skipped: bool
    reason: str
    shown_at: float
    created_at: float
    selection: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def overlap_rank(key: str) -> float:
    """A number in [0, 1) fixed by the item's key: items below ``overlap_share`` are asked of 2 annotators."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) / 2**32


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``sqlite:///path`` (WAL, synchronous=FULL, 30 s busy timeout) or ``postgresql+psycopg://``
    (a bare ``postgresql://`` is read as psycopg 3)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=16, max_overflow=32
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql+"):
        return create_engine(url, pool_size=16, max_overflow=32, pool_pre_ping=True)
    raise ValueError(f"--db: unsupported database URL {url!r} (use sqlite:///PATH or postgresql://USER@HOST/DB)")


class Store:
    """The project's database. Every method opens and commits its own transaction, so one Store can be
    shared by the web server's threads and the background trainer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sqlite = self.engine.dialect.name == "sqlite"
        # SQLite allows one writer at a time; taking turns inside the process avoids busy waits in the driver
        self._write_lock = threading.Lock() if self.sqlite else None
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def _writing(self) -> Any:
        return self._write_lock if self._write_lock is not None else _NoLock()

    # items
    def add_items(self, items: Sequence[CollectItem]) -> int:
        """Add ``items``; one whose key is already stored is skipped. Returns how many were new."""
        for attempt in range(3):
            try:
                return self._insert_new_items(items)
            except IntegrityError:  # another process added one of these keys between our read and write
                if attempt == 2:
                    raise
        return 0

    def _insert_new_items(self, items: Sequence[CollectItem]) -> int:
        now = time.time()
        with self._writing(), self.engine.begin() as connection:
            have = set(connection.scalars(select(items_table.c.key)))
            rows = []
            for item in items:
                if item.key in have:
                    continue
                have.add(item.key)
                rows.append(
                    {
                        "key": item.key,
                        "prompt": item.prompt,
                        "replies": list(item.replies),
                        "source": item.source,
                        "meta": dict(item.metadata),
                        "overlap_rank": overlap_rank(item.key),
                        "created_at": now,
                    }
                )
            if rows:
                connection.execute(items_table.insert(), rows)
        return len(rows)

    def items(self) -> list[StoredItem]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(items_table).order_by(items_table.c.id)).mappings().all()
        return [_item(row) for row in rows]

    def item(self, item_id: int) -> StoredItem | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(items_table).where(items_table.c.id == item_id)).mappings().first()
        return None if row is None else _item(row)

    def item_count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(items_table)) or 0)

    def candidates_for(self, annotator_id: int, labels_per_item: int, overlap_share: float = 0.0) -> list[int]:
        """Items this annotator has not labelled or skipped and that have fewer than ``labels_per_item``
        (non-skipped) labels; an item in the ``overlap_share`` (by key hash) wants at least 2, so that
        agreement between annotators can be measured on it."""
        done = select(labels_table.c.item_id).where(labels_table.c.annotator_id == annotator_id)
        counts = (
            select(labels_table.c.item_id, func.count().label("n"))
            .where(labels_table.c.skipped.is_(False))
            .group_by(labels_table.c.item_id)
            .subquery()
        )
        wanted = case((items_table.c.overlap_rank < overlap_share, max(labels_per_item, 2)), else_=labels_per_item)
        query = (
            select(items_table.c.id)
            .outerjoin(counts, counts.c.item_id == items_table.c.id)
            .where(items_table.c.id.not_in(done))
            .where(func.coalesce(counts.c.n, 0) < wanted)
            .order_by(items_table.c.id)
        )
        with self.engine.connect() as connection:
            return list(connection.scalars(query))

    # annotators
    def add_annotator(self, name: str, *, owner: bool = False) -> str:
        """Add an annotator (or, with ``owner``, the project owner) and return their login token, which is
        stored only as its sha256 and so is shown once. ``ValueError`` if the name is taken."""
        name = name.strip()
        if not name or len(name) > 200:
            raise ValueError("NAME: give a name of 1 to 200 characters")
        if name == OWNER and not owner:
            raise ValueError(f'NAME: "{OWNER}" is reserved for the project owner')
        token = secrets.token_urlsafe(24)
        row = {"name": name, "token_sha256": token_hash(token), "is_owner": owner, "created_at": time.time()}
        try:
            with self._writing(), self.engine.begin() as connection:
                connection.execute(annotators_table.insert(), row)
        except IntegrityError:
            raise ValueError(f'NAME: an annotator called "{name}" already exists') from None
        return token

    def reset_token(self, name: str) -> str:
        """A new login token for ``name`` (the old one stops working); ``ValueError`` for an unknown name."""
        token = secrets.token_urlsafe(24)
        update = annotators_table.update().where(annotators_table.c.name == name).values(token_sha256=token_hash(token))
        with self._writing(), self.engine.begin() as connection:
            if connection.execute(update).rowcount != 1:
                raise ValueError(f'NAME: no annotator called "{name}"')
        return token

    def annotator_for_token(self, token: str) -> Annotator | None:
        query = select(annotators_table).where(annotators_table.c.token_sha256 == token_hash(token))
        with self.engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else Annotator(row["id"], row["name"], bool(row["is_owner"]))

    def annotators(self) -> list[Annotator]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(annotators_table).order_by(annotators_table.c.id)).mappings().all()
        return [Annotator(row["id"], row["name"], bool(row["is_owner"])) for row in rows]

    def is_owner(self, annotator_id: int) -> bool:
        query = select(annotators_table.c.is_owner).where(annotators_table.c.id == annotator_id)
        with self.engine.connect() as connection:
            return bool(connection.scalar(query))

    # labels
    def record_label(
        self,
        *,
        annotator_id: int,
        item_id: int,
        submission_id: str,
        payload: dict[str, Any],
        skipped: bool,
        reason: str,
        shown_at: float,
        selection: str,
    ) -> bool:
        """Write one label and commit it (durable: WAL + synchronous=FULL on SQLite) before returning True;
        False, writing nothing, for a duplicate (the same ``submission_id`` again, or an item this annotator
        has already labelled or skipped)."""
        row = {
            "item_id": item_id,
            "annotator_id": annotator_id,
            "submission_id": submission_id,
            "payload": payload,
            "skipped": skipped,
            "reason": reason,
            "shown_at": shown_at,
            "created_at": time.time(),
            "selection": selection,
        }
        try:
            with self._writing(), self.engine.begin() as connection:
                connection.execute(labels_table.insert(), row)
        except IntegrityError:
            return False
        return True

    def labels(self, annotator_id: int | None = None) -> list[StoredLabel]:
        query = (
            select(labels_table, annotators_table.c.name)
            .join(annotators_table, annotators_table.c.id == labels_table.c.annotator_id)
            .order_by(labels_table.c.id)
        )
        if annotator_id is not None:
            query = query.where(labels_table.c.annotator_id == annotator_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            StoredLabel(
                row["id"],
                row["item_id"],
                row["annotator_id"],
                row["name"],
                row["submission_id"],
                dict(row["payload"]),
                bool(row["skipped"]),
                row["reason"],
                row["shown_at"],
                row["created_at"],
                row["selection"],
            )
            for row in rows
        ]

    def label_count(self) -> int:
        """Labels written, skips included."""
        with self.engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(labels_table)) or 0)

    # learning curve
    def add_metric(self, n_labels: int, heldout_accuracy: float | None, heldout_n: int) -> None:
        row = {
            "n_labels": n_labels,
            "heldout_accuracy": heldout_accuracy,
            "heldout_n": heldout_n,
            "created_at": time.time(),
        }
        with self._writing(), self.engine.begin() as connection:
            connection.execute(metrics_table.insert(), row)

    def metrics(self) -> list[dict[str, Any]]:
        columns = [metrics_table.c[name] for name in ("n_labels", "heldout_accuracy", "heldout_n", "created_at")]
        with self.engine.connect() as connection:
            rows = connection.execute(select(*columns).order_by(metrics_table.c.id)).mappings().all()
        return [dict(row) for row in rows]


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def _item(row: Any) -> StoredItem:
    return StoredItem(
        row["id"], row["key"], row["prompt"], tuple(row["replies"]), row["source"], dict(row["meta"] or {})
    )
