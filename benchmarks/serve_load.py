"""Load test of ``rewardlab serve``: many concurrent clients, every answer checked against offline scores.

Starts ``rewardlab serve MODEL`` in its own process on loopback, then runs ``--clients`` asyncio
clients (httpx), each sending ``--requests`` requests of 1 to ``--max-items`` (prompt, reply)
items drawn from the embedded HH-RLHF test pairs, one after the other. The whole run is bounded
by ``--max-seconds``. Reports items/s over the load phase, request latency (p50, p90, p99, max),
how requests were merged into batches (from ``/health``), and whether every reward returned
equals the offline ``RewardModel.score`` of the same item, exactly (scored after the load, in this
process, all ``--pool`` items in one call, whose speed, timed on a second call, is reported beside
the server's).

    python benchmarks/serve_load.py [--model runs/default/model] [--clients 200] [--requests 5]
    python benchmarks/serve_load.py --replicas 1,2,1,2 --server-threads 2   # 1 vs 2 replicas, alternated

Without ``--model``, ``runs/default/model`` is used when it exists (``make run`` writes it).
``--replicas`` runs the same load against ``rewardlab serve --replicas N`` for each N listed, one
server after the other (so they share the machine's conditions), and reports each replica's peak
resident memory; batching counters are summed over the replicas.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from rewardlab.data import load_preferences, split_pairs
from rewardlab.models.reward_model import RewardModel
from rewardlab.training.config import DataConfig

DEFAULT_MODEL = Path("runs/default/model")


def item_pool(size: int, seed: int) -> list[dict]:
    """Distinct (prompt, reply) items from the embedded data's test split: both replies of each pair."""
    d = DataConfig()
    pairs = split_pairs(
        load_preferences().pairs, validation=d.validation_fraction, test=d.test_fraction, seed=d.split_seed
    ).test
    items = [{"prompt": p.prompt, "response": reply} for p in pairs for reply in (p.chosen, p.rejected)]
    random.Random(seed).shuffle(items)
    return items[:size]


def client_plans(pool: int, clients: int, requests: int, max_items: int, seed: int) -> list[list[list[int]]]:
    """For each client, its requests: each a seeded sample of 1 to ``max_items`` indexes into the pool."""
    rng = random.Random(seed)
    return [[rng.sample(range(pool), rng.randint(1, max_items)) for _ in range(requests)] for _ in range(clients)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: Path, port: int, extra: list[str], log: Path, threads: int | None) -> subprocess.Popen:
    command = [sys.executable, "-m", "rewardlab", "serve", str(model), "--port", str(port), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None  # shared among the replicas
    with log.open("w") as sink:  # a file, not a pipe: a pipe nobody reads would block the server
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, text=True, env=env)


def replica_health(url: str, replicas: int, timeout_s: float) -> dict[int, dict]:
    """``/health`` of every replica, by pid: asked on new connections until ``replicas`` pids answered."""
    deadline, seen = time.monotonic() + timeout_s, {}
    while len(seen) < replicas:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(seen)} of {replicas} replicas answered /health within {timeout_s} s")
        with contextlib.suppress(httpx.TransportError):
            body = httpx.get(f"{url}/health", timeout=5).json()
            seen[body["pid"]] = body
    return seen


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory (``VmHWM``), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return round(int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024, 1)


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the server did not answer /health within {timeout_s} s")


async def run_clients(url: str, plans: list[list[list[int]]], pool: list[dict], max_seconds: float) -> list[dict]:
    """Each client sends its requests in turn; returns one record per request."""
    records: list[dict] = []
    limits = httpx.Limits(max_connections=len(plans), max_keepalive_connections=len(plans))
    async with httpx.AsyncClient(base_url=url, timeout=max_seconds, limits=limits) as session:

        async def client(plan: list[list[int]]) -> None:
            for indices in plan:
                start = time.perf_counter()
                try:
                    response = await session.post("/score", json={"items": [pool[i] for i in indices]})
                    status, body = response.status_code, response.json()
                except httpx.HTTPError as error:  # counted as a failed request, not hidden
                    status, body = 0, {"error": f"{type(error).__name__}: {error}"}
                latency = time.perf_counter() - start
                records.append({"indices": indices, "status": status, "latency": latency, **body})

        with contextlib.suppress(TimeoutError):  # unfinished requests are reported as missing
            await asyncio.wait_for(asyncio.gather(*(client(p) for p in plans)), timeout=max_seconds)
    return records


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def load_server(args: argparse.Namespace, model: Path, replicas: int, pool: list[dict], plans: list) -> dict:
    """One server (``replicas`` processes) under the load: its requests' records and the server's counters."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="rewardlab-serve-load-")) / "server.log"
    extra = shlex.split(args.server_args) + (["--replicas", str(replicas)] if replicas != 1 else [])
    server = start_server(model, port, extra, log, args.server_threads)
    try:
        wait_healthy(url, server, log, timeout_s=300)
        replica_health(url, replicas, timeout_s=300)  # every replica has loaded and warmed up
        light = asyncio.run(run_clients(url, [[[i] for i in range(args.light_requests)]], pool, args.max_seconds))
        before = replica_health(url, replicas, timeout_s=60)
        start = time.perf_counter()
        records = asyncio.run(run_clients(url, plans, pool, args.max_seconds))
        seconds = time.perf_counter() - start
        after = replica_health(url, replicas, timeout_s=60)
        info = httpx.get(f"{url}/info").json()
        memory = {pid: peak_rss_mb(pid) for pid in after}
        supervisor_memory = peak_rss_mb(server.pid) if replicas != 1 else None
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"server log ({replicas} replicas): {log}", file=sys.stderr)
    return {
        "replicas": replicas,
        "light": light,
        "records": records,
        "seconds": seconds,
        "info": info,
        "counters": {
            key: sum(after[p][key] - before[p][key] for p in after) for key in ("batches", "items", "requests")
        },
        "largest_batch": max(h["largest_batch"] for h in after.values()),
        "requests_per_replica": [after[p]["requests"] - before[p]["requests"] for p in sorted(after)],
        "peak_rss_mb": [memory[p] for p in sorted(after)],
        "supervisor_peak_rss_mb": supervisor_memory,
    }


def summary(args: argparse.Namespace, model: Path, run: dict, offline: list[float], offline_rate: float) -> dict:
    """What one server's run measured, every answer checked against the offline rewards."""
    light, records, seconds, info = run["light"], run["records"], run["seconds"], run["info"]
    failed = [r for r in [*light, *records] if r["status"] != 200]
    wrong = [r for r in [*light, *records] if r["status"] == 200 and r["rewards"] != [offline[i] for i in r["indices"]]]
    latencies = [r["latency"] for r in records if r["status"] == 200]
    light_latencies = [r["latency"] for r in light if r["status"] == 200]
    items = sum(len(r["indices"]) for r in records)
    batches = run["counters"]["batches"]
    return {
        "model": str(model),
        "server_args": args.server_args,
        "replicas": run["replicas"],
        "server_threads": args.server_threads,
        "precision": info["precision"],
        "max_length": info["max_length"],
        "limits": info["limits"],
        "clients": args.clients,
        "requests": len(records),
        "items": items,
        "seconds": round(seconds, 2),
        "items_per_s": round(items / seconds, 1),
        "requests_per_s": round(len(records) / seconds, 1),
        "offline_items_per_s": offline_rate,
        "latency_ms": {
            name: round(1000 * value, 1)
            for name, value in (
                ("p50", percentile(latencies, 50)),
                ("p90", percentile(latencies, 90)),
                ("p99", percentile(latencies, 99)),
                ("max", max(latencies)),
                ("mean", statistics.fmean(latencies)),
            )
        }
        if latencies
        else None,
        "light_load_latency_ms": {
            "requests": len(light),
            "p50": round(1000 * percentile(light_latencies, 50), 1) if light_latencies else None,
            "max": round(1000 * max(light_latencies), 1) if light_latencies else None,
        },
        "batches": batches,
        "mean_batch_items": round(run["counters"]["items"] / max(batches, 1), 1),
        "mean_requests_per_batch": round(run["counters"]["requests"] / max(batches, 1), 1),
        "largest_batch": run["largest_batch"],
        "requests_per_replica": run["requests_per_replica"],
        "peak_rss_mb_per_replica": run["peak_rss_mb"],
        "supervisor_peak_rss_mb": run["supervisor_peak_rss_mb"],
        "failed_requests": len(failed),
        "unfinished_requests": args.clients * args.requests - len(records),
        "failures": sorted({r.get("error", str(r["status"])) for r in failed})[:5],
        "wrong_answers": len(wrong),
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="saved reward model (default: runs/default/model)")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=5, help="requests per client, sent one after another")
    parser.add_argument("--max-items", type=int, default=4, help="items per request: 1 to this, at random")
    parser.add_argument("--pool", type=int, default=600, help="distinct items the requests draw from")
    parser.add_argument("--max-seconds", type=float, default=600, help="the load phase's time limit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--light-requests", type=int, default=10, help="one-item requests sent alone, first")
    parser.add_argument("--server-args", default="", help="options for rewardlab serve, e.g. '--max-wait-ms 2'")
    parser.add_argument(
        "--replicas", default="1", help="comma-separated replica counts, one server each, run in this order"
    )
    parser.add_argument(
        "--server-threads", type=int, default=None, help="the server's OMP_NUM_THREADS, shared among its replicas"
    )
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/serve_load.json"))
    args = parser.parse_args()
    model = args.model or DEFAULT_MODEL
    if not (model / "config.json").is_file():
        sys.exit(f"{model}: no saved reward model here; run `make run` first or pass --model DIR")
    counts = [int(n) for n in args.replicas.split(",")]

    pool = item_pool(args.pool, args.seed)
    plans = client_plans(len(pool), args.clients, args.requests, args.max_items, args.seed)
    runs = [load_server(args, model, replicas, pool, plans) for replicas in counts]

    reward_model = RewardModel.from_pretrained(model)
    texts = [i["prompt"] for i in pool], [i["response"] for i in pool]
    reward_model.score(*texts)  # once untimed: kernel set-up for each shape, as the server's warm-up does
    offline_start = time.perf_counter()
    offline = reward_model.score(*texts)
    offline_rate = round(len(pool) / (time.perf_counter() - offline_start), 1)
    results = [summary(args, model, run, offline, offline_rate) for run in runs]
    result = results[0] if len(results) == 1 else {"runs": results}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    bad = [r for r in results if r["failed_requests"] or r["wrong_answers"] or r["unfinished_requests"]]
    for r in bad:
        print(
            f"{r['replicas']} replicas: {r['failed_requests']} failed, {r['unfinished_requests']} unfinished, "
            f"{r['wrong_answers']} answers differ from offline scores",
            file=sys.stderr,
        )
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
