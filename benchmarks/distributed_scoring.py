"""Distributed scoring (issue 38): ``rewardlab score`` in one process against ``--workers 1`` and ``2`` over
Ray Data on a local cluster, on the embedded HH-RLHF pairs repeated with varied ids (both replies of each
pair scored: two rows a pair).

Each configuration runs in its own process (so each peak memory is its own): the single-process
``score_file`` on one thread, then ``score_file_ray`` with 1 and 2 workers of one thread each (or
``--threads-per-worker``). Reported per configuration: wall time, rows/s, the driver's stages (reading and
checking rows, Ray's start, scoring, Parquet writing) and its peak RSS, and each worker's rows, busy seconds
and peak RSS; every Ray reward is compared with the single-process one. From the measured per-worker rate
and the driver's fixed and per-row costs, a model of throughput at 8-64 workers (``model_throughput``, which
states its assumptions).

Usage: ``python benchmarks/distributed_scoring.py --model runs/default/model --pairs 200000 --output out.json``
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


SIDES = ("chosen", "rejected")


def embedded_pairs() -> list:
    from rewardlab.data.loading import load_preferences

    return load_preferences().pairs


def row_id(index: int) -> str:
    return f"p{index // 2}-{SIDES[index % 2]}"


def build_input(path: Path, pairs: int) -> int:
    """``pairs`` embedded pairs (cycled), each as two rows: its chosen and its rejected reply."""
    base = embedded_pairs()
    with path.open("w", encoding="utf-8") as f:
        for k in range(pairs):
            pair = base[k % len(base)]
            prompt = pair.prompt if isinstance(pair.prompt, str) else list(pair.prompt)
            for side, reply in zip(SIDES, (pair.chosen, pair.rejected), strict=True):
                f.write(json.dumps({"id": f"p{k}-{side}", "prompt": prompt, "response": reply}) + "\n")
    return 2 * pairs


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def stage_single(model: str, source: str, output: str) -> dict:
    import torch

    import rewardlab

    rewardlab.tune_cpu()
    torch.set_num_threads(1)
    from rewardlab.evaluate.score_file import score_file

    started = time.perf_counter()
    rows = score_file(model, source, output)
    wall = time.perf_counter() - started
    return {"rows": len(rows), "wall_s": wall, "rows_per_s": len(rows) / wall, "peak_rss_bytes": peak_rss()}


def stage_ray(model: str, source: str, output: str, workers: int, shard_rows: int, threads: int) -> dict:
    import torch

    import rewardlab

    rewardlab.tune_cpu()
    torch.set_num_threads(1)
    from rewardlab.evaluate.score_ray import score_file_ray

    started = time.perf_counter()
    result = score_file_ray(model, source, output, workers=workers, shard_rows=shard_rows, threads_per_worker=threads)
    wall = time.perf_counter() - started
    per_worker = {
        name: {
            "rows": w.rows,
            "busy_s": w.busy_s,
            "rows_per_busy_s": w.rows / w.busy_s,
            "peak_rss_bytes": w.peak_rss_bytes,
        }
        for name, w in result.workers.items()
    }
    return {
        "rows": result.rows,
        "threads_per_worker": threads,
        "shards": result.shards,
        "shards_scored": len(result.scored),
        "wall_s": wall,
        "rows_per_s": result.rows / wall,
        "driver_seconds": result.seconds,
        "driver_peak_rss_bytes": peak_rss(),
        "workers": per_worker,
    }


def compare(single_jsonl: Path, folder: Path) -> dict:
    """Every Ray row, in input order, against the single-process row of the same text: row ``i`` itself
    when the single process scored the whole input, row ``i mod n`` when it scored the embedded pairs
    once (``n`` rows: the input repeats them in the same order)."""
    import pyarrow.parquet as pq

    single = [json.loads(line) for line in single_jsonl.open(encoding="utf-8")]
    ray_rows = [
        row
        for path in sorted(folder.glob("part-*.parquet"))
        for row in pq.read_table(path, columns=["id", "reward"]).to_pylist()
    ]
    assert [r["id"] for r in ray_rows] == [row_id(i) for i in range(len(ray_rows))], "rows out of order"
    assert [r["id"] for r in single] == [row_id(i) for i in range(len(single))], "single rows out of order"
    diffs = [abs(row["reward"] - single[i % len(single)]["reward"]) for i, row in enumerate(ray_rows)]
    return {
        "rows": len(diffs),
        "single_rows": len(single),
        "max_abs_diff": max(diffs),
        "equal": sum(d == 0 for d in diffs),
    }


def model_throughput(ray_runs: dict[int, dict], shard_rows: int) -> dict:
    """T(n) from the measured runs (the largest, whose workers ran side by side):

    T(n) = rows / (read·rows + start + max(ceil(S/n)·shard_rows / rate, stream·rows))

    ``rate``: a worker's rows per busy second (mean over the run's workers); ``read``: the driver's reading
    and checking per row (before any Ray work); ``start``: Ray's start plus the actors' (the first batch's
    wait less its scoring); ``stream``: the driver's CPU seconds per row while scoring (sending rows,
    receiving rewards, writing Parquet), which overlaps the workers' scoring and caps throughput at 1/stream;
    S = rows / shard_rows shards, handed whole to workers, so n workers finish after ceil(S/n) shards each.
    Assumes each worker has a core of its own (rate as measured), a driver with spare cores, and no network
    cost beyond what the local cluster's object store measured."""
    largest = max(ray_runs)
    run = ray_runs[largest]
    seconds, rows = run["driver_seconds"], run["rows"]
    rate = sum(w["rows"] for w in run["workers"].values()) / sum(w["busy_s"] for w in run["workers"].values())
    read = seconds["read"] / rows
    start = seconds["ray_start"] + max(seconds["first_batch"] - shard_rows / rate, 0.0)
    stream = seconds["driver_cpu"] / rows

    def throughput(n: int, total: int) -> float:
        shards = -(-total // shard_rows)
        return total / (read * total + start + max(-(-shards // n) * shard_rows / rate, stream * total))

    sizes = {"measured_rows": rows, "400k_rows": 400_000, "10M_rows": 10_000_000}
    return {
        "formula": "T(n) = rows / (read*rows + start + max(ceil(S/n)*shard_rows/rate, stream*rows))",
        "from_run_workers": largest,
        "shard_rows": shard_rows,
        "worker_rate_rows_per_s": rate,
        "read_s_per_row": read,
        "start_s": start,
        "driver_stream_s_per_row": stream,
        "driver_ceiling_rows_per_s": 1 / stream if stream > 0 else None,
        "throughput_rows_per_s": {
            label: {str(n): throughput(n, total) for n in (1, 2, 8, 16, 32, 64)} for label, total in sizes.items()
        },
    }


def run_stage(argv: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"stage {argv[:3]} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def save(report: dict, path: Path) -> None:
    """After every stage, so that a run cut short keeps what it measured."""
    from rewardlab.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(report, indent=1) + "\n")


def cpu() -> dict:
    text = Path("/proc/cpuinfo").read_text()
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = sorted({f for f in text.split() if f.startswith(("avx512", "amx"))})
    return {"model_name": name, "cores": os.cpu_count(), "flags": flags}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="runs/default/model")
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--shard-rows", type=int, default=10_000)
    parser.add_argument(
        "--threads-per-worker",
        type=int,
        default=1,
        help="each Ray worker's threads (the single process and the driver keep one)",
    )
    parser.add_argument(
        "--single",
        choices=["all", "once"],
        default="all",
        help="the single-process run scores the whole input (all) or each embedded pair once (once: the "
        "Ray rows are compared with the rows of the same text; for inputs too large to score twice)",
    )
    parser.add_argument("--work-dir", default="/tmp/rewardlab-distributed-scoring")
    parser.add_argument("--output", required=True)
    parser.add_argument("--stage", choices=["single", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--stage-workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage == "single":
        print(json.dumps(stage_single(args.model, args.source, args.target)))
        return
    if args.stage == "ray":
        threads = args.threads_per_worker
        print(json.dumps(stage_ray(args.model, args.source, args.target, args.stage_workers, args.shard_rows, threads)))
        return

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"pairs-{args.pairs}.jsonl"
    rows = build_input(source, args.pairs)
    common = ["--model", args.model, "--output", args.output, "--shard-rows", str(args.shard_rows)]
    common += ["--threads-per-worker", str(args.threads_per_worker)]
    single_out = work / "single.jsonl"
    report: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": cpu(),
        "python": platform.python_version(),
        "model": str(Path(args.model).resolve()),
        "pairs": args.pairs,
        "rows": rows,
        "shard_rows": args.shard_rows,
    }
    single_source = source
    if args.single == "once" and args.pairs > len(embedded_pairs()):
        single_source = work / "pairs-once.jsonl"
        build_input(single_source, len(embedded_pairs()))
    report["single_source"] = single_source.name
    print(f"single process on {single_source} ...", file=sys.stderr, flush=True)
    single_stage = ["--stage", "single", "--source", str(single_source), "--target", str(single_out)]
    report["single"] = run_stage([*common, *single_stage])
    save(report, Path(args.output))
    ray_runs = {}
    for n in [int(w) for w in args.workers.split(",")]:
        folder = work / f"shards-{n}"
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        print(f"ray, {n} workers ...", file=sys.stderr, flush=True)
        ray_runs[n] = run_stage(
            [*common, "--stage", "ray", "--stage-workers", str(n), "--source", str(source), "--target", str(folder)]
        )
        ray_runs[n]["equality"] = compare(single_out, folder)
        ray_runs[n]["speedup_vs_single"] = ray_runs[n]["rows_per_s"] / report["single"]["rows_per_s"]
        report["ray"] = {str(n): r for n, r in ray_runs.items()}
        save(report, Path(args.output))
    report["model_of_throughput"] = model_throughput(ray_runs, args.shard_rows)
    save(report, Path(args.output))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
