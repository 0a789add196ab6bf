"""``rewardlab serve MODEL --replicas N``: N server processes behind one port, started as a real
command and spoken to over real HTTP.

What must hold: every answer, from whichever replica, is the offline ``RewardModel.score`` reward bit
for bit, on both ``/score`` and OpenRLHF's ``/get_reward``; every replica serves; SIGTERM stops
the supervisor and every replica, and a supervisor killed outright leaves no replica behind; a model
every replica would refuse is refused once, before any replica starts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from synthetic import synthetic_pairs
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.models.reward_model import RewardModel
from rewardlab.serve.replicas import ReplicaSpec
from rewardlab.serve.server import ServeConfig

SERVER_OPTIONS = ["--max-batch-items", "16", "--max-wait-ms", "20", "--max-items", "64"]
START_S = 90  # the longest a replica may take to load and warm up on a busy machine
HANG_S = 8  # --replica-timeout of the test that stops a replica


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path


@pytest.fixture(scope="module")
def model_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=48)
    model.model.classifier.weight.data *= 50  # rewards that differ clearly between items
    return model.save_pretrained(tmp_path_factory.mktemp("replicas") / "model")


@pytest.fixture(scope="module")
def offline(model_dir) -> RewardModel:
    return RewardModel.from_pretrained(model_dir)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(model: Path, log: Path, *options: str) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "rewardlab", "serve", str(model), "--port", str(port), *options]
    with log.open("w") as sink:  # a file, not a pipe nobody reads
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
    return Server(process, f"http://127.0.0.1:{port}", log)


def health(url: str) -> dict | None:
    """One ``/health`` on a new connection (so any replica may take it), or None while nothing answers."""
    try:
        response = httpx.get(f"{url}/health", timeout=2)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def wait_for_replicas(server: Server, count: int) -> set[int]:
    """The pids of ``count`` distinct replicas answering ``/health``."""
    deadline, pids = time.monotonic() + START_S, set()
    while len(pids) < count:
        assert server.process.poll() is None, server.log.read_text()
        assert time.monotonic() < deadline, f"{len(pids)} of {count} replicas answered in {START_S} s"
        if body := health(server.url):
            pids.add(body["pid"])
        else:
            time.sleep(0.2)
    return pids


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_gone(pids: set[int], seconds: float) -> set[int]:
    """The pids still alive after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while (left := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory) -> Iterator[Server]:
    running = start(model_dir, tmp_path_factory.mktemp("log") / "serve.log", "--replicas", "2", *SERVER_OPTIONS)
    try:
        yield running
    finally:
        stop(running)


def items(n: int, seed: int) -> list[dict]:
    rows = synthetic_pairs(n, seed=seed, words=3 + seed % 9)
    return [{"prompt": r["prompt"], "response": r["chosen" if i % 2 else "rejected"]} for i, r in enumerate(rows)]


def ask(url: str, k: int) -> tuple[int, list[dict], list[float], int]:
    """Request ``k``: ``/score`` or ``/get_reward`` on one connection, between two ``/health`` that say
    which replica owns the connection (a connection is served by one process)."""
    batch = items(1 + k % 7, seed=300 + k)
    with httpx.Client(base_url=url, timeout=60) as session:
        pid = session.get("/health").json()["pid"]
        if k % 2:
            response = session.post("/score", json={"items": batch})
        else:
            query = [b["prompt"] + b["response"] for b in batch]
            response = session.post("/get_reward", json={"query": query, "prompts": [b["prompt"] for b in batch]})
        assert response.status_code == 200, response.text
        assert session.get("/health").json()["pid"] == pid
    return k, batch, response.json()["rewards"], pid


def test_a_burst_of_connections_is_spread_over_the_replicas(server):
    """Clients that connect at once (a trainer's pool) land on every replica, not on the first awake."""
    pids = wait_for_replicas(server, 2)
    assert server.process.pid not in pids  # the supervisor itself serves nothing
    together = threading.Barrier(16)

    def connect(_: int) -> int:
        with httpx.Client(base_url=server.url, timeout=30) as session:
            together.wait()
            return session.get("/health").json()["pid"]

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(connect, range(16))) == pids


def test_every_replica_answers_with_the_offline_rewards(server, offline):
    pids = wait_for_replicas(server, 2)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda k: ask(server.url, k), range(32)))
    for k, batch, rewards, _ in answers:
        expected = offline.score([b["prompt"] for b in batch], [b["response"] for b in batch])
        assert rewards == expected, f"request {k}"
    assert len({r for _, _, rewards, _ in answers for r in rewards}) > 20  # the rewards really differ
    answered = {pid for *_, pid in answers}
    assert answered <= pids
    assert len(answered) == 2, "one replica answered every request"
    info = httpx.get(f"{server.url}/info").json()
    assert info["pid"] in pids and info["limits"]["max_batch_items"] == 16


def test_a_replica_that_stops_answering_is_replaced(model_dir, tmp_path):
    """A stopped replica (SIGSTOP) keeps its socket in the port's group, so the kernel would go on giving
    it connections that no one answers: the supervisor, whose ``/health`` on the replica's own port goes
    unanswered for ``--replica-timeout`` seconds, kills it and starts another. Stopped as soon as it
    first answers, before the supervisor may have asked it anything: silence counts from its warm-up."""
    options = ["--replicas", "2", "--replica-timeout", str(HANG_S), *SERVER_OPTIONS]
    server = start(model_dir, tmp_path / "serve.log", *options)
    try:
        frozen = min(wait_for_replicas(server, 2))
        os.kill(frozen, signal.SIGSTOP)
        try:
            assert not wait_gone({frozen}, 4 * HANG_S), "the stopped replica was not replaced"
            replicas = wait_for_replicas(server, 2)
        finally:
            if alive(frozen):
                os.kill(frozen, signal.SIGCONT)
    finally:
        stop(server)
    assert frozen not in replicas
    assert f"(pid {frozen}) has not answered for {HANG_S} s; killing it" in server.log.read_text()


def test_sigterm_stops_the_supervisor_and_every_replica(server):
    replicas = wait_for_replicas(server, 2)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=20) == 0
    assert not wait_gone(replicas, 10), "replicas outlived their supervisor"
    assert health(server.url) is None


def test_a_killed_supervisor_leaves_no_replica(model_dir, tmp_path):
    server = start(model_dir, tmp_path / "serve.log", "--replicas", "2", "--no-warmup", *SERVER_OPTIONS)
    try:
        replicas = wait_for_replicas(server, 2)
    finally:
        stop(server)  # SIGKILL: the supervisor cannot stop them
    assert not wait_gone(replicas, 10), "replicas outlived a killed supervisor"


def test_a_replica_that_cannot_start_stops_the_command(model_dir, tmp_path):
    """Weights that do not load fail in each replica: the command ends with an error, not restarts."""
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in model_dir.iterdir():
        if file.is_file():
            (broken / file.name).write_bytes(file.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not weights")
    server = start(broken, tmp_path / "serve.log", "--replicas", "2", *SERVER_OPTIONS)
    try:
        code = server.process.wait(timeout=START_S)
    finally:
        stop(server)
    log = server.log.read_text()
    assert code == 2, log
    assert "failed to start" in log and f"{broken}: " in log
    assert log.count("Traceback") == 0 and log.count("SafetensorError") <= 2  # no replica started again


def test_models_every_replica_would_refuse_are_refused_before_any_starts(model_dir, tmp_path):
    """Refused by the command itself, in one line: the direction of a model without attributes, a
    folder without a model, no replicas at all, a port to be picked per replica, a port taken, and a
    replica timeout without replicas."""
    runner = CliRunner()
    result = runner.invoke(app, ["serve", str(model_dir), "--replicas", "2", "--direction", "1,2"])
    assert result.exit_code == 2
    assert "--direction weighs the attributes of a multi-attribute model" in " ".join(result.output.split())
    result = runner.invoke(app, ["serve", str(tmp_path), "--replicas", "2"])
    assert result.exit_code == 2 and "not a saved reward model" in " ".join(result.output.split())
    result = runner.invoke(app, ["serve", str(model_dir), "--replicas", "0"])
    assert result.exit_code == 2 and "--replicas must be at least 1 (got 0)" in result.output
    result = runner.invoke(app, ["serve", str(model_dir), "--replicas", "2", "--port", "0"])
    assert result.exit_code == 2 and "--port 0 would give each replica a port of its own" in result.output
    with socket.socket() as taken:  # another server's port: refused, not shared with it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", str(model_dir), "--replicas", "2", "--port", str(port)])
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in " ".join(result.output.split())
    result = runner.invoke(app, ["serve", str(model_dir), "--replica-timeout", "5"])
    assert result.exit_code == 2 and "--replica-timeout is for --replicas N" in result.output


def test_the_replica_spec_travels_as_json():
    config = ServeConfig(max_items=7, direction=[1.0, 0.5], token_file=None, precision="fp32")
    spec = ReplicaSpec("/models/m", config, threads=3)
    assert ReplicaSpec.from_json(spec.to_json()) == spec
