"""Dynamic micro-batching: items from concurrent requests scored together in one call.

Scoring one request at a time wastes most of a forward pass on small requests; waiting for a
full batch adds latency when traffic is light. The batcher takes what is queued, waits at most
``max_wait_s`` for more, stops at ``max_batch_items``, and scores the lot in one worker thread so
the event loop keeps accepting requests meanwhile. While one batch is scored the next one fills,
so under load batches grow by themselves and the wait is rarely paid.

Mixing requests is safe only because the score of a sequence does not depend on what it is
batched with (``RewardModel.score_ids`` is invariant bit for bit); each request gets back exactly
the scores it would get alone.

A request can say how to tell that its client has left (``submit(..., gone=...)``); such a request
still waiting when its batch is formed is dropped from it, so a client that gave up costs no
forward pass.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")


class ClientGone(Exception):
    """The request's client left before its batch was scored; its items were not scored."""


@dataclass
class _Job(Generic[Item]):
    items: Sequence[Item]
    future: asyncio.Future[list[float]]
    gone: Callable[[], Awaitable[bool]] | None = None


@dataclass
class BatchStats:
    """Counters for ``/health`` and the load test: how well requests were merged."""

    batches: int = 0
    items: int = 0
    requests: int = 0
    largest_batch: int = 0
    abandoned: int = 0
    """Requests dropped before scoring because their client had left."""


class MicroBatcher(Generic[Item]):
    """Queue items per request, score them in merged batches in one thread, hand each request its own."""

    def __init__(
        self, score: Callable[[list[Item]], list[float]], *, max_batch_items: int = 64, max_wait_s: float = 0.005
    ) -> None:
        if max_batch_items < 1:
            raise ValueError(f"max_batch_items must be at least 1 (got {max_batch_items})")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative (got {max_wait_s})")
        self._score = score
        self.max_batch_items = max_batch_items
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job[Item]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the collecting loop on the running event loop (call once, from that loop)."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardlab-score")
        self._task = asyncio.create_task(self._run(), name="rewardlab-microbatcher")

    async def stop(self) -> None:
        """Stop collecting; requests still queued fail with ``RuntimeError`` instead of hanging."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def submit(self, items: Sequence[Item], gone: Callable[[], Awaitable[bool]] | None = None) -> list[float]:
        """The scores of ``items``, in order, scored along with whatever else is queued.

        ``gone()`` answers whether the request's client has left (e.g. Starlette's
        ``request.is_disconnected``); if it has when the batch is formed, the items are not scored
        and this raises ``ClientGone``.
        """
        if not self.running or self._queue is None:
            raise RuntimeError("the micro-batcher is not running")
        if not items:
            return []
        future: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(items, future, gone))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._present(await self._collect(loop))
            if not jobs:
                continue
            items = [item for job in jobs for item in job.items]
            try:
                scores = await loop.run_in_executor(self._executor, self._score, items)
            except Exception as error:  # one failed batch must not stop the server
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            self._record(len(jobs), len(items))
            start = 0
            for job in jobs:
                end = start + len(job.items)
                if not job.future.done():  # a client that gave up has a cancelled future
                    job.future.set_result(scores[start:end])
                start = end

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> list[_Job[Item]]:
        """The first queued job, then more until ``max_batch_items`` or ``max_wait_s`` after the first."""
        queue = self._queue
        if queue is None:
            raise RuntimeError("the micro-batcher was not started")
        jobs = [await queue.get()]
        count = len(jobs[0].items)
        deadline = loop.time() + self.max_wait_s
        while count < self.max_batch_items:
            if queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                job = queue.get_nowait()
            jobs.append(job)
            count += len(job.items)
        return [job for job in jobs if not job.future.done()]

    async def _present(self, jobs: list[_Job[Item]]) -> list[_Job[Item]]:
        """The jobs whose client is still there; the others fail with ``ClientGone``, unscored."""
        kept = []
        for job in jobs:
            try:
                left = job.gone is not None and await job.gone()
            except Exception:  # a check that fails must not cost the client its answer
                left = False
            if left and not job.future.done():
                job.future.set_exception(ClientGone())
                self.stats.abandoned += 1
            elif not left:
                kept.append(job)
        return kept

    def _record(self, requests: int, items: int) -> None:
        stats = self.stats
        stats.batches += 1
        stats.items += items
        stats.requests += requests
        stats.largest_batch = max(stats.largest_batch, items)
