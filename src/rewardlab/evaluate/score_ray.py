"""``rewardlab score --workers N``: millions of rows scored over Ray Data, written as Parquet shards.

The driver reads and checks every row first (the same errors as ``score``, before any Ray work), cuts
them into shards of ``shard_rows`` consecutive rows and hands the shards still missing to a pool of
Ray actors, each loading the plan ``score`` scores with (``evaluate/score_plan.py``: the same models,
options and length-sorted, fixed-tile path; a text's reward does not depend on what is scored with it,
so the shards hold exactly the rewards, and an ensemble's uncertainties, that ``score`` writes). Each
row travels with its index, so however Ray cuts or merges batches, a shard is written (temporary name,
then rename) only once all its rows are back: a shard file is complete or absent. A folder manifest
records what was scored (the input's content, the models' weights and options, the shard size, the
precision), so rerunning the same command after a crash scores only the missing shards, and a folder
of another scoring is refused rather than mixed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import resource
import socket
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rewardlab.atomic import write_bytes_atomic, write_text_atomic
from rewardlab.data.records import DataError, Prompt
from rewardlab.data.scoring import ScoringRow, read_scoring_rows
from rewardlab.destinations import check_folder_destination, writing
from rewardlab.evaluate.score_file import REWARD_FIELD, UNCERTAINTY_FIELD, check_new_field
from rewardlab.evaluate.score_plan import Scorer, ScoringPlan, scorer_for
from rewardlab.models.users import UserExamples
from rewardlab.precision import Precision, resolve_precision
from rewardlab.progress import progress_bar

SHARD_ROWS = 10_000
"""Rows per shard: one actor batch, large enough that length-sorting fills the scoring tiles."""
MANIFEST = "rewardlab-shards.json"
"""In the output folder: what its shards are the scoring of."""
LOCAL_OBJECT_STORE_BYTES = 512 * 2**20
"""A local cluster's shared-memory object store; Ray's default (30% of memory) is far more than rows need."""
WHERE = ("input", "model")
"""Manifest entries that say where the input and model were read, for the user: the same rows and weights
read from another path are the same scoring, so only their digests are compared."""


@dataclass
class WorkerStats:
    """What one actor did: rows scored, seconds spent scoring them, and its peak resident memory."""

    rows: int = 0
    busy_s: float = 0.0
    peak_rss_bytes: int = 0


@dataclass
class ShardedScoring:
    """What ``score_file_ray`` did, for the command's one line and for benchmarks."""

    output_dir: Path
    rows: int
    shard_rows: int
    shards: int
    scored: list[int] = field(default_factory=list)
    """The shards this call scored; the others were complete in the folder already."""
    workers: dict[str, WorkerStats] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of the driver's stages: ``read`` (rows, checks, manifest), ``ray_start``, ``scoring``
    (from the first shard sent to the last written), within it ``first_batch`` (until the first rewards
    came back: the actors' start and one batch) and ``write`` (Parquet), and ``driver_cpu``: the driver's
    CPU seconds during ``scoring`` (sending rows, receiving rewards, writing), its cost per row at scale."""

    @property
    def skipped(self) -> int:
        return self.shards - len(self.scored)

    def summary(self) -> str:
        if not self.scored:
            return f"nothing to score: all {self.shards} shards were already there → {self.output_dir}"
        kept = f" ({self.skipped} already there)" if self.skipped else ""
        rows = sum(self.rows_of(i) for i in self.scored)
        return f"scored {rows} rows in {len(self.scored)} shards{kept} → {self.output_dir}"

    def rows_of(self, shard: int) -> int:
        return min(self.rows, (shard + 1) * self.shard_rows) - shard * self.shard_rows


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def score_file_ray(
    model: str | Path,
    input: str | Path,
    output_dir: str | Path,
    *,
    workers: int,
    shard_rows: int = SHARD_ROWS,
    ray_address: str | None = None,
    prompt_field: str = "prompt",
    response_field: str = "response",
    precision: Precision = "auto",
    member: Sequence[str | Path] | None = None,
    aggregation: str | None = None,
    uncertainty_weight: float | None = None,
    direction: str | Sequence[float] | None = None,
    user: str | None = None,
    user_examples: str | Path | None = None,
    threads_per_worker: int = 1,
    progress: bool = False,
) -> ShardedScoring:
    """Score each row of ``input`` with ``model`` on ``workers`` Ray actors; write ``output_dir/part-NNNNN.parquet``
    (the input's columns plus ``reward``, and ``uncertainty`` for an ensemble; ``shard_rows`` consecutive
    rows each) and return what was done. The models and their options are ``score_file``'s.

    ``ray_address`` None starts a local cluster of ``workers`` CPUs on 127.0.0.1 for this call (a Ray session
    this process already started is used as it is); ``"auto"`` or ``"ray://host:port"`` joins a running
    cluster, whose nodes must all read the models at the same paths. Shards already complete in
    ``output_dir`` from the same input, models and options, shard size and precision are kept.
    """
    if workers < 1:
        raise ValueError(f"--workers {workers}: give at least 1")
    if shard_rows < 1:
        raise ValueError(f"--shard-rows {shard_rows}: give at least 1")
    _import_ray()
    started = time.perf_counter()
    output_dir = Path(output_dir)
    check_folder_destination(output_dir)
    resolved = resolve_precision(precision)
    rows = read_scoring_rows(input, prompt_field, response_field)
    check_new_field(rows, REWARD_FIELD)
    plan = scorer_for(  # the errors and warnings `score` gives, on the driver
        model,
        member=member,
        aggregation=aggregation,
        uncertainty_weight=uncertainty_weight,
        direction=direction,
        user=user,
        user_examples=user_examples,
        precision=resolved,
    ).plan.resolved()
    if plan.uncertainty:
        check_new_field(rows, UNCERTAINTY_FIELD)
    table = arrow_rows(rows)
    manifest = {
        "input": str(input),
        "rows": len(rows),
        "input_sha256": _table_digest(table),
        "model": plan.model,
        "model_sha256": _model_digest(Path(model)),
        "shard_rows": shard_rows,
        "prompt_field": prompt_field,
        "response_field": response_field,
        "precision": resolved,
    }
    how = {  # only what a plain single model does not have, so its folders read as before
        "members_sha256": [_model_digest(Path(m)) for m in plan.members],
        "options": plan.options,
        "direction": list(plan.direction) if plan.direction is not None else None,
        "user": _user_digest(plan.user),
    }
    manifest |= {key: value for key, value in how.items() if value}
    shards = -(-len(rows) // shard_rows)
    done = complete_shards(output_dir, manifest, shards)
    with writing(output_dir):
        write_text_atomic(output_dir / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    todo = [i for i in range(shards) if i not in done]
    result = ShardedScoring(
        output_dir, len(rows), shard_rows, shards, todo, seconds={"read": time.perf_counter() - started}
    )
    if todo:
        _score_shards(result, rows, table, plan, ray_address, workers, threads_per_worker, progress)
    return result


def complete_shards(output_dir: Path, manifest: Mapping[str, Any], shards: int) -> set[int]:
    """The shards already written whole for this very scoring; a folder of another scoring is refused."""
    if not output_dir.is_dir():
        return set()
    found = sorted(output_dir.glob("part-*.parquet"))
    path = output_dir / MANIFEST
    if not path.exists():
        if found:
            raise ValueError(
                f"{output_dir}: holds Parquet shards ({found[0].name}, ...) but no {MANIFEST}: not a folder "
                "`rewardlab score --workers` wrote; give an empty or new folder"
            )
        return set()
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot be read ({error}); give an empty or new folder") from None
    before = before if isinstance(before, dict) else {}
    keys = [*manifest, *(key for key in before if key not in manifest)]  # an option given then, not now
    differ = [key for key in keys if key not in WHERE and before.get(key) != manifest.get(key)]
    if differ:
        said = ", ".join(f"{key} {before.get(key)!r} there, {manifest.get(key)!r} now" for key in differ[:3])
        raise ValueError(
            f"{output_dir}: holds the shards of another scoring ({said}); give an empty or new folder, "
            "or remove this one to score again"
        )
    complete = set()
    for index in range(shards):
        expected = min(manifest["rows"], (index + 1) * manifest["shard_rows"]) - index * manifest["shard_rows"]
        try:
            if pq.read_metadata(output_dir / shard_name(index)).num_rows == expected:
                complete.add(index)
        except (OSError, pa.ArrowException):
            pass  # missing, or not one we finished: scored again
    return complete


def arrow_rows(rows: Sequence[ScoringRow]) -> pa.Table:
    """The rows as one Arrow table (every field any row has; absent values null), refusing a field whose
    values Parquet cannot hold in one column (text in one row, a number in another), with its row."""
    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r.row))
    columns = {}
    for name in names:
        values = [r.row.get(name) for r in rows]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            raise _mixed_column(rows, name, values) from None
    return pa.table(columns) if columns else pa.table({"_": pa.nulls(len(rows))}).drop(["_"])


def _mixed_column(rows: Sequence[ScoringRow], name: str, values: list[Any]) -> DataError:
    """The first row whose value cannot share a Parquet column with the field's first value."""
    first = next(((i, v) for i, v in enumerate(values) if v is not None), (0, None))
    for r, value in zip(rows, values, strict=True):
        try:
            pa.array([first[1], value])
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return DataError(
                r.location,
                f"does not fit one Parquet column with the value at {rows[first[0]].location} "
                f"({type(value).__name__} here, {type(first[1]).__name__} there); make the field one type",
                field=name,
            )
    return DataError(rows[first[0]].location, "cannot be written as a Parquet column", field=name)


def _table_digest(table: pa.Table) -> str:
    """sha256 of the rows' content (every field), whatever file or folder they were read from."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def _user_digest(user: str | UserExamples | None) -> str | None:
    """Whom a pluralistic model scores for, for the manifest: the id, or a digest of a new user's pairs."""
    if not isinstance(user, UserExamples):
        return user
    pairs = json.dumps([list(user.prompts), list(user.chosen), list(user.rejected)], ensure_ascii=False)
    return "examples sha256 " + hashlib.sha256(pairs.encode()).hexdigest()


def _model_digest(folder: Path) -> str:
    """sha256 of the model's config and weights: a retrained model at the same path is another model."""
    digest = hashlib.sha256()
    for path in sorted([folder / "config.json", *folder.glob("*.safetensors")]):
        digest.update(path.name.encode())
        with path.open("rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise ValueError("--workers needs Ray: pip install 'rewardlab[distributed]'") from None
    return ray


def _score_shards(
    result: ShardedScoring,
    rows: Sequence[ScoringRow],
    table: pa.Table,
    plan: ScoringPlan,
    address: str | None,
    workers: int,
    threads: int,
    progress: bool,
) -> None:
    """Send the missing shards to an actor pool and write each shard as soon as all its rows are back."""
    started = time.perf_counter()
    with ray_session(workers, address) as ray:
        result.seconds["ray_start"] = time.perf_counter() - started
        started, cpu, writing_s, shard_rows = time.perf_counter(), time.process_time(), 0.0, result.shard_rows
        try:
            dataset = ray.data.from_arrow([_shard_input(rows, i, shard_rows) for i in result.scored])
            with warnings.catch_warnings():  # Ray 2.60 deprecates extra actor options, its own way to set them
                warnings.simplefilter("ignore", DeprecationWarning)
                scored = dataset.map_batches(
                    RewardActor,
                    fn_constructor_args=(plan, threads),
                    batch_size=None,  # one input block, that is one shard, per batch
                    batch_format="pyarrow",
                    compute=ray.data.ActorPoolStrategy(size=workers),
                    num_cpus=1,
                    max_restarts=0,  # a failed actor fails the run (a rerun resumes), not a restart Ray warns of
                )
            columns = [REWARD_FIELD, UNCERTAINTY_FIELD] if plan.uncertainty else [REWARD_FIELD]
            pending = {i: np.full((result.rows_of(i), len(columns)), np.nan) for i in result.scored}
            filled = dict.fromkeys(result.scored, 0)
            total = sum(len(v) for v in pending.values())
            with progress_bar(progress, "scoring", total) as advance:
                for batch in _batches(ray, scored):
                    result.seconds.setdefault("first_batch", time.perf_counter() - started)
                    _note_workers(result.workers, batch)
                    index = batch["row"].to_numpy()
                    values = np.stack([batch[c].to_numpy() for c in columns], axis=1)
                    for shard in np.unique(index // shard_rows).tolist():
                        mine = index // shard_rows == shard
                        pending[shard][index[mine] - shard * shard_rows] = values[mine]
                        filled[shard] += int(mine.sum())
                        if filled[shard] == len(pending[shard]):
                            begun = time.perf_counter()
                            scored = dict(zip(columns, pending.pop(shard).T, strict=True))
                            _write_shard(result.output_dir, shard, rows, table, scored, shard_rows, plan.precision)
                            writing_s += time.perf_counter() - begun
                    advance(len(index))
            if pending:  # pragma: no cover - Ray returned fewer rows than it was given
                raise RuntimeError(f"Ray returned no rewards for shards {sorted(pending)}; rerun to score them")
        finally:
            result.seconds["scoring"] = time.perf_counter() - started
            result.seconds["write"] = writing_s
            result.seconds["driver_cpu"] = time.process_time() - cpu


def _batches(ray: Any, dataset: Any) -> Iterator[pa.Table]:
    """The actors' outputs as they come; an actor's failure as one line (its cause), not Ray's traceback."""
    try:
        yield from dataset.iter_batches(batch_size=None, batch_format="pyarrow")
    except ray.exceptions.RayError as error:
        cause = getattr(error, "cause", None) or error
        if isinstance(cause, ValueError | OSError):
            raise cause from None
        raise RuntimeError(f"a Ray worker failed: {str(cause).strip().splitlines()[-1]}") from None


@contextlib.contextmanager
def ray_session(workers: int, address: str | None = None) -> Iterator[Any]:
    """Ray, joined or started for ``workers`` one-CPU actors, and shut down after only if started here.

    A session this process already has is used as it is; ``address`` None starts a local cluster of
    ``workers`` CPUs on 127.0.0.1 (no dashboard, a small object store, no usage statistics sent);
    ``"auto"`` or ``"ray://host:port"`` joins a running one. Ray's log lines stay in its session folder.
    """
    ray = _import_ray()
    owned = not ray.is_initialized()
    if owned:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
        if address is None:
            options |= {
                "num_cpus": workers,
                "include_dashboard": False,
                "object_store_memory": LOCAL_OBJECT_STORE_BYTES,
                "_node_ip_address": "127.0.0.1",
            }
        ray.init(address=address, **options)
    try:
        _quiet_ray_data(ray)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < workers:
            raise ValueError(f"--workers {workers}: the Ray cluster has {cpus} CPUs; each worker takes one")
        yield ray
    finally:
        if owned:
            ray.shutdown()


def _quiet_ray_data(ray: Any) -> None:
    """rewardlab draws its own progress; Ray Data's bars and per-run log lines would repeat it."""
    with warnings.catch_warnings():  # Ray's own deprecated settings, read as it makes the context
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    for name in ("ray", "ray.data"):  # Ray Data sets its own logger's level, so both
        logging.getLogger(name).setLevel(logging.ERROR)


def _shard_input(rows: Sequence[ScoringRow], shard: int, shard_rows: int) -> pa.Table:
    """What an actor needs of a shard's rows: the index, the prompt (JSON, text or messages) and the reply."""
    part = rows[shard * shard_rows : (shard + 1) * shard_rows]
    return pa.table(
        {
            "row": pa.array(range(shard * shard_rows, shard * shard_rows + len(part)), pa.int64()),
            "prompt": pa.array([json.dumps(r.prompt, ensure_ascii=False) for r in part], pa.large_string()),
            "response": pa.array([r.response for r in part], pa.large_string()),
        }
    )


def _write_shard(
    folder: Path,
    shard: int,
    rows: Sequence[ScoringRow],
    table: pa.Table,
    scored: dict[str, np.ndarray],
    shard_rows: int,
    precision: str,
) -> None:
    """One shard's rows with their reward (and uncertainty), as Parquet, under its final name only once whole."""
    rewards = scored[REWARD_FIELD]
    bad = np.flatnonzero(~np.isfinite(np.stack(list(scored.values()))).any(axis=0))
    if len(bad):
        raise ValueError(
            f"the model gave a non-finite reward for {len(bad)} of {len(rewards)} rows of {shard_name(shard)}, "
            f"the first at {rows[shard * shard_rows + int(bad[0])].location}; that shard was not written "
            f"(try --precision fp32 if {precision} overflows, or check the model)"
        )
    part = table.slice(shard * shard_rows, len(rewards))
    for name, values in scored.items():
        part = part.append_column(name, pa.array(values, pa.float64()))
    buffer = io.BytesIO()
    pq.write_table(part, buffer)
    with writing(folder):
        write_bytes_atomic(folder / shard_name(shard), buffer.getvalue())


def _note_workers(workers: dict[str, WorkerStats], batch: pa.Table) -> None:
    for worker, busy, rss in zip(*(batch[c].to_pylist() for c in ("worker", "busy_s", "peak_rss")), strict=True):
        stats = workers.setdefault(worker, WorkerStats())
        stats.rows += 1
        stats.busy_s += busy
        stats.peak_rss_bytes = max(stats.peak_rss_bytes, rss)


class RewardActor:
    """One Ray actor: loads the plan's models once and scores each batch it is handed with them."""

    def __init__(self, plan: ScoringPlan, threads: int) -> None:
        from rewardlab.tuning import tune_cpu

        tune_cpu()  # the CPU settings `rewardlab score` runs with, before the first product
        import torch

        torch.set_num_threads(threads)
        self.scorer = Scorer.load(plan)
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.perf_counter()
        prompts = [_prompt(p) for p in batch["prompt"].to_pylist()]
        rewards, uncertainty = self.scorer(prompts, batch["response"].to_pylist())
        busy = np.zeros(len(rewards))
        busy[:1] = time.perf_counter() - started  # once per batch, so that sums hold however Ray cuts batches
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
        scored = {REWARD_FIELD: rewards} | ({UNCERTAINTY_FIELD: uncertainty} if uncertainty is not None else {})
        return pa.table(
            {
                "row": batch["row"],
                **{name: pa.array(values, pa.float64()) for name, values in scored.items()},
                "worker": pa.array([self.name] * len(rewards)),
                "busy_s": pa.array(busy),
                "peak_rss": pa.array(np.full(len(rewards), peak, np.int64)),
            }
        )


def _prompt(text: str) -> Prompt:
    value = json.loads(text)
    return value if isinstance(value, str) else tuple(value)


__all__ = [
    "SHARD_ROWS",
    "ShardedScoring",
    "WorkerStats",
    "ray_session",
    "score_file_ray",
    "shard_name",
]
