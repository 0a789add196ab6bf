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
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
from dataclasses import asdict, dataclass
from multiprocessing.process import BaseProcess

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


def run_replica(spec_json: str) -> None:
    """One replica's process: load, warm up, listen, serve until SIGTERM (exit code 3 if it cannot start)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which stops us in order
    stop_with_parent(os.getppid())
    spec = ReplicaSpec.from_json(spec_json)
    try:
        app = replica_app(spec)
        sock = replica_socket(spec.host, spec.port)
    except Exception as error:  # a replica failing here would fail again however often it is started
        log.error("error: replica %d: %s: %s: %s", os.getpid(), spec.model_path, type(error).__name__, error)
        sys.exit(STARTUP_FAILURE)
    settings = uvicorn.Config(app, log_level="info", **app.state.uvicorn_options)
    server = uvicorn.Server(settings)
    server.run(sockets=[sock])  # warms up (the lifespan) before it listens
    if not server.started:
        sys.exit(STARTUP_FAILURE)


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
) -> None:
    """Serve ``model_path`` from ``replicas`` processes on one port until SIGINT or SIGTERM.

    Raises ``ReplicaStartError`` when a replica failed to start (every replica is stopped first).
    """
    if replicas < 1:
        raise ValueError(f"--replicas must be at least 1 (got {replicas})")
    if port == 0:
        raise ValueError("--port 0 would give each replica a port of its own; give the port to share")
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
    processes: list[BaseProcess] = []
    failed: BaseProcess | None = None
    try:
        print(f"serving {model_path} on http://{host}:{port} with {replicas} replicas", file=sys.stderr, flush=True)
        processes = [start_replica(spawn, spec, index) for index in range(replicas)]
        while not stop.wait(0.5):
            for index, process in enumerate(processes):
                if process.exitcode is None:
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    failed = process
                    stop.set()
                    break
                log.warning(
                    "replica %d (pid %d) ended with code %d; starting another", index, process.pid, process.exitcode
                )
                processes[index] = start_replica(spawn, spec, index)
    finally:
        stop_all(processes)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed is not None:
        raise ReplicaStartError(f"replica process {failed.pid} failed to start (its error is in the log above)")


def start_replica(spawn: multiprocessing.context.SpawnContext, spec_json: str, index: int) -> BaseProcess:
    process = spawn.Process(target=run_replica, args=(spec_json,), name=f"rewardlab-replica-{index}")
    process.start()
    return process


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
