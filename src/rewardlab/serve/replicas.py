"""``rewardlab serve MODEL --replicas N``: N scoring servers on one port, each with its own model.

One server scores one batch at a time (``ScoringService``), and its event loop, JSON parsing and
tokenising share one Python interpreter; more processes serve more requests where the cores allow.
Each replica is a process (spawned, not forked: torch's thread pools do not survive a fork) that
gets the model folder and ``ServeConfig`` as JSON (nothing pickled by us), loads the model once,
warms up, and only then listens, on its own socket bound to the shared port with ``SO_REUSEPORT``:
the kernel spreads new connections evenly over the replicas that are ready. (Uvicorn's own
``workers=N`` shares one listening socket, and a replica that wakes first accepts every pending
connection: measured, one replica took all 16 keep-alive clients of a burst and the other none.)
Each replica runs the application of one server: the same endpoints, limits (per replica),
OpenRLHF protocol and dynamic micro-batcher; ``/health`` and ``/info`` say which one answered
(``pid``). Each computes with its share of the threads torch would use, so they do not fight over
cores. SIGINT or SIGTERM stops every replica; a replica that dies is started again, one that cannot
start stops the command; a replica whose supervisor is killed outright stops itself.

A replica can also hang without dying (stopped, or its event loop blocked) while its socket stays in
the port's group, and the kernel keeps giving it connections that no one answers. So each replica also
listens on a port of its own on 127.0.0.1, which it tells the supervisor once it has warmed up, and the
supervisor asks it for ``/health`` there every few seconds; one that then stays silent (or says its
scoring loop stopped) for ``hang_s`` seconds is killed and started again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

from rewardlab.models.reward_model import RewardModel, saved_model_problem
from rewardlab.rewards.direction import direction_problem
from rewardlab.serve.auth import exposure_warning
from rewardlab.serve.server import ServeConfig, check_head_scores_replies, create_app

log = logging.getLogger(__name__)

STOP_S = 30.0
"""Seconds a replica has to finish its requests after SIGTERM before it is killed."""
HANG_S = 30.0
"""Seconds a replica that answered ``/health`` before may stay silent before it is killed and replaced."""
PROBE = "/health?from=supervisor"
"""The supervisor's question, left out of the replica's access log."""


class ReplicaStartError(ValueError):
    """A replica failed before it served (its reason is in the log above); a ``ValueError``, as the one
    server's refusal of the same model would be, so the command says it in one line."""


@dataclass(frozen=True)
class ReplicaSpec:
    """What every replica serves and where: the model folder, the server's settings, the address,
    and its torch threads."""

    model_path: str
    config: ServeConfig
    threads: int
    host: str = "127.0.0.1"
    port: int = 8000

    def to_json(self) -> str:
        config = {**asdict(self.config), "token_file": self.config.token_file and str(self.config.token_file)}
        return json.dumps({**asdict(self), "config": config})

    @classmethod
    def from_json(cls, text: str) -> ReplicaSpec:
        fields = json.loads(text)
        return cls(**{**fields, "config": ServeConfig(**fields["config"])})


def default_threads(replicas: int) -> int:
    """Torch threads per replica: the threads one server would use (``OMP_NUM_THREADS``, else the
    cores), shared among the replicas, at least one each."""
    return max(1, torch.get_num_threads() // replicas)


def check_before_spawn(model_path: str, config: ServeConfig) -> None:
    """Refuse what every replica would refuse at start-up, from the saved config alone: one clear
    error from the command, not N replicas failing in the log."""
    from transformers import AutoConfig

    if problem := saved_model_problem(model_path):
        raise FileNotFoundError(f"{model_path}: {problem}")
    config.check()
    saved_config = AutoConfig.from_pretrained(model_path)
    saved = getattr(saved_config, "rewardlab", None) or {}
    head = saved.get("head", "reward")
    check_head_scores_replies(head, saved.get("objective", ""), model_path)
    if problem := direction_problem(head, int(saved_config.num_labels), config.direction):
        raise ValueError(f"{model_path}: --direction {problem}")


def check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on, with or without ``SO_REUSEPORT`` (replicas of
    another server would otherwise share its connections with ours without a word)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ValueError(f"cannot listen on {host}:{port}: {error.strerror} (--host, --port)") from None


def replica_socket(host: str, port: int) -> socket.socket:
    """This replica's own socket on the shared port; it takes connections once uvicorn listens on it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def replica_app(spec: ReplicaSpec) -> FastAPI:
    """The server of ``spec``'s model, built in the replica with rewardlab's CPU settings and its threads."""
    from transformers.utils import logging as hf_logging

    from rewardlab.tuning import tune_cpu

    tune_cpu()  # the parent's environment settings are inherited; its malloc setting is per process
    hf_logging.set_verbosity_error()  # as quiet as the command (``user_errors``): no progress bar per replica
    hf_logging.disable_progress_bar()
    torch.set_num_threads(spec.threads)
    return create_app(RewardModel.from_pretrained(spec.model_path), model_path=spec.model_path, config=spec.config)


def run_replica(spec_json: str, ready: Connection) -> None:
    """One replica's process: load, warm up, listen, serve until SIGTERM (exit code 3 if it cannot start).
    Once warm, it sends the supervisor the number of its own port on ``ready``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which stops us in order
    stop_with_parent(os.getppid())
    spec = ReplicaSpec.from_json(spec_json)
    try:
        app = replica_app(spec)
        sock = replica_socket(spec.host, spec.port)
        own = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        own.bind(("127.0.0.1", 0))
    except Exception as error:  # a replica failing here would fail again however often it is started
        log.error("error: replica %d: %s: %s: %s", os.getpid(), spec.model_path, type(error).__name__, error)
        sys.exit(STARTUP_FAILURE)
    logging.getLogger("uvicorn.access").addFilter(lambda record: PROBE not in record.getMessage())
    settings = uvicorn.Config(app, log_level="info", **app.state.uvicorn_options)
    announce_when_warm(app, own.getsockname()[1], ready)
    server = uvicorn.Server(settings)
    server.run(sockets=[sock, own])  # warms up (the lifespan) before it listens
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def announce_when_warm(app: FastAPI, own_port: int, ready: Connection) -> None:
    """Send the supervisor ``own_port`` once the app has warmed up (its lifespan started), just before
    uvicorn listens: from then on silence is a hang, while loading and warming up take what they take.
    Before listening, so that no replica answers on the shared port before the supervisor can ask it."""
    warm_up = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def announced(app_: FastAPI) -> AsyncIterator[Any]:
        async with warm_up(app_) as state:
            ready.send_bytes(str(own_port).encode())
            yield state

    app.router.lifespan_context = announced


def stop_with_parent(parent: int, every_s: float = 1.0) -> None:
    """Stop this replica (SIGTERM to itself: uvicorn's graceful shutdown) once ``parent`` is gone,
    so a supervisor killed outright leaves no replica holding the port."""

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(every_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="rewardlab-parent-watch").start()


def serve_replicas(
    model_path: str,
    *,
    replicas: int,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: ServeConfig | None = None,
    threads: int | None = None,
    hang_s: float = HANG_S,
) -> None:
    """Serve ``model_path`` from ``replicas`` processes on one port until SIGINT or SIGTERM; a replica
    silent for ``hang_s`` seconds after it has served is replaced.

    Raises ``ReplicaStartError`` when a replica failed to start (every replica is stopped first).
    """
    if replicas < 1:
        raise ValueError(f"--replicas must be at least 1 (got {replicas})")
    if port == 0:
        raise ValueError("--port 0 would give each replica a port of its own; give the port to share")
    if not hang_s > 0:
        raise ValueError(f"--replica-timeout must be > 0 seconds (got {hang_s})")
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("--replicas needs sockets that share a port (SO_REUSEPORT), which this system lacks")
    config = config or ServeConfig()
    check_before_spawn(model_path, config)
    check_port_free(host, port)
    if warning := exposure_warning(host, config.token_file is not None):
        log.warning("warning: %s", warning)
    spec = ReplicaSpec(str(model_path), config, threads or default_threads(replicas), host, port).to_json()
    spawn = multiprocessing.get_context("spawn")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    running: list[Replica] = []
    failed: BaseProcess | None = None
    try:
        print(f"serving {model_path} on http://{host}:{port} with {replicas} replicas", file=sys.stderr, flush=True)
        running = [Replica.start(spawn, spec, index) for index in range(replicas)]
        while not stop.wait(0.5):
            for index, replica in enumerate(running):
                process = replica.process
                if process.exitcode == STARTUP_FAILURE:
                    failed = process
                    stop.set()
                    break
                if process.exitcode is not None:
                    log.warning(
                        "replica %d (pid %d) ended with code %d; starting another", index, process.pid, process.exitcode
                    )
                elif replica.hung(hang_s):
                    log.warning(
                        "replica %d (pid %d) has not answered for %g s; killing it and starting another",
                        index,
                        process.pid,
                        hang_s,
                    )
                    process.kill()
                    process.join()
                else:
                    continue
                running[index] = Replica.start(spawn, spec, index)
    finally:
        stop_all([replica.process for replica in running])
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed is not None:
        raise ReplicaStartError(f"replica process {failed.pid} failed to start (its error is in the log above)")


class Replica:
    """A replica's process, and what the supervisor knows of its health."""

    def __init__(self, process: BaseProcess, ready: Connection) -> None:
        self.process = process
        self.ready = ready
        self.url: str | None = None
        """Its own address, once it has warmed up and said its port."""
        self.answered = 0.0
        """When it last answered ``/health`` with 200, or said its port (``time.monotonic``)."""
        self.asked = 0.0

    @classmethod
    def start(cls, spawn: multiprocessing.context.SpawnContext, spec_json: str, index: int) -> Replica:
        receiving, sending = spawn.Pipe(duplex=False)
        process = spawn.Process(target=run_replica, args=(spec_json, sending), name=f"rewardlab-replica-{index}")
        process.start()
        return cls(process, receiving)

    def hung(self, hang_s: float) -> bool:
        """Whether it has not answered ``/health`` for ``hang_s`` seconds since it said its port (asked
        every ``hang_s``/6 seconds at most, each time waiting up to ``hang_s``/3). Not before it says so:
        loading and warming up take their time."""
        now = time.monotonic()
        if self.url is None and self.ready.poll():
            self.url = f"http://127.0.0.1:{int(self.ready.recv_bytes())}{PROBE}"
            self.answered = now  # warm: silence counts from here, even before the first question
        if self.url is None or now - self.asked < hang_s / 6:
            return False
        self.asked = now
        try:
            with urllib.request.urlopen(self.url, timeout=hang_s / 3) as answer:
                if answer.status == 200:
                    self.answered = time.monotonic()
        except OSError:  # refused, timed out, or 503: its scoring loop stopped
            pass
        return time.monotonic() - self.answered > hang_s


def stop_all(processes: list[BaseProcess]) -> None:
    """SIGTERM to every replica at once (each finishes its requests), then wait; killed after ``STOP_S``."""
    for process in processes:
        if process.exitcode is None:
            process.terminate()
    for process in processes:
        process.join(STOP_S)
        if process.exitcode is None:
            process.kill()
            process.join()
