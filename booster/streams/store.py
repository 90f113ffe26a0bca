"""The storage boundary: one partition of a table, read and written through a small protocol.

`PartitionStore` is all the shell needs of state: get a row, walk rows from a key prefix in key order,
write a batch (None deletes). `FaustTable` implements it on a Faust table's RocksDB databases and
changelog topic; `MemoryTable` implements it in memory, for unit tests of the shell's logic.

Why not Faust's own `table[key] = value`: its per-key write path (a future, a task and a persisted
offset write per record, and an in-memory index of every key written) is most of a worker's time at
tens of thousands of rows a second, and it has no prefix walk. Here rows go to the partition's
RocksDB at once and to the changelog through `ChangelogSink`, which the caller flushes before the
source records are acked, so a row is in the changelog before its cause is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from mode import Service
from rocksdict import WriteBatch

from booster.streams import compat
from booster.streams.connect import started
from booster.streams.records import send_batches

Rows = Mapping[bytes, bytes | None]  # a batch of writes; None deletes


class PartitionStore(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """The rows of these keys, in their order (None for a missing one): one read for many rows."""
        ...

    def items(self, prefix: bytes = b"", after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Rows whose key starts with `prefix`, in key order, after `after` when given."""
        ...

    def write(self, rows: Rows) -> None: ...


class Table(Protocol):
    name: str

    def partition(self, partition: int) -> PartitionStore: ...

    def estimated_keys(self, partitions: Iterable[int]) -> int: ...


# -- keys ------------------------------------------------------------------------------------------

SEP = "\x1f"  # between the parts of a composite key: never in an id a person types


def recipient_key(campaign_id: str, contact_id: str) -> bytes:
    return f"{campaign_id}{SEP}{contact_id}".encode()


def recipient_prefix(campaign_id: str) -> bytes:
    return f"{campaign_id}{SEP}".encode()


def pending_key(account_id: str, campaign_id: str) -> bytes:
    return f"{account_id}{SEP}{campaign_id}".encode()


def pending_prefix(account_id: str) -> bytes:
    return f"{account_id}{SEP}".encode()


def pending_launch_key(account_id: str, campaign_id: str, fingerprint: str) -> bytes:
    """A launch waiting for its account: one row per launch, so every launch of a campaign id waits and is
    decided (G5: which one wins is decided downstream, whatever their order)."""
    return f"{account_id}{SEP}{campaign_id}{SEP}{fingerprint}".encode()


def split_pending_key(key: bytes) -> tuple[str, str]:
    """(account_id, campaign_id) of a pending launch's key, or an account's live booster's (a pending
    launch's key written before launches had a row each has no fingerprint)."""
    account_id, _, rest = key.decode().partition(SEP)
    return account_id, rest.partition(SEP)[0]


def campaign_key(campaign_id: str, partition: int) -> bytes:
    # the same campaign has a state in every partition; the partition in the key keeps them apart
    return f"{campaign_id}@{partition}".encode()


def split_campaign_key(key: bytes) -> tuple[str, int]:
    campaign_id, _, partition = key.decode().rpartition("@")
    return campaign_id, int(partition)


# -- in memory -------------------------------------------------------------------------------------


class MemoryPartition:
    def __init__(self) -> None:
        self.rows: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.rows.get(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.rows.get(key) for key in keys]

    def items(self, prefix: bytes = b"", after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        for key in sorted(k for k in self.rows if k.startswith(prefix) and (after is None or k > after)):
            yield key, self.rows[key]

    def write(self, rows: Rows) -> None:
        for key, value in rows.items():
            if value is None:
                self.rows.pop(key, None)
            else:
                self.rows[key] = value


class MemoryTable:
    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.partitions: dict[int, MemoryPartition] = {}

    def partition(self, partition: int) -> MemoryPartition:
        return self.partitions.setdefault(partition, MemoryPartition())

    def estimated_keys(self, partitions: Iterable[int]) -> int:
        return sum(len(self.partition(p).rows) for p in partitions)


# -- a Faust table ---------------------------------------------------------------------------------


class _FaustPartition:
    def __init__(self, table: FaustTable, partition: int) -> None:
        self.table = table
        self.partition = partition

    @property
    def db(self) -> Any:
        # looked up each time: Faust closes a partition's database when the partition is revoked
        return compat.partition_db(self.table.faust_table, self.partition)

    def get(self, key: bytes) -> bytes | None:
        db = self.db
        if db is None:
            return compat.memory_rows(self.table.faust_table).get(key)
        found: bytes | None = db.get(key)
        return found

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        db = self.db
        if db is None:
            rows = compat.memory_rows(self.table.faust_table)
            return [rows.get(key) for key in keys]
        found: list[bytes | None] = db.get(keys)  # RocksDB's multi-get: half the time of a get per key
        return found

    def items(self, prefix: bytes = b"", after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        db = self.db
        if db is None:  # the memory store has one dict for every partition
            rows = compat.memory_rows(self.table.faust_table)
            for key in sorted(k for k in rows if k.startswith(prefix) and not k.startswith(compat.FAUST_KEYS)):
                if after is None or key > after:
                    yield key, rows[key]
            return
        for key, value in db.items(from_key=prefix if after is None else after):
            if not isinstance(key, bytes):
                continue
            if key.startswith(compat.FAUST_KEYS) or (after is not None and key <= after):
                continue
            if not key.startswith(prefix):
                if key < prefix:  # seeking from `after` may start before the prefix's range
                    continue
                break
            yield key, value

    def write(self, rows: Rows) -> None:
        table = self.table.faust_table
        # the changelog batch looked up once per write, not per row (Faust names the topic each time)
        changelog = self.table.sink.records_for(table, self.partition)
        db = self.db
        if db is None:
            memory = compat.memory_rows(table)
            for key, value in rows.items():
                if value is None:
                    memory.pop(key, None)
                else:
                    memory[key] = value
                changelog.append((key, value, None))
            return
        # one RocksDB write for the batch: half the time of a put per row, and all or nothing
        # (Faust opens its databases in raw mode: bytes keys and values as they are)
        batch = WriteBatch(raw_mode=True)
        for key, value in rows.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
            changelog.append((key, value, None))
        db.write(batch)


class FaustTable:
    """A Faust table (raw bytes keys and values) read and written a partition at a time."""

    def __init__(self, faust_table: Any, sink: ChangelogSink) -> None:
        self.faust_table = faust_table
        self.sink = sink
        self.name: str = faust_table.name
        self._partitions: dict[int, _FaustPartition] = {}

    def partition(self, partition: int) -> PartitionStore:
        found = self._partitions.get(partition)
        if found is None:
            found = self._partitions[partition] = _FaustPartition(self, partition)
        return found

    def estimated_keys(self, partitions: Iterable[int]) -> int:
        """RocksDB's own estimate of the keys in these partitions (exact for the memory store)."""
        total = 0
        for p in partitions:
            db = compat.partition_db(self.faust_table, p)
            if db is None:
                return len(compat.memory_rows(self.faust_table))
            total += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
        return total


class ChangelogSink(Service):
    """Changelog records of the tables we write directly, and records forwarded to another partition,
    produced in batches by our own producer.

    Records are appended to one batch per topic partition; `flush` sends them, waits for the broker,
    and then records each changelog partition's last offset as Faust does, so a restart reads only what
    it missed. One flush at a time, in the order of the appends: the changelog's order is the table's.
    """

    def __init__(self, connection: Mapping[str, Any], request_timeout: float = 40.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connection = connection  # `connect.client_options`: the broker and the credentials
        self.request_timeout = request_timeout
        self._producer: AIOKafkaProducer | None = None
        self._pending: dict[tuple[str, int], list[tuple[bytes | None, bytes | None, int | None]]] = {}
        self._tables: dict[tuple[str, int], Any] = {}  # changelog partitions only
        self._lock = asyncio.Lock()

    async def on_start(self) -> None:
        await self._ensure_producer()

    async def on_stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **self.connection,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                max_batch_size=900 * 1024,
                request_timeout_ms=int(self.request_timeout * 1000),
            )
            self._producer = await started(producer)
        return self._producer

    def append(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        self.records_for(table, partition).append((key, value, None))

    def records_for(self, table: Any, partition: int) -> list[tuple[bytes | None, bytes | None, int | None]]:
        """The changelog records waiting for the next flush of a table's partition, to append
        (key, value, None) to, in the table's order; valid until the next await."""
        topic = table.changelog_topic.get_topic_name()
        self._tables[(topic, partition)] = table
        return self._batch(topic, partition)

    def forward(self, topic: str, partition: int, key: bytes | None, value: bytes | None, timestamp_ms: int) -> None:
        """A record for another partition (real topic name), sent with its original timestamp."""
        self._batch(topic, partition).append((key, value, timestamp_ms))

    def _batch(self, topic: str, partition: int) -> list[tuple[bytes | None, bytes | None, int | None]]:
        records = self._pending.get((topic, partition))
        if records is None:
            records = self._pending[(topic, partition)] = []
        return records

    async def flush(self) -> None:
        """Every record appended before this call is on the broker when it returns."""
        async with self._lock:
            if not self._pending:
                return
            pending, tables = self._pending, self._tables
            self._pending, self._tables = {}, {}
            try:
                await self._send(pending, tables)
            except BaseException:
                # not known to be written: kept, ahead of what was appended since, for the next flush
                # (records the broker did take are sent again: a changelog keeps the latest, in order)
                for tp, records in self._pending.items():
                    pending.setdefault(tp, []).extend(records)
                self._pending, self._tables = pending, {**tables, **self._tables}
                raise

    async def _send(
        self,
        pending: dict[tuple[str, int], list[tuple[bytes | None, bytes | None, int | None]]],
        tables: dict[tuple[str, int], Any],
    ) -> None:
        """Send the records, wait for the broker, then record the changelogs' persisted offsets."""
        producer = await self._ensure_producer()
        sent = []
        for (topic, partition), records in pending.items():
            for future, count in await send_batches(producer, topic, partition, records):
                sent.append((future, topic, partition, count))
        last: dict[tuple[str, int], int] = {}
        for future, topic, partition, count in sent:
            metadata = await future
            end = metadata.offset + count - 1
            last[(topic, partition)] = max(end, last.get((topic, partition), -1))
        for (topic, partition), offset in last.items():
            if (topic, partition) in tables:
                compat.set_persisted_offset(tables[(topic, partition)], topic, partition, offset)
