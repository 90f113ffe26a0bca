"""Every use of a private API of Faust, aiokafka or rocksdict, each with why we need it.

Checked against faust-streaming 0.15.3, aiokafka 0.14.0 and rocksdict 0.3.29 (pinned in
pyproject.toml); `tests/unit/test_compat.py` fails when one of these assumptions stops holding.
Nothing else in the project reaches into those libraries' internals.
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

    return ReadCommittedConsumer


def leave_unacked(events: Iterable[Any]) -> None:
    """Keep these events' offsets from being committed: their processing did not finish.

    Why: Faust acks an event its stream yielded in the iterator's `finally`, also when the agent is
    cancelled (the worker stops, a rebalance) or fails half-way through it; `take_events` acks a whole
    batch so. Their offsets would be committed although their effects never reached the changelog,
    and the next owner of the partition would skip them (seen: recipients counted WAITING after a
    worker left mid-batch). `Message.ack` does nothing for a message whose `acked` is already set, and
    the consumer's wait for unacked messages skips such messages, so they stay uncommitted and are
    processed again by whoever consumes the partition next (the folds are idempotent).
    """
    for event in events:
        event.message.acked = True


async def refresh_metadata(consumer: Any) -> None:
    """Fetch cluster metadata now.

    Why: a consumer started without subscriptions may not know a topic created moments ago, and
    AIOKafkaConsumer has no public call that refreshes metadata for an assign()-only consumer.
    """
    await consumer._client.force_metadata_update()
