"""The batch lane: records the consumer fetched for the contact-keyed input partitions go to
the ingest agent a whole fetch at a time, with one await, instead of one Faust event each.

Faust still owns the consumer group, the subscription, the assignment, flow control and the commits:
the consumer hands the lane what it fetched (`compat.read_committed_consumer`), holds each offset in
its `OffsetLedger` until the ingest agent says the batch's effects are written (`done`), and commits
what the ledger says. On a revoke, the lane drops what it still queues for the revoked partitions and
waits for the batch being ingested to be written (its changelog rows must land before the partition's
next owner reads the changelog), as Faust waits for unacked events; what was dropped is read again by
whoever gets the partition, from its committed offset.

A fetch carries each partition's epoch from when it was issued (`booster.streams.fetches`), not from
when it reaches the lane: a fetch issued before a revoke and handed over after it is dropped like the
fetches queued before it, never ingested over the hole they leave.

Records of one partition reach the agent in the order they were fetched: one queue, one reader.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from booster.streams.offsets import OffsetLedger

MAX_QUEUED = 4  # fetches waiting for the agent; a full lane holds the fetch loop back
MAX_BATCH_RECORDS = 20_000  # records handed to the agent at once (queued fetches are merged)


@dataclass
class Fetch:
    """What one fetch returned for lane partitions, and each partition's epoch when it was fetched."""

    records: dict[Any, Sequence[Any]]
    epochs: dict[Any, int]

    def size(self) -> int:
        return sum(len(batch) for batch in self.records.values())


@dataclass
class Batch:
    """Records for the agent, per partition (each list in offset order)."""

    records: dict[Any, list[Any]] = field(default_factory=dict)

    def add(self, fetch: Fetch, current: Mapping[Any, int]) -> None:
        for tp, batch in fetch.records.items():
            if current.get(tp, 0) == fetch.epochs[tp]:  # not revoked since it was fetched
                self.records.setdefault(tp, []).extend(batch)

    def size(self) -> int:
        return sum(len(batch) for batch in self.records.values())


class Lane:
    """One fetch loop puts, one agent takes: plain events, no lock."""

    def __init__(self, topics: Iterable[str], max_queued: int = MAX_QUEUED) -> None:
        self.topics = frozenset(topics)  # real names
        self.max_queued = max_queued
        self.ledger = OffsetLedger()  # the consumer's, once it is made (`attach`)
        self._queue: deque[Fetch] = deque()
        self._epochs: dict[Any, int] = {}  # bumped at each revoke of the partition
        self._in_flight: Batch | None = None
        self._queued = asyncio.Event()  # something to take
        self._room = asyncio.Event()  # room to put
        self._room.set()
        self._idle = asyncio.Event()  # no batch in flight
        self._idle.set()

    def state(self) -> str:
        """For the log, when the fetch loop stands still."""
        return (
            f"{len(self._queue)} fetch(es) queued, a batch {'in flight' if self._in_flight else 'not in flight'}, "
            f"the fetch loop {'waiting for room' if not self._room.is_set() else 'not waiting'}"
        )

    def queued(self) -> int:
        """Fetches waiting for the agent."""
        return len(self._queue)

    def attach(self, ledger: OffsetLedger) -> None:
        self.ledger = ledger

    def takes(self, tp: Any) -> bool:
        return bool(tp.topic in self.topics)

    def epoch(self, tp: Any) -> int:
        """The partition's epoch now: a fetch tagged with an older one is dropped."""
        return self._epochs.get(tp, 0)

    def _current(self, records: Mapping[Any, Sequence[Any]], epochs: Mapping[Any, int]) -> dict[Any, Sequence[Any]]:
        return {tp: batch for tp, batch in records.items() if self._epochs.get(tp, 0) == epochs.get(tp)}

    async def put(self, records: Mapping[Any, Sequence[Any]], epochs: Mapping[Any, int]) -> None:
        """Queue one fetch's records, issued at these `epochs` (the consumer calls this; it waits while
        the lane is full, and stops waiting for partitions revoked meanwhile). Each offset is held in
        the ledger from now until the agent's `done`."""
        for tp, batch in records.items():
            self.ledger.hold_all(tp, [record.offset for record in batch])
        while len(self._queue) >= self.max_queued and self._current(records, epochs):
            self._room.clear()
            await self._room.wait()
        current = self._current(records, epochs)
        if current:
            self._queue.append(Fetch(current, dict(epochs)))
            self._queued.set()

    async def batches(self) -> AsyncIterator[Batch]:
        """The agent's loop: every queued fetch, merged up to MAX_BATCH_RECORDS, revoked partitions
        left out. The agent calls `done` (or `abandon`) before it takes the next."""
        while True:
            while not self._queue:
                self._queued.clear()
                await self._queued.wait()
            batch = Batch()
            while self._queue and (not batch.records or batch.size() + self._queue[0].size() <= MAX_BATCH_RECORDS):
                batch.add(self._queue.popleft(), self._epochs)
            self._room.set()
            if batch.records:
                self._in_flight = batch
                self._idle.clear()
                yield batch

    def done(self, batch: Batch) -> None:
        """The batch's effects are written: its offsets may be committed."""
        for tp, records in batch.records.items():
            self.ledger.release_all(tp, [record.offset for record in records])
        self.abandon()

    def abandon(self) -> None:
        """Nothing more happens to the batch in flight: written (`done`), or the agent stopped half-way
        (its offsets stay held, so none is committed, and are read again)."""
        self._in_flight = None
        self._idle.set()

    async def revoke(self, tps: Iterable[Hashable]) -> None:
        """Drop what is queued for these partitions, and what a fetch issued before brings, at once
        (before the first await), and wait until the batch being ingested, if it holds any of them, is
        written or abandoned."""
        gone = {tp for tp in tps if self.takes(tp)}
        for tp in gone:
            self._epochs[tp] = self._epochs.get(tp, 0) + 1
        self._room.set()  # a fetch loop waiting for room with revoked records stops waiting
        while self._in_flight is not None and not gone.isdisjoint(self._in_flight.records):
            await self._idle.wait()
