"""The collect store's tests against a real PostgreSQL server, started here in a temporary folder.

Needs the server binaries (``apt-get install postgresql``: ``/usr/lib/postgresql/*/bin/initdb``) and
psycopg; skipped with that message otherwise. As root the server runs as user ``postgres``
(``runuser -u postgres --``), since PostgreSQL refuses to run as root. It listens only on a unix socket in
the temporary folder, on a free port number, and is stopped when the tests end.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# the same store tests, run here with this module's store_url (a fresh PostgreSQL database each)
from test_collect_store import (  # noqa: F401
    store,
    test_a_label_returned_true_survives_kill_9,
    test_concurrent_submissions_lose_and_double_nothing,
    test_duplicates_are_refused_and_candidates_shrink,
    test_items_added_by_another_process_while_labels_are_written,
    test_items_are_added_once_per_key,
    test_metrics_in_order,
    test_overlap_share_asks_two_annotators,
    test_tokens_are_stored_hashed_and_names_unique,
)

INSTALL = (
    "PostgreSQL server not installed; install it with: apt-get install postgresql (and pip install psycopg[binary])"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@pytest.fixture(scope="module")
def postgres() -> Iterator[tuple[str, int]]:
    """(socket folder, port) of a PostgreSQL server running for this module's tests."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip(INSTALL)
    pytest.importorskip("psycopg", reason=INSTALL)
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root needs runuser to start PostgreSQL as user postgres")
    bin_dir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="rewardlab-pg-"))
    data, sockets, port = base / "data", base / "sockets", free_port()
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    subprocess.run(as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]), **run)
    options = f"-p {port} -k {sockets} -c listen_addresses='' -c fsync=on"
    start = [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"]
    subprocess.run(as_server_user(start), **run)
    try:
        yield str(sockets), port
    finally:
        subprocess.run(
            as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]), **run
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def store_url(postgres: tuple[str, int]) -> str:
    """A new, empty database on the test server."""
    import psycopg

    sockets, port = postgres
    name = "collect_" + uuid.uuid4().hex[:12]
    with psycopg.connect(host=sockets, port=port, user="postgres", dbname="postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://postgres@/{name}?host={sockets}&port={port}"


def test_postgres_url_forms_are_read_as_psycopg(store_url: str) -> None:
    """A bare postgresql:// URL (what users type) opens the same database through psycopg 3."""
    from rewardlab.collect.store import Store

    bare = Store(store_url.replace("postgresql+psycopg://", "postgresql://"))
    assert bare.engine.dialect.name == "postgresql" and bare.engine.dialect.driver == "psycopg"
    assert bare.add_annotator("x") and bare.annotators()[0].name == "x"
    bare.close()
