"""The collect server's labels survive ``kill -9`` and concurrent writers: real ``rewardlab collect serve``
processes, real HTTP through the annotator page's own form, a real SQLite file.

- kill -9 mid-submit: annotators submit through the HTML form while the server is killed with SIGKILL, one
  request cut off half-sent, others whose answer never came; after a restart every submission answered
  with 303 before the kill is in the export, every cut-off one posted again with its own ``submission_id``
  is written once, posting everything again writes nothing, and the database passes ``integrity_check``.
- two annotators posting the same items at the same instant (a barrier each round) lose no label.

SIGKILL loses what the process held, not what the kernel holds, so this checks that a 303 is sent only
after the commit; surviving a power cut rests on ``synchronous=FULL`` (see collect/store.py).
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from rewardlab.collect.items import CollectItem
from rewardlab.collect.project import DATABASE, Project, ProjectConfig, create_project
from rewardlab.collect.web_auth import COOKIE

HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')
PREFERENCES = ("a3", "a2", "a1", "tie", "b1", "b2", "b3")
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
STRENGTH = {"a3": 1.0, "a2": 0.875, "a1": 0.75, "tie": 0.5, "b1": 0.75, "b2": 0.875, "b3": 1.0}
"""What the export writes as ``strength`` for each answer on the seven-point scale (collect/export.py)."""


def make_project(path: Path, n_items: int, names: list[str], **config: object) -> dict[str, str]:
    """A pairwise project with random selection (no encoder) whose items come from a JSONL file; the
    annotators' login tokens by name."""
    items_file = path.parent / f"{path.name}-items.jsonl"
    rows = [{"id": f"k{i}", "prompt": f"prompt {i}", "replies": [f"reply {i}a", f"reply {i}b"]} for i in range(n_items)]
    items_file.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    from rewardlab.collect.items import read_items

    loaded: list[CollectItem] = read_items(items_file, "pairwise", [])
    _, store, _ = create_project(path, ProjectConfig(kind="pairwise", selection="random", **config))
    assert store.add_items(loaded) == n_items
    tokens = {name: store.add_annotator(name) for name in names}
    store.close()
    return tokens


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def servers():
    """The server processes a test starts, killed at its end whatever happened."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def serve(project: Path, log: Path, started: list[subprocess.Popen]) -> tuple[subprocess.Popen, str]:
    """``rewardlab collect serve`` in its own process; returns it and its URL once /healthz answers."""
    port = free_port()
    command = [sys.executable, "-m", "rewardlab", "collect", "serve", str(project), "--port", str(port)]
    with log.open("a") as sink:  # a file, not a pipe nobody reads
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    started.append(process)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"the server did not answer /healthz in 60 s:\n{log.read_text()}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def login(url: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
    response = client.get("/login", params={"token": token})
    assert response.status_code == 303 and response.headers["location"] == "/task"
    return client


def task_form(client: httpx.Client) -> dict[str, str] | None:
    """The hidden fields of the next task's form, or None on the "nothing left" page."""
    page = client.get("/task")
    assert page.status_code == 200, page.text
    fields = dict(HIDDEN.findall(page.text))
    return fields if "item_id" in fields else None


def answer(form: dict[str, str]) -> dict[str, str]:
    """The form as posted: its hidden fields and a choice on the scale fixed by the submission id."""
    return {**form, "preference": PREFERENCES[int(form["submission_id"], 16) % len(PREFERENCES)]}


def db_rows(project: Path) -> list[tuple[str, int, int]]:
    """(submission_id, item_id, annotator_id) of every stored label, read with plain sqlite3."""
    with sqlite3.connect(project / DATABASE) as connection:
        return connection.execute("SELECT submission_id, item_id, annotator_id FROM labels").fetchall()


def exported(project: Path, output: Path) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "rewardlab", "collect", "export", str(project), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


def test_kill_9_mid_submit_loses_nothing_and_doubles_nothing(tmp_path, servers):
    project = tmp_path / "project"
    tokens = make_project(project, 40, ["alice", "bob", "carol"])
    log = tmp_path / "server.log"
    server, url = serve(project, log, servers)
    port = int(url.rsplit(":", 1)[1])
    lock = threading.Lock()
    confirmed: list[tuple[str, dict[str, str]]] = []  # answered 303 before the kill
    in_flight: list[tuple[str, dict[str, str]]] = []  # sent, no answer
    unexpected: list[str] = []
    cut_off_sent = threading.Event()
    kill_after = 12

    def hammer(name: str) -> None:
        """Label until the server goes away: GET /task, POST /label, again."""
        with contextlib.closing(login(url, tokens[name])) as client:
            while True:
                try:
                    form = task_form(client)
                except httpx.TransportError:
                    return  # killed between submissions
                if form is None:
                    return
                data = answer(form)
                try:
                    response = client.post("/label", data=data)
                except httpx.TransportError:
                    with lock:
                        in_flight.append((name, data))
                    return
                with lock:
                    if response.status_code == 303:
                        confirmed.append((name, data))
                    else:
                        unexpected.append(f"{name}: {response.status_code} {response.text[:200]}")
                        return

    def cut_off(name: str) -> socket.socket | None:
        """Once enough labels are in, send one submission but its last bytes: it is in flight at the kill."""
        with contextlib.closing(login(url, tokens[name])) as client:
            while len(confirmed) < kill_after and server.poll() is None:
                time.sleep(0.005)
            form = task_form(client)
        assert form is not None
        data = answer(form)
        body = urlencode(data).encode()
        head = (
            f"POST /label HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {COOKIE}={tokens[name]}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(head + body[:-5])
        with lock:
            in_flight.append((name, data))
        cut_off_sent.set()
        return sock

    threads = [threading.Thread(target=hammer, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    held: list[socket.socket | None] = []
    carol = threading.Thread(target=lambda: held.append(cut_off("carol")))
    carol.start()
    assert cut_off_sent.wait(30), f"the annotators did not get {kill_after} labels in:\n{log.read_text()}"
    server.send_signal(signal.SIGKILL)
    server.wait()
    for thread in [*threads, carol]:
        thread.join(30)
    for sock in held:
        if sock is not None:
            sock.close()
    assert not unexpected, unexpected
    assert len(confirmed) >= kill_after and in_flight

    # the file the killed server left opens cleanly and holds each answered submission once
    with sqlite3.connect(project / DATABASE) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    before = db_rows(project)
    stored_ids = [row[0] for row in before]
    assert len(stored_ids) == len(set(stored_ids))
    assert {data["submission_id"] for _, data in confirmed} <= set(stored_ids)

    # restart; post every cut-off submission again, with its own submission id: written once
    server, url = serve(project, log, servers)
    try:
        clients = {name: login(url, token) for name, token in tokens.items()}
        for name, data in in_flight:
            assert clients[name].post("/label", data=data).status_code == 303
        expected = {data["submission_id"]: (name, data) for name, data in [*confirmed, *in_flight]}
        after = db_rows(project)
        assert sorted(row[0] for row in after) == sorted(expected)  # nothing lost, nothing doubled, nothing else
        # everything posted yet again: each answered 303 as if fine, nothing written
        for name, data in expected.values():
            assert clients[name].post("/label", data=data).status_code == 303
        assert sorted(db_rows(project)) == sorted(after)
        assert httpx.get(f"{url}/healthz").json()["labels"] == len(expected)
        for client in clients.values():
            client.close()
    finally:
        stop(server)

    # the export holds exactly those labels, each with the answer that was posted
    _, store = Project.open(project)
    keys = {item.id: item.key for item in store.items()}
    store.close()
    rows = exported(project, tmp_path / "labels.jsonl")
    by_id = {row["id"]: row for row in rows}
    assert len(rows) == len(by_id) == len(expected)
    for name, data in expected.values():
        row = by_id[f"{keys[int(data['item_id'])]}:{name}"]
        assert row["annotator"] == name
        assert row["strength"] == STRENGTH[data["preference"]]
        assert row["tie"] == (data["preference"] == "tie")
        if not row["tie"]:
            side = "a" if data["preference"].startswith("a") else "b"
            assert row["chosen"].endswith(f"{side}")


def test_two_annotators_submitting_at_once_lose_no_label(tmp_path, servers):
    project = tmp_path / "project"
    n_items = 25
    # each item wanted from both, so every round the two write labels of the same items at the same instant
    tokens = make_project(project, n_items, ["alice", "bob"], labels_per_item=2)
    server, url = serve(project, tmp_path / "server.log", servers)
    barrier = threading.Barrier(2, timeout=30)
    answered: dict[str, list[str]] = {"alice": [], "bob": []}
    failures: list[str] = []

    def label_all(name: str) -> None:
        with contextlib.closing(login(url, tokens[name])) as client:
            while True:
                form = task_form(client)
                with contextlib.suppress(threading.BrokenBarrierError):  # broken: the other one is done
                    barrier.wait()  # both have a form: post together
                if form is None:
                    barrier.abort()
                    return
                response = client.post("/label", data=answer(form))
                if response.status_code != 303:
                    failures.append(f"{name}: {response.status_code}")
                    barrier.abort()
                    return
                answered[name].append(form["submission_id"])

    try:
        threads = [threading.Thread(target=label_all, args=(name,)) for name in answered]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not failures, failures
        rows = db_rows(project)
    finally:
        stop(server)
    assert [len(ids) for ids in answered.values()] == [n_items, n_items]
    assert len(rows) == 2 * n_items  # one row for every 303
    assert sorted(row[0] for row in rows) == sorted(answered["alice"] + answered["bob"])
    assert len({(item, annotator) for _, item, annotator in rows}) == 2 * n_items


def test_the_load_benchmark_accounts_for_every_label(tmp_path):
    """benchmarks/collect_load.py, briefly: its own server, annotators, export and checks."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "collect_load.py"
    work = tmp_path / "load"
    argv = ["--annotators", "4", "--seconds", "3", "--items", "300", "--work", str(work)]
    done = subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((work / "collect_load.json").read_text())
    checks = result["checks"]
    assert result["lost"] == result["duplicated"] == 0 and result["errors"] == {}
    assert checks["answered_303"] == checks["stored_labels"] == checks["exported_rows"] > 0
    assert result["latency_ms"]["POST /label"]["n"] == checks["answered_303"]
    assert 0 < result["latency_ms"]["GET /task"]["p50"] <= result["latency_ms"]["GET /task"]["p99"]
    assert result["server_peak_rss_mib"] > 10
    assert "| POST /label |" in (work / "collect_load.md").read_text()
