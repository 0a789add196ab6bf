"""Fault load test of ``rewardlab serve``: normal clients beside clients that stall or give up.

Starts ``rewardlab serve MODEL`` in its own process on loopback (127.0.0.1 only) and runs two
phases of the same normal load (``--clients`` httpx clients, ``--requests`` requests each of 1 to
``--max-items`` items, one after another): first alone, then next to

- ``--stallers`` clients that send a request head and half a body, then nothing (each starts over
  once the server answers or closes),
- ``--head-stallers`` clients that send half a request head, then nothing (likewise),
- ``--aborters`` clients that each send a whole ``/score`` request of ``--abort-items`` items
  every ``--abort-interval`` seconds and close the connection at once, without reading.

Reports, per phase, the normal clients' latency (p50, p90, p99, max) and answers, every reward
checked against the offline ``RewardModel.score`` of the same item; how the bad clients were
answered (408s, closed connections, seconds held); and, from ``/health``, how many abandoned
requests were dropped unscored. Every loop is bounded by ``--max-seconds`` per phase.

    python benchmarks/serve_faults.py [--model DIR] [--clients 20] [--stallers 100]

Without ``--model``: ``runs/default/model`` when it exists, else MiniLM with an untrained reward
head (the server's work per item is the same; the rewards only have no meaning).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from serve_load import (
    DEFAULT_MODEL,
    client_plans,
    free_port,
    item_pool,
    percentile,
    run_clients,
    start_server,
    wait_healthy,
)

from rewardlab.models.reward_model import RewardModel

HOST = "127.0.0.1"


async def read_to_end(reader: asyncio.StreamReader, limit_s: float) -> bytes:
    with contextlib.suppress(TimeoutError, ConnectionError):
        return await asyncio.wait_for(reader.read(), limit_s)
    return b""


async def staller(port: int, head_only: bool, stop: asyncio.Event, limit_s: float, seen: dict) -> None:
    """Sends half a request (head and part of the body, or part of the head) until ``stop``."""
    while not stop.is_set():
        reader, writer = await asyncio.open_connection(HOST, port)
        if head_only:
            writer.write(b"POST /score HTTP/1.1\r\nhost: x\r\ncontent-")
        else:
            writer.write(b"POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n")
            writer.write(b'content-length: 1000\r\n\r\n{"items": [{"prompt": "')
        start = time.perf_counter()
        reply = await read_to_end(reader, limit_s)
        held = time.perf_counter() - start
        seen["held_s"].append(held)
        key = reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/1.1 ") else "closed"
        key = "no answer in --max-seconds" if held >= limit_s - 0.1 else key
        seen[key] = seen.get(key, 0) + 1
        writer.close()


async def aborter(port: int, body: bytes, interval_s: float, stop: asyncio.Event, seen: dict) -> None:
    """Sends a whole request and closes the connection without reading, every ``interval_s``."""
    head = f"POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    while not stop.is_set():
        _, writer = await asyncio.open_connection(HOST, port)
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()
        seen["requests"] += 1
        await asyncio.sleep(interval_s)


async def phase(url: str, port: int, plans, pool, args, bad: bool) -> dict:
    stop = asyncio.Event()
    stalled = {"held_s": []}
    head_stalled = {"held_s": []}
    aborted = {"requests": 0}
    tasks = []
    if bad:
        abort_body = json.dumps({"items": pool[: args.abort_items]}).encode()
        tasks += [staller(port, False, stop, args.max_seconds, stalled) for _ in range(args.stallers)]
        tasks += [staller(port, True, stop, args.max_seconds, head_stalled) for _ in range(args.head_stallers)]
        tasks += [aborter(port, abort_body, args.abort_interval, stop, aborted) for _ in range(args.aborters)]
    running = [asyncio.create_task(t) for t in tasks]
    await asyncio.sleep(1.0 if bad else 0.0)  # the bad clients are in place before the normal ones start
    start = time.perf_counter()
    records = await run_clients(url, plans, pool, args.max_seconds)
    seconds = time.perf_counter() - start
    stop.set()
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    return {"records": records, "seconds": seconds, "stalled": stalled, "head_stalled": head_stalled, **aborted}


def summary(result: dict, offline: list[float], expected: int) -> dict:
    records = result["records"]
    ok = [r for r in records if r["status"] == 200]
    wrong = [r for r in ok if r["rewards"] != [offline[i] for i in r["indices"]]]
    latencies = [r["latency"] for r in ok]
    out = {
        "normal_requests": expected,
        "answered_200": len(ok),
        "equal_to_offline": len(ok) - len(wrong),
        "failed": len(records) - len(ok),
        "unfinished": expected - len(records),
        "seconds": round(result["seconds"], 2),
        "latency_ms": {q: round(1000 * percentile(latencies, v), 1) for q, v in (("p50", 50), ("p90", 90), ("p99", 99))}
        | {"max": round(1000 * max(latencies), 1) if latencies else None},
    }
    for name in ("stalled", "head_stalled"):
        seen = dict(result[name])
        held = seen.pop("held_s")
        if held:
            out[name] = {"answers": seen, "held_s_p50": round(percentile(held, 50), 2)}
            out[name]["held_s_max"] = round(max(held), 2)
    if result["requests"]:
        out["aborted_requests_sent"] = result["requests"]
    return out


def default_model(folder: Path) -> Path:
    if (DEFAULT_MODEL / "config.json").is_file():
        return DEFAULT_MODEL
    return RewardModel.from_backbone("minilm", max_length=384).save_pretrained(folder / "model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5, help="requests per normal client, one after another")
    parser.add_argument("--max-items", type=int, default=4)
    parser.add_argument("--pool", type=int, default=200)
    parser.add_argument("--stallers", type=int, default=100)
    parser.add_argument("--head-stallers", type=int, default=50)
    parser.add_argument("--aborters", type=int, default=5)
    parser.add_argument("--abort-items", type=int, default=8)
    parser.add_argument("--abort-interval", type=float, default=0.2)
    parser.add_argument("--max-seconds", type=float, default=120, help="each phase's time limit")
    parser.add_argument("--server-args", default="--body-timeout-s 2 --keep-alive-s 2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/serve_faults.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rewardlab-serve-faults-"))
    model = args.model or default_model(work)
    pool = item_pool(args.pool, args.seed)
    plans = client_plans(len(pool), args.clients, args.requests, args.max_items, args.seed)
    port = free_port()
    url = f"http://{HOST}:{port}"
    log = work / "server.log"
    server = start_server(model, port, shlex.split(args.server_args), log)
    try:
        wait_healthy(url, server, log, timeout_s=300)
        health = [httpx.get(f"{url}/health").json()]
        alone = asyncio.run(phase(url, port, plans, pool, args, bad=False))
        health.append(httpx.get(f"{url}/health").json())
        beside = asyncio.run(phase(url, port, plans, pool, args, bad=True))
        time.sleep(1.0)  # the last abandoned requests reach a batch
        health.append(httpx.get(f"{url}/health").json())
    finally:
        stop_start = time.perf_counter()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # connections it still holds can keep it from stopping
            server.kill()
            server.wait(timeout=30)
        stop_seconds = time.perf_counter() - stop_start

    offline = RewardModel.from_pretrained(model).score([i["prompt"] for i in pool], [i["response"] for i in pool])
    expected = args.clients * args.requests
    normal_items = sum(len(i) for plan in plans for i in plan)
    aborted_items = beside["requests"] * args.abort_items
    scored_beside = health[2]["items"] - health[1]["items"]
    result = {
        "model": str(model),
        "server_args": args.server_args,
        "bad_clients": {
            "stallers": args.stallers,
            "head_stallers": args.head_stallers,
            "aborters": args.aborters,
            "abort_items": args.abort_items,
            "abort_interval_s": args.abort_interval,
        },
        "alone": summary(alone, offline, expected),
        "beside_bad_clients": summary(beside, offline, expected),
        "abandoned_requests_dropped": health[2].get("abandoned", 0) - health[1].get("abandoned", 0),
        "aborted_items_scored_anyway": max(0, scored_beside - normal_items),
        "aborted_items_sent": aborted_items,
        "server_stop_s": round(stop_seconds, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    bad = [p for p in ("alone", "beside_bad_clients") if result[p]["equal_to_offline"] != expected]
    if bad:
        sys.exit(f"normal clients not all answered with the offline scores in: {', '.join(bad)}")


if __name__ == "__main__":
    main()
