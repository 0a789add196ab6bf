"""The micro-batcher on its own, with a plain scoring function: merging, limits, failures, the loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from rewardlab.serve.microbatch import MicroBatcher


class Doubler:
    """Scores x as 2x, records each batch and the thread it ran in; fails on a negative item."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.delay_s = delay_s

    def __call__(self, items: list[int]) -> list[float]:
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        if any(i < 0 for i in items):
            raise ValueError("negative item")
        return [2.0 * i for i in items]


def run(coroutine_function, scorer: Doubler, **options):
    async def main():
        batcher = MicroBatcher(scorer, **options)
        await batcher.start()
        try:
            return await coroutine_function(batcher)
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_concurrent_requests_are_merged_and_each_gets_its_own_scores():
    scorer = Doubler()
    requests = [list(range(k * 10, k * 10 + 1 + k % 4)) for k in range(12)]

    async def clients(batcher):
        return await asyncio.gather(*(batcher.submit(r) for r in requests)), batcher.stats

    answers, stats = run(clients, scorer, max_batch_items=1000, max_wait_s=0.05)
    assert answers == [[2.0 * i for i in r] for r in requests]
    assert len(scorer.batches) == 1 and stats.requests == 12 and stats.items == sum(map(len, requests))
    assert scorer.threads == {"rewardlab-score_0"}  # scored off the event loop's thread


def test_batches_stop_at_max_items_without_splitting_a_request():
    scorer = Doubler()

    async def clients(batcher):
        return await asyncio.gather(*(batcher.submit([k] * 3) for k in range(10)))

    answers = run(clients, scorer, max_batch_items=6, max_wait_s=0.05)
    assert answers == [[2.0 * k] * 3 for k in range(10)]
    assert all(len(b) <= 6 for b in scorer.batches) and len(scorer.batches) >= 5
    assert all(len(set(b[i : i + 3])) == 1 for b in scorer.batches for i in range(0, len(b), 3))


def test_a_failed_batch_fails_its_requests_and_the_batcher_goes_on():
    scorer = Doubler()

    async def clients(batcher):
        with pytest.raises(ValueError, match="negative item"):
            await batcher.submit([1, -1])
        return await batcher.submit([4]), batcher.running

    assert run(clients, scorer, max_wait_s=0) == ([8.0], True)


def test_the_event_loop_runs_while_a_batch_is_scored():
    """A 0.3 s scoring call must not block the loop: a 10 ms ticker keeps ticking meanwhile."""
    scorer = Doubler(delay_s=0.3)

    async def clients(batcher):
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await batcher.submit([1])
        task.cancel()
        return ticks

    assert run(clients, scorer, max_wait_s=0) >= 10


def test_bad_settings_and_use_before_start():
    with pytest.raises(ValueError, match="max_batch_items must be at least 1"):
        MicroBatcher(Doubler(), max_batch_items=0)

    async def early():
        await MicroBatcher(Doubler()).submit([1])

    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(early())
