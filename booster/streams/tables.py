"""One partition of a Faust table, read and written directly.

Faust has no API to walk one partition of a table from a key prefix, and its per-key write path is
too slow for millions of rows. The RocksDB store keeps one database per partition behind a private
method; `_partition_db` is the one place that relies on it. Writes go to that database and, through
`ChangelogSink`, to the table's changelog topic, so Faust's recovery restores them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

RECIPIENT_SEP = "\x1f"
FAUST_KEYS = b"__faust\x00"  # Faust keeps its persisted offset in the same database


def recipient_key(campaign_id: str, contact_id: str) -> bytes:
    return f"{campaign_id}{RECIPIENT_SEP}{contact_id}".encode()


def recipient_prefix(campaign_id: str) -> bytes:
    return f"{campaign_id}{RECIPIENT_SEP}".encode()


def campaign_key(campaign_id: str, partition: int) -> bytes:
    # the same campaign has a state in every partition; the partition in the key keeps them apart
    return f"{campaign_id}@{partition}".encode()


def split_campaign_key(key: bytes) -> tuple[str, int]:
    campaign_id, _, partition = key.decode().rpartition("@")
    return campaign_id, int(partition)


def _partition_db(table: Any, partition: int) -> Any | None:
    store = table.data
    if hasattr(store, "_db_for_partition"):  # RocksDB: opens the partition's database if needed
        return store._db_for_partition(partition)
    return None


def partition_items(
    table: Any, partition: int, prefix: bytes = b"", after: bytes | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """Items of one partition of a raw-keyed table whose key starts with `prefix`, in key order,
    starting after `after` when given."""
    db = _partition_db(table, partition)
    if db is None:  # memory store: no per-partition databases, walk everything
        items = sorted((k, v) for k, v in table.data.items() if k.startswith(prefix) and not k.startswith(FAUST_KEYS))
        for k, v in items:
            if after is None or k > after:
                yield k, v
        return
    start = prefix if after is None else after
    for key, value in db.items(from_key=start):
        if isinstance(key, bytes) and key.startswith(FAUST_KEYS):
            continue
        if not isinstance(key, bytes) or not key.startswith(prefix):
            if isinstance(key, bytes) and key < prefix:
                continue
            break
        if after is not None and key <= after:
            continue
        yield key, value


def partition_get(table: Any, partition: int, key: bytes) -> bytes | None:
    db = _partition_db(table, partition)
    if db is None:
        value: bytes | None = table.data.get(key)
        return value
    found: bytes | None = db.get(key)
    return found


def estimated_keys(table: Any, partitions: list[int]) -> int:
    """RocksDB's own estimate of the keys in these partitions (exact for the memory store)."""
    total = 0
    for p in partitions:
        db = _partition_db(table, p)
        if db is None:
            return len(table.data)
        value = db.property_int_value("rocksdb.estimate-num-keys")
        total += int(value or 0)
    return total


class ChangelogSink:
    """Changelog records of the tables we write directly, produced in batches by our own producer.

    Faust's own path (`Table.send_changelog`) costs a future, a task and a RocksDB write of the
    persisted offset per record; at tens of thousands of rows a second that is most of a worker's time.
    Here records are appended to one batch per changelog partition and `flush` sends them, waits for
    the broker, and then records each partition's last offset as Faust does (`set_persisted_offset`),
    so a restart reads only what it missed. Callers flush before the source records are acked, so a
    row is in the changelog before its cause is committed.
    """

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._producer: Any = None
        self._builders: dict[tuple[str, int], Any] = {}
        self._stores: dict[tuple[str, int], Any] = {}
        # one flush at a time, in the order of the appends: the changelog's order is the table's
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        if self._producer is None:
            from aiokafka import AIOKafkaProducer

            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                max_batch_size=900 * 1024,
            )
            await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def append(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        topic = table.changelog_topic.get_topic_name()
        builder = self._builders.get((topic, partition))
        if builder is None:
            builder = self._builders[(topic, partition)] = _Builder(topic, partition)
            self._stores[(topic, partition)] = table.data
        builder.records.append((key, value))

    async def flush(self) -> None:
        """Every record appended before this call is on the broker when it returns."""
        async with self._lock:
            if not self._builders:
                return
            builders, stores = self._builders, self._stores
            self._builders, self._stores = {}, {}
            await self._send(builders, stores)

    async def _send(self, builders: dict[tuple[str, int], _Builder], stores: dict[tuple[str, int], Any]) -> None:
        await self.start()
        producer = self._producer
        sent = []
        for (topic, partition), builder in builders.items():
            batch = producer.create_batch()
            count = 0
            for key, value in builder.records:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    sent.append((await producer.send_batch(batch, topic, partition=partition), topic, partition, count))
                    batch = producer.create_batch()
                    count = 0
                    batch.append(key=key, value=value, timestamp=None)
                count += 1
            if count:
                sent.append((await producer.send_batch(batch, topic, partition=partition), topic, partition, count))
        last: dict[tuple[str, int], int] = {}
        for future, topic, partition, count in sent:
            metadata = await future
            end = metadata.offset + count - 1
            last[(topic, partition)] = max(end, last.get((topic, partition), -1))
        for (topic, partition), offset in last.items():
            store = stores[(topic, partition)]
            if hasattr(store, "set_persisted_offset"):
                from faust.types import TP

                store.set_persisted_offset(TP(topic, partition), offset)


class _Builder:
    __slots__ = ("partition", "records", "topic")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.records: list[tuple[bytes, bytes | None]] = []


class PartitionWriter:
    """Writes to one partition of a raw table without Faust's per-key bookkeeping.

    The value goes to the partition's RocksDB at once and to the changelog through the sink (flushed
    by the caller before its source records are acked): what `table[key] = value` inside stream
    iteration does, minus Faust's in-memory index of every key written (which grows with the number
    of recipients) and its per-record producer path. `None` deletes (a tombstone in the changelog).
    """

    def __init__(self, table: Any, sink: ChangelogSink) -> None:
        self.table = table
        self.sink = sink

    def get(self, partition: int, key: bytes) -> bytes | None:
        return partition_get(self.table, partition, key)

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.write(partition, {key: value})

    def write(self, partition: int, items: dict[bytes, bytes | None]) -> None:
        db = _partition_db(self.table, partition)
        append = self.sink.append
        for key, value in items.items():
            if db is None:
                if value is None:
                    self.table.data.pop(key, None)
                else:
                    self.table.data[key] = value
            elif value is None:
                db.delete(key)
            else:
                db.put(key, value)
            append(self.table, partition, key, value)
