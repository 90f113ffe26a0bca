"""The lag gate (G1): a partition's deadline fires only once its inputs are processed past it.

At a moment after the deadline plus the allowed lateness, the gate takes the end offsets of every
input partition the deadline depends on: their high watermarks, everything appended by then, whether
committed or in a transaction still open. Everything published before that moment lies below them.
The deadline fires once the position of each input partition has reached its end offset in that
snapshot, however much has been published since. A partition's position is the offset below which
every record is processed: the group's committed offset, carried on by the worker's own ledger over
the contiguous run of records it processed since (`OffsetLedger.processed`), never the highest offset
it processed, which would pass over a record dropped or still queued below it. Record timestamps are
not trusted for this: a producer may stamp a record with any time.

Not the last stable offsets: an upstream transaction left open (a producer that died in one, or
that a broker restart cut off) holds a partition's last stable offset at its first record until it
is committed or aborted, up to the producer's transaction timeout, and every record appended after
it, by any producer, stays unreadable to a read-committed consumer meanwhile. A snapshot of last
stable offsets would end below those records, and the deadline would fire without facts that were
on the broker in time (seen in the fault campaign: opens appended a minute before a deadline, behind
a transaction open for ten minutes, and their openers boosted). Against high watermarks the gate
stays shut until the transaction ends and the records behind it are read; the wait is bounded by
the transaction timeout, and shows as the deadline waiting for lag.

Offsets are not records. A transaction ends with a commit or abort marker, which takes an offset but
is never delivered, and an aborted transaction's records are never delivered either: after a
transactional producer's last record the end offset stays one past what any consumer can process.
So a partition that looks behind is probed: a read-committed fetch from its position that returns
no record below the end offset, and moves past it, shows that only markers and aborted records are
left, and the partition counts as processed. While a transaction below the end offset is open, the
read-committed fetch cannot move past its first record: the partition stays behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from mode import Service

from booster.streams.connect import started

PROBE_SECONDS = 2.0  # a partition the probe has not settled by then stays behind until the next look
PROBE_FETCH_BYTES = 64 * 1024  # the broker still returns a first batch larger than this
# how old the group's committed offsets may be for the deadline timer's looks: asked once for every
# partition, they serve a pass over hundreds of due boosters, not one request per booster and
# partition (an older committed offset is never ahead of a newer one: a position from it is never
# too far, only the gate is shut a moment longer)
COMMITTED_SECONDS = 1.0


def probe_consumer(connection: Mapping[str, Any]) -> AIOKafkaConsumer:
    """The consumer `only_markers_left` needs (not started), with the `connect.client_options`."""
    return AIOKafkaConsumer(
        **connection,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_wait_ms=50,
        # a probe needs one record, not a megabyte per partition while a worker catches up
        max_partition_fetch_bytes=PROBE_FETCH_BYTES,
        # a position below the log start (retention) must read the oldest records, which are not
        # processed yet, not jump to the end and pass for caught up
        auto_offset_reset="earliest",
    )


def end_consumer(connection: Mapping[str, Any]) -> AIOKafkaConsumer:
    """The consumer (not started) the gate's snapshots are read with: read-uncommitted, so its end
    offsets are the high watermarks, records of transactions still open included."""
    return AIOKafkaConsumer(**connection, group_id=None, enable_auto_commit=False, isolation_level="read_uncommitted")


async def only_markers_left(
    consumer: AIOKafkaConsumer, positions: Mapping[TopicPartition, int], ends: Mapping[TopicPartition, int]
) -> set[TopicPartition]:
    """Of these partitions, those with no deliverable record from `positions` up to `ends`.
    `consumer` is a `probe_consumer`; its assignment is taken over and left paused."""
    undecided = {tp for tp in positions if positions[tp] < ends.get(tp, 0)}
    if not undecided:
        return set()
    done: set[TopicPartition] = set()
    consumer.assign(sorted(undecided, key=lambda tp: (tp.topic, tp.partition)))
    try:
        for tp in undecided:
            consumer.seek(tp, positions[tp])
        deadline = asyncio.get_running_loop().time() + PROBE_SECONDS
        while undecided and asyncio.get_running_loop().time() < deadline:
            fetched = await consumer.getmany(*undecided, timeout_ms=200)
            for tp, records in fetched.items():
                if any(r.offset < ends[tp] for r in records):
                    undecided.discard(tp)  # a real record not processed yet: behind
            for tp in list(undecided):
                if await consumer.position(tp) >= ends[tp]:
                    undecided.discard(tp)
                    done.add(tp)
    finally:
        # paused, an assignment is not fetched: a long-polling fetch would delay offset requests
        # (unsubscribe() or assign([]) instead can leave a consumer whose stop() never returns)
        consumer.pause(*consumer.assignment())
    return done


# what this worker has processed of a partition, from the group's committed offset (None: it knows
# nothing more than that offset); `OffsetLedger.processed` of the worker's consumer
Processed = Callable[[TopicPartition, int | None], int | None]


def nothing_more(tp: TopicPartition, committed: int | None) -> int | None:
    """The `Processed` of a gate outside a worker: the committed offsets are all there is."""
    return None


def positions(
    tps: Iterable[TopicPartition], committed: Mapping[TopicPartition, int | None], processed: Processed
) -> dict[TopicPartition, int]:
    """Each partition's position: the offset below which every record is processed."""
    found = {}
    for tp in tps:
        offset = committed.get(tp)
        offset = offset if offset is not None and offset >= 0 else None
        ours = processed(tp, offset)
        found[tp] = ours if ours is not None else offset or 0
    return found


class LagGate(Service):
    """Its clients start when first needed and stop with the worker (or `stop()` when used alone)."""

    def __init__(
        self, connection: Mapping[str, Any], group_id: str, processed: Processed = nothing_more, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.connection = connection  # `connect.client_options`: the broker and the credentials
        self.group_id = group_id
        self.processed = processed
        self._consumer: AIOKafkaConsumer | None = None
        self._ends: AIOKafkaConsumer | None = None  # `end_consumer`: the snapshots' high watermarks
        self._admin: AIOKafkaAdminClient | None = None
        self._probing = asyncio.Lock()  # the timer and the web pages share the probe's assignment
        self._committed: tuple[float, dict[TopicPartition, int]] | None = None  # (monotonic time asked, offsets)

    async def _clients(self) -> None:
        if self._consumer is None:
            self._consumer = await started(probe_consumer(self.connection))
        if self._ends is None:
            self._ends = await started(end_consumer(self.connection))
        if self._admin is None:
            self._admin = await started(AIOKafkaAdminClient(**self.connection))

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._ends is not None:
            await self._ends.stop()
            self._ends = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The snapshot: the high watermarks of these partitions, now (see the module's docstring)."""
        await self._clients()
        assert self._ends is not None
        ends: dict[TopicPartition, int] = await self._ends.end_offsets(tps)
        return ends

    async def _committed_offsets(self, max_age: float) -> dict[TopicPartition, int]:
        assert self._admin is not None
        now = asyncio.get_running_loop().time()
        if self._committed is not None and now - self._committed[0] < max_age:
            return self._committed[1]
        metas = await self._admin.list_consumer_group_offsets(self.group_id)
        committed = {tp: meta.offset for tp, meta in metas.items() if meta is not None}
        self._committed = (now, committed)
        return committed

    async def lagging(
        self, tps: list[TopicPartition], ends: dict[TopicPartition, int] | None = None, committed_age: float = 0.0
    ) -> dict[TopicPartition, int]:
        """Partitions whose position is short of `ends` (default: the end offsets now), with by how much;
        `committed_age`: how old the group's committed offsets asked for an earlier look may be."""
        await self._clients()
        assert self._consumer is not None and self._admin is not None
        if ends is None:
            ends = await self.end_offsets(tps)
        # the group's committed offsets: they cover partitions another worker consumes and offsets
        # this worker processed before a restart
        committed = await self._committed_offsets(committed_age)
        found = positions(tps, committed, self.processed)
        async with self._probing:
            settled = await only_markers_left(self._consumer, found, ends)
        return {
            tp: ends.get(tp, 0) - position
            for tp, position in found.items()
            if position < ends.get(tp, 0) and tp not in settled
        }
