"""Load test of ``rewardlab collect serve``: many simulated annotators at once, every label accounted for.

Creates a pairwise project under ``--work`` (``rewardlab collect init``) whose items are the embedded
HH-RLHF and UltraFeedback pairs (repeated under new ids when ``--items`` asks for more), adds
``--annotators`` annotators, starts ``rewardlab collect serve`` in its own process on 127.0.0.1 and runs
one asyncio task per annotator for ``--seconds``: log in, then GET /task, think ``--think`` seconds, POST
/label with the page's own hidden fields and a choice, again. Every page's latency is recorded (GET /task
and POST /label apart). Then the labels are exported (``rewardlab collect export``) and checked against
the answers: ``lost`` = submissions answered 303 whose label is not in the database; ``duplicated`` =
stored rows beyond one a submission id, plus export rows beyond one an (item, annotator).

Reports requests, labels/s, p50/p95/p99/max latency per route, lost, duplicated, and the server's peak
resident memory (``VmHWM`` of /proc: the kernel's own high-water mark; psutil sampling every 0.2 s where
/proc is missing). Writes ``collect_load.json`` and ``collect_load.md`` to ``--work``.

    python benchmarks/collect_load.py [--annotators 50] [--seconds 120] [--work /tmp/collect-load]
                                      [--selection random|active] [--think 0]

The clients run on the same machine as the server and share its cores: the numbers are for both together.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from rewardlab.atomic import write_text_atomic

HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')
PREFERENCES = ("a3", "a2", "a1", "tie", "b1", "b2", "b3")
SOURCES = ("hh-rlhf-harmless-1850.jsonl.gz", "ultrafeedback-binarized-1000.jsonl.gz")


def embedded_rows() -> list[dict[str, Any]]:
    """The embedded HH-RLHF and UltraFeedback pair rows (prompt if given, chosen, rejected) with two distinct
    non-empty replies."""
    rows = []
    for name in SOURCES:
        path = Path(str(resources.files("rewardlab.data") / "embedded" / name))
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line) if line.strip() else {}
                chosen, rejected = row.get("chosen"), row.get("rejected")
                texts = isinstance(chosen, str) and isinstance(rejected, str) and chosen.strip() and rejected.strip()
                if texts and chosen != rejected:
                    rows.append({k: row[k] for k in ("prompt", "chosen", "rejected") if k in row})
    return rows


def write_items(path: Path, n_items: int) -> None:
    """``n_items`` item rows cycling through the embedded pairs, each with its own ``id`` (its key)."""
    rows = embedded_rows()
    lines = []
    for i in range(n_items):
        lines.append(json.dumps({"id": f"load-{i}", **rows[i % len(rows)]}))
    write_text_atomic(path, "\n".join(lines) + "\n")


def rewardlab(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "rewardlab", *args], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"rewardlab {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def make_project(work: Path, args: argparse.Namespace) -> tuple[Path, dict[str, str]]:
    """A fresh project under ``work`` and the annotators' login tokens by name."""
    from rewardlab.collect.project import Project

    project = work / "project"
    if project.exists():
        shutil.rmtree(project)
    items = work / "items.jsonl"
    write_items(items, args.items)
    rewardlab(
        "collect", "init", str(project), "--items", str(items), "--selection", args.selection,
        "--labels-per-item", str(args.labels_per_item),
    )  # fmt: skip
    if args.encoder:
        set_encoder(project, args.encoder)
    _, store = Project.open(project)
    tokens = {f"annotator{i:03d}": store.add_annotator(f"annotator{i:03d}") for i in range(args.annotators)}
    store.close()
    return project, tokens


def set_encoder(project: Path, encoder: str) -> None:
    import yaml

    from rewardlab.collect.project import CONFIG, ProjectConfig
    from rewardlab.runs.config_docs import render_config

    config = ProjectConfig.from_dict(yaml.safe_load((project / CONFIG).read_text(encoding="utf-8")), CONFIG)
    config.encoder = encoder
    write_text_atomic(project / CONFIG, render_config(config))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(project: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "rewardlab", "collect", "serve", str(project), "--port", str(port)]
    with log.open("w") as sink:  # a file, not a pipe nobody reads
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not answer /healthz in 300 s:\n{log.read_text()}")


class PeakMemory:
    """The server's peak resident memory: /proc's VmHWM (exact), else psutil sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.sampled = 0
        self.proc = Path(f"/proc/{pid}/status")

    def vm_hwm(self) -> int | None:
        try:
            text = self.proc.read_text()
        except OSError:
            return None
        found = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
        return int(found.group(1)) * 1024 if found else None

    async def sample(self, stop: asyncio.Event) -> None:
        try:
            import psutil
        except ImportError:
            return
        try:
            process = psutil.Process(self.pid)
            while not stop.is_set():
                self.sampled = max(self.sampled, process.memory_info().rss)
                await asyncio.sleep(0.2)
        except psutil.Error:
            return

    def peak(self) -> tuple[int, str]:
        exact = self.vm_hwm()
        return (exact, "/proc VmHWM") if exact is not None else (self.sampled, "psutil rss sampled every 0.2 s")


@dataclass
class Tally:
    latency: dict[str, list[float]] = field(default_factory=lambda: {"GET /task": [], "POST /label": []})
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    answered: list[tuple[str, str, int]] = field(default_factory=list)  # (annotator, submission id, item id)
    out_of_items: int = 0


async def annotator(
    url: str, name: str, token: str, end: float, think: float, rng: random.Random, tally: Tally
) -> None:
    async with httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=60) as client:
        response = await client.get("/login", params={"token": token})
        if response.status_code != 303:
            tally.errors[f"login {response.status_code}"] += 1
            return
        while time.monotonic() < end:
            try:
                start = time.perf_counter()
                page = await client.get("/task")
                tally.latency["GET /task"].append(time.perf_counter() - start)
                tally.statuses[f"GET /task {page.status_code}"] += 1
                if page.status_code != 200:
                    continue
                form = dict(HIDDEN.findall(page.text))
                if "item_id" not in form:
                    tally.out_of_items += 1
                    return
                if think:
                    await asyncio.sleep(rng.expovariate(1 / think))
                data = {**form, "preference": rng.choice(PREFERENCES)}
                start = time.perf_counter()
                posted = await client.post("/label", data=data)
                tally.latency["POST /label"].append(time.perf_counter() - start)
                tally.statuses[f"POST /label {posted.status_code}"] += 1
                if posted.status_code == 303:
                    tally.answered.append((name, form["submission_id"], int(form["item_id"])))
            except httpx.TransportError as error:
                tally.errors[type(error).__name__] += 1


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) in milliseconds."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1] * 1000


async def load(
    url: str, tokens: dict[str, str], seconds: float, think: float, seed: int, memory: PeakMemory
) -> tuple[Tally, float]:
    tally = Tally()
    stop = asyncio.Event()
    sampler = asyncio.create_task(memory.sample(stop))
    start = time.monotonic()
    end = start + seconds
    tasks = [
        annotator(url, name, token, end, think, random.Random(f"{seed}:{name}"), tally)
        for name, token in tokens.items()
    ]
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    stop.set()
    await sampler
    return tally, elapsed


def check_labels(project: Path, work: Path, tally: Tally) -> dict[str, Any]:
    """Lost and duplicated labels, from the database and from ``rewardlab collect export``."""
    from rewardlab.collect.project import Project

    _, store = Project.open(project)
    labels = store.labels()
    keys = {item.id: item.key for item in store.items()}
    store.close()
    stored = Counter(label.submission_id for label in labels)
    answered = {submission for _, submission, _ in tally.answered}
    export_file = work / "labels.jsonl"
    rewardlab("collect", "export", str(project), "--output", str(export_file))
    rows = [json.loads(line) for line in export_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    exported = Counter(row["id"] for row in rows)
    expected_ids = {f"{keys[item]}:{name}" for name, _, item in tally.answered}
    return {
        "answered_303": len(tally.answered),
        "stored_labels": len(labels),
        "exported_rows": len(rows),
        "lost": len(answered - set(stored)),
        "lost_from_export": len(expected_ids - set(exported)),
        "duplicated": sum(n - 1 for n in stored.values()) + sum(n - 1 for n in exported.values()),
        "stored_without_303": len(set(stored) - answered),
    }


def report_markdown(result: dict[str, Any]) -> str:
    setup, checks = result["setup"], result["checks"]
    lines = [
        f"collect load test: {setup['annotators']} annotators × {setup['seconds']} s, think {setup['think_s']} s, "
        f"{setup['items']} items, selection {setup['selection']}, labels_per_item {setup['labels_per_item']}",
        f"CPU: {setup['cpu']}; date {setup['date']}",
        "",
        f"- requests: {result['requests']} in {result['elapsed_s']:.1f} s; labels/s: {result['labels_per_s']:.1f}",
        f"- lost: {checks['lost']} (export: {checks['lost_from_export']}); duplicated: {checks['duplicated']}; "
        f"303s {checks['answered_303']}, stored {checks['stored_labels']}, exported {checks['exported_rows']}, "
        f"stored without a 303 {checks['stored_without_303']}",
        f"- transport errors: {dict(result['errors']) or 0}; statuses: {dict(result['statuses'])}; "
        f"annotators out of items: {result['out_of_items']}",
        f"- server peak RSS: {result['server_peak_rss_mib']:.0f} MiB ({result['rss_source']})",
        "",
        "| route | requests | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    for route, row in result["latency_ms"].items():
        cells = [f"{row[k]:.1f}" if row[k] is not None else "–" for k in ("p50", "p95", "p99", "max")]
        lines.append(f"| {route} | {row['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cpu_name() -> str:
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    except OSError:
        found = None
    return found.group(1).strip() if found else platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--think", type=float, default=0.0, help="mean think time per task, seconds (exponential)")
    parser.add_argument("--items", type=int, default=10000, help="items in the project (embedded pairs, cycled)")
    parser.add_argument("--labels-per-item", type=int, default=1)
    parser.add_argument("--selection", choices=("random", "active"), default="random")
    parser.add_argument("--encoder", default=None, help="with --selection active: minilm (default) or a folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp/collect-load"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.annotators < 1 or args.seconds <= 0 or args.items < 1 or args.think < 0:
        parser.error("--annotators, --seconds and --items must be positive, --think >= 0")
    args.work.mkdir(parents=True, exist_ok=True)
    project, tokens = make_project(args.work, args)
    server, url = start_server(project, args.work / "server.log")
    memory = PeakMemory(server.pid)
    try:
        tally, elapsed = asyncio.run(load(url, tokens, args.seconds, args.think, args.seed, memory))
        peak, source = memory.peak()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    checks = check_labels(project, args.work, tally)
    latency = {
        route: {
            "n": len(values),
            **{f"p{q}": percentile(values, q) for q in (50, 95, 99)},
            "max": percentile(values, 100),
        }
        for route, values in tally.latency.items()
    }
    result = {
        "setup": {
            "annotators": args.annotators,
            "seconds": args.seconds,
            "think_s": args.think,
            "items": args.items,
            "labels_per_item": args.labels_per_item,
            "selection": args.selection,
            "cpu": cpu_name(),
            "cores": len(os.sched_getaffinity(0)),
            "date": time.strftime("%Y-%m-%d"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        },
        "elapsed_s": elapsed,
        "requests": sum(len(v) for v in tally.latency.values()),
        "labels_per_s": checks["answered_303"] / elapsed,
        "latency_ms": latency,
        "checks": checks,
        "lost": checks["lost"],
        "duplicated": checks["duplicated"],
        "statuses": dict(tally.statuses),
        "errors": dict(tally.errors),
        "out_of_items": tally.out_of_items,
        "server_peak_rss_mib": peak / 2**20,
        "rss_source": source,
    }
    write_text_atomic(args.work / "collect_load.json", json.dumps(result, indent=2) + "\n")
    markdown = report_markdown(result)
    write_text_atomic(args.work / "collect_load.md", markdown)
    print(markdown, end="")
    print(f"wrote {args.work / 'collect_load.json'} and {args.work / 'collect_load.md'}")
    if tally.out_of_items:
        print(f"warning: {tally.out_of_items} annotators ran out of items; rerun with more --items", file=sys.stderr)
    if checks["lost"] or checks["duplicated"] or checks["lost_from_export"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
