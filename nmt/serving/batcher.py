"""Dynamic batching: the sentences of concurrent requests with the same decode settings are merged
into one decoding batch, run by the one model thread, off the event loop.

A batch starts with the oldest waiting request and takes, in arrival order, the others with its
settings, up to `max_sentences` (a request is never split: a larger one is a batch of its own).
While the model decodes, new requests queue up and form the next batch. Clients answered together
come back together, a few milliseconds apart: a batch smaller than the last one waits up to
`max_wait` seconds for them, so many clients keep sharing batches while a lone client never
waits. The queue is bounded in sentences (`QueueFull` above it); a request whose
client left or timed out is taken out of the queue, its sentences never decoded.
"""
from __future__ import annotations

import asyncio
import collections
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence


class QueueFull(Exception):
    """The queue holds `max_queue` sentences: the client should retry later (503)."""


@dataclass(eq=False)  # compared by identity: the queue removes this very request
class _Job:
    key: Hashable
    lines: Sequence[str]
    future: asyncio.Future


class Batcher:
    """`submit(key, lines)` queues the lines of one request; its future resolves to the list of
    `work(key, merged lines)`'s results for them, in order. `key`: the decode settings that a
    batch shares. `work` runs in the model thread (`executor`), one batch at a time; `observe`
    (if given) sees the size of every batch."""

    def __init__(self, work: Callable[[Hashable, list], list], max_sentences: int,
                 max_wait: float, max_queue: int, observe: Callable[[int], None] | None = None):
        self.work, self.max_sentences, self.max_wait = work, max_sentences, max_wait
        self.max_queue, self.observe = max_queue, observe
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="nmt-model")
        self._waiting: collections.deque[_Job] = collections.deque()
        self._queued = 0  # sentences in `_waiting`
        self._arrived = asyncio.Event()
        self._last = 1  # sentences in the last batch: what the next one waits for

    @property
    def queued(self) -> int:
        """Sentences waiting for the model."""
        return self._queued

    def submit(self, key: Hashable, lines: Sequence[str]) -> asyncio.Future:
        if self._queued + len(lines) > self.max_queue:
            raise QueueFull(f"the queue holds {self._queued} sentences; its limit is "
                            f"{self.max_queue}")
        job = _Job(key, lines, asyncio.get_running_loop().create_future())
        job.future.add_done_callback(lambda _: self._forget(job))
        self._waiting.append(job)
        self._queued += len(lines)
        self._arrived.set()
        return job.future

    async def run(self) -> None:
        """The batching loop: runs until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._waiting:
                self._arrived.clear()
                await self._arrived.wait()
            key = self._waiting[0].key
            deadline = loop.time() + self.max_wait
            wanted = min(self.max_sentences, self._last)
            while self._sentences(key) < wanted and loop.time() < deadline:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
                except asyncio.TimeoutError:
                    break
            batch = self._take(key)
            if batch:
                await self._decode(key, batch)

    def _sentences(self, key) -> int:
        """Sentences waiting with the settings `key`."""
        return sum(len(j.lines) for j in self._waiting if j.key == key)

    def _take(self, key) -> list[_Job]:
        batch, size = [], 0
        for job in list(self._waiting):
            if job.key != key:
                continue
            if batch and size + len(job.lines) > self.max_sentences:
                break
            batch.append(job)
            size += len(job.lines)
            self._forget(job)
        return batch

    def _forget(self, job: _Job) -> None:
        """Takes `job` out of the queue (taken for decoding, or its client gone)."""
        try:
            self._waiting.remove(job)
        except ValueError:
            return
        self._queued -= len(job.lines)

    async def _decode(self, key, batch: list[_Job]) -> None:
        lines = [line for job in batch for line in job.lines]
        self._last = len(lines)
        if self.observe:
            self.observe(len(lines))
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.work, key, lines)
        except Exception as err:  # the requests of this batch fail; the server goes on
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        start = 0
        for job in batch:
            if not job.future.done():  # its client may have left meanwhile
                job.future.set_result(results[start:start + len(job.lines)])
            start += len(job.lines)
