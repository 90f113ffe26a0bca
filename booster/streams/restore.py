"""Bulk restore: a worker that takes over table partitions reads their changelogs with a plain consumer
and writes them into RocksDB a fetch at a time, before Faust's recovery, which then reads only what is
left (usually nothing).

Why: Faust's recovery hands each changelog record to its tables through an awaited queue item, one at a
time: about 9,000 records/s, so a fresh worker took 248 s to restore a million recipients. Here the
records of one fetch become one RocksDB write batch per partition, whose last put is the partition's
persisted changelog offset (Faust's own resume point), so a batch and its offset land together: a restore
cut short (a rebalance, a stop, the time budget) resumes where it stopped, and the rest is Faust's.

Records are read with isolation.level=read_committed, as Faust's recovery reads them: an aborted record
never becomes a row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from rocksdict import WriteBatch

from booster.streams.connect import started

log = logging.getLogger("booster.worker")

# what one fetch may bring, and how many records become Python objects at a time: the worker's memory
# during a restore (a whole 64 MiB fetch as record objects took the worker from 190 to 480 MiB)
FETCH_BYTES = 16 * 1024 * 1024
PARTITION_FETCH_BYTES = 4 * 1024 * 1024
RECORDS_AT_A_TIME = 20_000
WORTH_IT = 1_000  # fewer records than this left: Faust's own recovery reads them
BUDGET_SECONDS = 60.0  # Faust gives the step we run in its request timeout (90 s); the rest is Faust's


@dataclass(frozen=True)
class Wanted:
    """One changelog partition to restore: its first offset to read, and its last offset."""

    start: int
    last: int

    @property
    def records(self) -> int:
        return max(0, self.last - self.start + 1)


def wanted(offsets: Mapping[Any, int | None], highwaters: Mapping[Any, int | None]) -> dict[Any, Wanted]:
    """The partitions behind, from Faust's recovery offsets: `offsets` is the last offset already
    applied (-1 for none; Faust reads it again), `highwaters` the last offset on the broker."""
    found = {}
    for tp, last in highwaters.items():
        if last is None or last < 0:
            continue
        done = offsets.get(tp)
        start = 0 if done is None or done < 0 else done + 1
        if last >= start:
            found[tp] = Wanted(start, last)
    return found


@dataclass(frozen=True)
class Restored:
    records: int
    partitions: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


class BulkRestore:
    """Called by Faust's recovery (`compat.restore_before_recovery`) with its offsets and highwaters of
    the active changelog partitions; returns the last offset restored of each partition it read."""

    def __init__(
        self,
        connection: Mapping[str, Any],
        databases: Callable[[str, int], tuple[Any, bytes] | None],
        budget_seconds: float = BUDGET_SECONDS,
        on_restored: Callable[[Restored], None] | None = None,
    ) -> None:
        self.connection = connection  # `connect.client_options`
        # (changelog topic, partition) -> (its RocksDB database, the key of its persisted offset)
        self.databases = databases
        self.budget_seconds = budget_seconds
        self.on_restored = on_restored

    async def __call__(self, offsets: Mapping[Any, int | None], highwaters: Mapping[Any, int | None]) -> dict[Any, int]:
        todo = wanted(offsets, highwaters)
        total = sum(w.records for w in todo.values())
        log.info("recovery: %d changelog records behind in %d active table partitions", total, len(offsets))
        if total < WORTH_IT:  # Faust's recovery reads so few as fast
            return {}
        log.info("bulk restore: reading %d changelog records of %d partitions", total, len(todo))
        started = time.monotonic()
        reached, records = await self._read(todo, started + self.budget_seconds)
        restored = Restored(records, len(todo), time.monotonic() - started)
        left = {tp: w.last - reached.get(tp, w.start - 1) for tp, w in todo.items()}
        log.info(
            "bulk restore: %d records of %d partitions in %.1f s (%.0f records/s)%s",
            restored.records,
            restored.partitions,
            restored.seconds,
            restored.per_second,
            "" if not any(n > 0 for n in left.values()) else f"; Faust's recovery reads the {sum(left.values())} left",
        )
        if self.on_restored is not None:
            self.on_restored(restored)
        # never past the last offset Faust knows of: its consistency check refuses an offset beyond its
        # highwater (records written since it looked are read again by its recovery: the rows are the same)
        return {tp: min(offset, todo[tp].last) for tp, offset in reached.items()}

    async def _read(self, todo: dict[Any, Wanted], deadline: float) -> tuple[dict[Any, int], int]:
        consumer = AIOKafkaConsumer(
            **self.connection,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_bytes=FETCH_BYTES,
            max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
            auto_offset_reset="earliest",
        )
        await started(consumer)
        reached: dict[Any, int] = {}
        records = 0
        try:
            by_tp = {TopicPartition(tp.topic, tp.partition): tp for tp in todo}
            consumer.assign(list(by_tp))
            for ours, tp in by_tp.items():
                consumer.seek(ours, todo[tp].start)
            open_ = set(by_tp)
            while open_ and time.monotonic() < deadline:
                fetched = await consumer.getmany(*open_, timeout_ms=500, max_records=RECORDS_AT_A_TIME)
                for ours, batch in fetched.items():
                    tp = by_tp[ours]
                    if batch:
                        records += self._write(tp, batch)
                        reached[tp] = batch[-1].offset
                for ours in list(open_):
                    tp = by_tp[ours]
                    position = await consumer.position(ours)
                    if position > todo[tp].last:  # past the last record, transaction markers included
                        if reached.get(tp, -1) < position - 1:
                            self._mark(tp, position - 1)
                            reached[tp] = position - 1
                        open_.discard(ours)
                        consumer.pause(ours)
        finally:
            await consumer.stop()
        return reached, records

    def _write(self, tp: Any, batch: list[Any]) -> int:
        found = self.databases(tp.topic, tp.partition)
        if found is None:  # the memory store: nothing local to restore into
            return 0
        db, offset_key = found
        rows = WriteBatch(raw_mode=True)
        for record in batch:
            if record.value is None:
                rows.delete(record.key)
            else:
                rows.put(record.key, record.value)
        rows.put(offset_key, str(batch[-1].offset).encode())  # with the rows, or not at all
        db.write(rows)
        return len(batch)

    def _mark(self, tp: Any, offset: int) -> None:
        """Past the last record there were only transaction markers or aborted records: resume after."""
        found = self.databases(tp.topic, tp.partition)
        if found is not None:
            db, offset_key = found
            db.put(offset_key, str(offset).encode())


TAIL = 256  # offsets read back from a changelog's end to find its last record (a marker per transaction)


async def last_records(
    connection: Mapping[str, Any], ends: Mapping[Any, int], starts: Mapping[Any, int]
) -> dict[Any, int]:
    """The offset of the last committed record of each changelog partition below its end offset (the
    last stable offset), from `starts[tp]` on; `starts[tp] - 1` when there is none from there.

    Why: the changelogs are written in transactions, so their last offset is a commit marker, which no
    consumer is ever handed. Faust's recovery waits to read up to the end offset less one (the marker)
    and would wait for ever; it must wait for the last record instead.
    """
    todo = {tp: (starts.get(tp, 0), end) for tp, end in ends.items() if end > starts.get(tp, 0)}
    found: dict[Any, int] = {tp: starts.get(tp, 0) - 1 for tp in ends}
    if not todo:
        return found
    consumer = AIOKafkaConsumer(**connection, group_id=None, enable_auto_commit=False, isolation_level="read_committed")
    await started(consumer)
    try:
        by_tp = {TopicPartition(tp.topic, tp.partition): tp for tp in todo}
        back = dict.fromkeys(by_tp, TAIL)
        consumer.assign(list(by_tp))
        open_ = set(by_tp)
        while open_:
            for ours in open_:
                start, end = todo[by_tp[ours]]
                consumer.seek(ours, max(start, end - back[ours]))
            reading = set(open_)
            while reading:
                fetched = await consumer.getmany(*reading, timeout_ms=500)
                for ours, batch in fetched.items():
                    last = [r.offset for r in batch if r.offset < todo[by_tp[ours]][1]]
                    if last:
                        found[by_tp[ours]] = max(found[by_tp[ours]], last[-1])
                for ours in list(reading):
                    if await consumer.position(ours) >= todo[by_tp[ours]][1]:
                        reading.discard(ours)
            for ours in list(open_):
                start, end = todo[by_tp[ours]]
                if found[by_tp[ours]] >= start or end - back[ours] <= start:
                    open_.discard(ours)  # its last record found, or none from `start` on
                else:
                    back[ours] *= 16  # only markers and aborted records in the tail: further back
    finally:
        await consumer.stop()
    return found
