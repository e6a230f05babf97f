"""Dynamic batching across concurrent requests. Texts wait in one queue; the batcher takes them until a batch holds
max_batch_size texts or max_batch_tokens tokens, or max_wait_ms passed since its first text arrived (Triton's
max_queue_delay with TEI's token budget), runs the batch off the event loop, and gives each text its own result (a
batch that fails runs again text by text, so a text the model fails on fails only its own request).
The wait is only spent when traffic suggests company: a text that arrives more than max_wait_ms after the one
before it, to an empty queue, runs at once (waiting could only add latency). A full queue refuses new texts at
once; a text that waited past its deadline is not run."""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


class QueueFull(Exception):
    """More texts are waiting than the queue may hold."""


class DeadlineExceeded(Exception):
    """A text waited longer than its request's deadline."""


@dataclass
class Item:
    """One text waiting for the model."""

    ids: list[int]
    deadline: float
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)
    sparse: bool = False  #: it arrived more than max_wait after the text before it


@dataclass(frozen=True)
class Result:
    """What the model gave one text."""

    probabilities: np.ndarray
    features: np.ndarray | None
    waited: float  #: seconds in the queue


@dataclass
class BatchStats:
    """What the last batches looked like (tests and metrics read it)."""

    batches: int = 0
    texts: int = 0
    largest: int = 0


class Batcher:
    """The queue and the task that empties it. `run_batch(list of token id lists)` -> (probabilities, features or
    None), in the order given; it runs in a single worker thread, one batch at a time."""

    def __init__(self, run_batch: Callable, max_batch_size: int = 64, max_batch_tokens: int = 16384,
                 max_wait_ms: float = 5.0, max_queue: int = 1024, on_batch: Callable | None = None):
        self.run_batch = run_batch
        self.max_batch_size, self.max_batch_tokens = max_batch_size, max_batch_tokens
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch or (lambda size, tokens: None)
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.stats = BatchStats()
        self._carry: Item | None = None
        self._last_arrival = float("-inf")
        self._task: asyncio.Task | None = None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlptransfer-model")  #: the model thread

    @property
    def waiting(self) -> int:
        return self.queue.qsize() + (self._carry is not None)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Run what is still queued, then stop."""
        while self.waiting:
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.pool.shutdown(wait=True)

    def submit(self, texts_ids: list[list[int]], timeout: float) -> list[asyncio.Future]:
        """Queue the texts of one request (all or none); their futures give a Result or raise DeadlineExceeded."""
        if self.waiting + len(texts_ids) > self.max_queue:
            raise QueueFull
        loop, now = asyncio.get_running_loop(), time.perf_counter()
        sparse, self._last_arrival = now - self._last_arrival > self.max_wait, now
        items = [Item(ids, now + timeout, loop.create_future(), now, sparse) for ids in texts_ids]
        for item in items:
            self.queue.put_nowait(item)
        return [item.future for item in items]

    async def _next(self, timeout: float | None) -> Item | None:
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        if timeout is None:
            return await self.queue.get()
        if timeout <= 0:
            return self.queue.get_nowait() if not self.queue.empty() else None
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _collect(self) -> list[Item]:
        first = await self._next(None)
        batch, tokens = [first], len(first.ids)
        until = first.enqueued + (0 if first.sparse else self.max_wait)  # sparse traffic: take what is there
        while len(batch) < self.max_batch_size:
            item = await self._next(until - time.perf_counter())
            if item is None:
                break
            if tokens + len(item.ids) > self.max_batch_tokens:
                self._carry = item  # it starts the next batch
                break
            batch.append(item)
            tokens += len(item.ids)
        return batch

    async def _loop(self) -> None:
        while True:
            batch = await self._collect()
            now = time.perf_counter()
            live = []
            for item in batch:
                if item.future.done():
                    continue  # its request gave up
                if now > item.deadline:
                    item.future.set_exception(DeadlineExceeded())
                else:
                    live.append(item)
            if not live:
                continue
            try:
                await self._run(live, now)
            except Exception as e:  # noqa: BLE001  the model failed on some text: each runs alone, so only its own fails
                if len(live) == 1:
                    _fail(live[0], e)
                    continue
                for item in live:
                    try:
                        await self._run([item], now)
                    except Exception as failed:  # noqa: BLE001
                        _fail(item, failed)

    async def _run(self, live: list[Item], now: float) -> None:
        """Run one batch in the model thread and give each text its result."""
        self.on_batch(len(live), sum(len(i.ids) for i in live))
        probs, features = await asyncio.get_running_loop().run_in_executor(self.pool, self.run_batch,
                                                                           [i.ids for i in live])
        self.stats.batches += 1
        self.stats.texts += len(live)
        self.stats.largest = max(self.stats.largest, len(live))
        for j, item in enumerate(live):
            if not item.future.done():
                item.future.set_result(Result(probs[j], None if features is None else features[j],
                                              now - item.enqueued))


def _fail(item: Item, error: Exception) -> None:
    """The text's request gets the error (unless it gave up)."""
    if not item.future.done():
        item.future.set_exception(error)
