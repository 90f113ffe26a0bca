"""Every use of a private API of Faust, aiokafka or rocksdict, each with why we need it.

Checked against faust-streaming 0.15.3, aiokafka 0.14.0 and rocksdict 0.3.29 (pinned in
pyproject.toml); `tests/unit/streams/test_compat.py` fails when one of these assumptions stops
holding. Nothing else in the project reaches into those libraries' internals.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

# Faust keeps a table partition's persisted changelog offset in the same RocksDB database as the rows,
# under keys starting with this (RocksDBStore.offset_key is b"__faust\0offset__"): walks skip them.
FAUST_KEYS = b"__faust\x00"


def partition_db(table: Any, partition: int) -> Any:
    """One partition's RocksDB database (a rocksdict `Rdict`) of a Faust table, or None for the memory
    store.

    Why: Faust has no API to walk one partition of a table from a key prefix, nor to write rows
    without its per-key bookkeeping (an in-memory index of every key written). RocksDBStore keeps one
    rocksdict `Rdict` per partition behind the private `_db_for_partition`, which opens it if needed.
    """
    opener = getattr(table.data, "_db_for_partition", None)
    return None if opener is None else opener(partition)


def memory_rows(table: Any) -> dict[bytes, bytes]:
    """The dict behind a Faust table on the memory store (`memory://`, for experiments).

    Why: the memory store has no partitions of its own; `table.data` is the store object itself.
    """
    rows: dict[bytes, bytes] = table.data
    return rows


def set_persisted_offset(table: Any, topic: str, partition: int, offset: int) -> None:
    """Record, as Faust does after it writes a changelog record, the last changelog offset whose row is
    in the local RocksDB, so a restarted worker only reads what it missed from the changelog.

    Why: our changelog records are produced by our own batched producer (ChangelogSink), not by
    `Table.send_changelog`, so Faust does not record their offsets itself.
    """
    from faust.types import TP

    store = table.data
    if hasattr(store, "set_persisted_offset"):  # the memory store has no local state to resume from
        store.set_persisted_offset(TP(topic, partition), offset)


@cache
def read_committed_consumer() -> type:
    """Faust's consumer class, reading with isolation.level=read_committed (set as
    `app.transport.Consumer`). Built on first use, so the CLI does not import Faust."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
    from faust.transport.drivers.aiokafka import Consumer as FaustConsumer

    class ReadCommittedThread(AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # Why: Faust reads committed records only in its exactly_once mode, which we do not use;
            # the fan-out's summaries are transactional and an aborted one must never be merged.
            # aiokafka reads the attribute when it builds its fetcher, at start, after this.
            consumer._isolation_level = "read_committed"
            return consumer

    class ReadCommittedConsumer(FaustConsumer):
        def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
            return ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)

        def _filter_committable_offsets(self, tps: Iterable[Any]) -> dict[Any, int]:
            return committable_offsets(self, tps)

    return ReadCommittedConsumer


def committable_offsets(consumer: Any, tps: Iterable[Any]) -> dict[Any, int]:
    """The offsets a Faust consumer may commit now, its bookkeeping moved past them.

    Why: faust-streaming 0.15.3's `Consumer._new_offset` commits past a message still being processed
    when that message sits at the committed offset and the ones after it are acked (its head check,
    `min(acked) - committed > 1`, lets a gap of exactly one through; faust-streaming issue 606): a
    kill -9 then loses that message. The slack exists because `_add_gap` starts its gaps one past the
    committed offset, so a transaction marker there is never in a gap. Here the acked offsets and the
    gaps are walked from the committed offset as Faust does, keeping that slack for a marker, but never
    up to a message still in flight (delivered to a stream and not acked: `_unacked_messages`, which
    also holds the messages `hold_acks` keeps).
    """
    in_flight: dict[Any, int] = {}
    for message in list(consumer._unacked_messages):
        committed = consumer._committed_offset[message.tp]
        if message.acked or (committed is not None and message.offset < committed):
            continue  # a copy read before the seek to the committed offset holds nothing back
        if message.offset < in_flight.get(message.tp, message.offset + 1):
            in_flight[message.tp] = message.offset
    offsets = {}
    for tp in tps:
        acked = consumer._acked[tp]
        gaps = consumer._gap[tp]
        offset = commit_point(
            acked, [(gap.begin, gap.end) for gap in gaps], consumer._committed_offset[tp], in_flight.get(tp)
        )
        if offset is None:
            continue
        consumer._acked[tp] = [o for o in acked if o >= offset]
        consumer._acked_index[tp] = {o for o in consumer._acked_index[tp] if o >= offset}
        gaps.chop(0, offset)
        if consumer._should_commit(tp, offset):
            offsets[tp] = offset
    return offsets


def commit_point(
    acked: Iterable[int], gaps: Iterable[tuple[int, int]], committed: int | None, in_flight: int | None
) -> int | None:
    """One past the run of offsets, from the committed one, that are acked or in a gap (`[begin, end)`:
    transaction markers and aborted records, never delivered), stopping at the first message in
    flight; None when that run is empty."""
    done = set(acked)
    if not done:
        return None
    limit = max(done) + 1 if in_flight is None else min(max(done) + 1, in_flight)
    for begin, end in gaps:
        done.update(range(begin, min(end, limit)))
    head = min(done) if committed is None else committed
    if head not in done and head + 1 in done:
        head += 1  # a marker at the committed offset, in no gap (see committable_offsets)
    end = head
    while end < limit and end in done:
        end += 1
    return None if end == head else end


def hold_acks(events: Iterable[Any]) -> None:
    """Keep these events from being acked (and their offsets committed) until `release_acks`.

    Why: Faust acks an event its stream yielded in the iterator's `finally`, and `Stream.on_stop`
    closes a `take()` generator suspended at its yield, so a batch can be acked while the agent is
    still processing it, or after the agent was cancelled (a stop, a rebalance) half-way. Offsets whose
    rows never reached the changelog were committed, and the partition's next owner skipped them (seen:
    recipients counted WAITING after a worker left). A message is acked when its reference count
    reaches zero (`Message.ack`), as for a message several streams share; one more reference per
    event, dropped only once its effects are written, leaves an interrupted event uncommitted, to be
    processed again by whoever consumes the partition next (the folds are idempotent). Faust's wait
    for unacked messages at a rebalance waits for it, as it should.
    """
    for event in events:
        event.message.incref()


def release_acks(events: Iterable[Any]) -> None:
    """Drop the reference `hold_acks` took: the stream's own ack now completes each event."""
    for event in events:
        event.ack()


async def refresh_metadata(consumer: Any) -> None:
    """Fetch cluster metadata now.

    Why: a consumer started without subscriptions may not know a topic created moments ago, and
    AIOKafkaConsumer has no public call that refreshes metadata for an assign()-only consumer.
    """
    await consumer._client.force_metadata_update()
