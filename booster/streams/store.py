"""The storage boundary: one partition of a table, read and written through a small protocol.

`PartitionStore` is all the shell needs of state: get a row, walk rows from a key prefix in key order,
write a batch (None deletes). `FaustTable` implements it on a Faust table's RocksDB databases and
changelog topic; `MemoryTable` implements it in memory, for unit tests of the shell's logic.

Why not Faust's own `table[key] = value`: its per-key write path (a future, a task and a persisted
offset write per record, and an in-memory index of every key written) is most of a worker's time at
tens of thousands of rows a second, and it has no prefix walk. Here rows go to the changelog through
`ChangelogSink`, which the caller flushes before the source records are acked, so a row is in the
changelog before its cause is committed; and into RocksDB only once their changelog records are on
the broker (reads see them meanwhile), so the local store never holds a row its changelog lacks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NoReturn, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced
from mode import Service

from booster.streams import compat
from booster.streams.connect import started
from booster.streams.records import exit_fenced, send_batches

log = logging.getLogger("booster.worker")

Rows = Mapping[bytes, bytes | None]  # a batch of writes; None deletes
Staged = dict[bytes, bytes | None]  # rows written and waiting for their changelog to be on the broker


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
    """One partition of a Faust table. Rows written here wait in the sink (`ChangelogSink.stage`) until
    their changelog records are on the broker, and only then go to RocksDB, with the changelog offset
    they reached, in one write: the local store is never ahead of its changelog. Reads see the rows
    waiting as if they were written."""

    def __init__(self, table: FaustTable, partition: int) -> None:
        self.table = table
        self.partition = partition

    @property
    def db(self) -> Any:
        # looked up each time: Faust closes a partition's database when the partition is revoked
        return compat.partition_db(self.table.faust_table, self.partition)

    def _waiting(self) -> Staged:
        return self.table.sink.staged_view(self.table.changelog, self.partition)

    def get(self, key: bytes) -> bytes | None:
        db = self.db
        if db is None:
            return compat.memory_rows(self.table.faust_table).get(key)
        found, value = self.table.sink.staged_row(self.table.changelog, self.partition, key)
        if found:
            return value
        stored: bytes | None = db.get(key)
        return stored

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        db = self.db
        if db is None:
            rows = compat.memory_rows(self.table.faust_table)
            return [rows.get(key) for key in keys]
        found: list[bytes | None] = db.get(keys)  # RocksDB's multi-get: half the time of a get per key
        waiting = self._waiting()
        if waiting:
            found = [waiting.get(key, value) for key, value in zip(keys, found, strict=True)]
        return found

    def items(self, prefix: bytes = b"", after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        db = self.db
        if db is None:  # the memory store has one dict for every partition
            rows = compat.memory_rows(self.table.faust_table)
            for key in sorted(k for k in rows if k.startswith(prefix) and not k.startswith(compat.FAUST_KEYS)):
                if after is None or key > after:
                    yield key, rows[key]
            return
        waiting = sorted(
            (key, value)
            for key, value in self._waiting().items()
            if key.startswith(prefix) and (after is None or key > after)
        )
        yield from _merged(self._stored(db, prefix, after), waiting)

    def _stored(self, db: Any, prefix: bytes, after: bytes | None) -> Iterator[tuple[bytes, bytes]]:
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
        staged = self.table.sink.stage(self.table.changelog, self.partition)
        for key, value in rows.items():
            changelog.append((key, value, None))
        staged.update(rows)


def _merged(
    stored: Iterator[tuple[bytes, bytes]], waiting: list[tuple[bytes, bytes | None]]
) -> Iterator[tuple[bytes, bytes]]:
    """The stored rows with the waiting ones over them, in key order (a waiting None deletes)."""
    i = 0
    for key, value in stored:
        while i < len(waiting) and waiting[i][0] < key:
            if waiting[i][1] is not None:
                yield waiting[i]  # type: ignore[misc]
            i += 1
        if i < len(waiting) and waiting[i][0] == key:
            if waiting[i][1] is not None:
                yield waiting[i]  # type: ignore[misc]
            i += 1
            continue
        yield key, value
    for key, later in waiting[i:]:
        if later is not None:
            yield key, later


class FaustTable:
    """A Faust table (raw bytes keys and values) read and written a partition at a time."""

    def __init__(self, faust_table: Any, sink: ChangelogSink) -> None:
        self.faust_table = faust_table
        self.sink = sink
        self.name: str = faust_table.name
        self.changelog: str = faust_table.changelog_topic.get_topic_name()
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
    produced in batches by our own producers.

    Records are appended to one batch per topic partition; `flush` sends them, waits for the broker,
    and only then writes the rows into the partitions' RocksDB, with the last changelog offset each
    reached (the offset Faust resumes from after a restart), in one write per partition. One flush at a
    time, in the order of the appends: the changelog's order is the table's. A worker killed before its
    flush lands leaves nothing local that the changelog does not have; with rows written locally
    first, a fact processed again after a restart changed no row, so its row was never written to the
    changelog, and the next worker to restore the partition lost it.

    A table partition's changelog is written in transactions by a producer whose transactional id is
    the partition's (`own`): the worker that takes the partition over fences the one that had it,
    before it restores, so a worker frozen or cut off past its session timeout that still believes it
    owns the partition can never write an older row over the new owner's. Such a worker learns it is
    fenced when it writes, and exits to rejoin its group. Forwarded records (facts of another
    partition, which the partition's owner folds as often as they come) go through a plain producer.
    """

    def __init__(
        self,
        connection: Mapping[str, Any],
        request_timeout: float = 40.0,
        transactional_prefix: str | None = None,
        give_up: Callable[[str, BaseException], NoReturn] = exit_fenced,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.connection = connection  # `connect.client_options`: the broker and the credentials
        self.request_timeout = request_timeout
        # None: one plain producer for everything (no fencing; the tools and tests of the sink alone)
        self.transactional_prefix = transactional_prefix
        self.give_up = give_up  # fenced: another worker owns the partition now
        self._producer: AIOKafkaProducer | None = None
        self._owners: dict[int, AIOKafkaProducer] = {}
        self._pending: dict[tuple[str, int], list[tuple[bytes | None, bytes | None, int | None]]] = {}
        self._tables: dict[tuple[str, int], Any] = {}  # changelog partitions only
        self._staged: dict[tuple[str, int], Staged] = {}  # rows written since the flush under way began
        self._flushing: dict[tuple[str, int], Staged] = {}  # the rows of the flush under way
        self._lock = asyncio.Lock()

    async def on_start(self) -> None:
        await self._ensure_producer()

    async def on_stop(self) -> None:
        for producer in [self._producer, *self._owners.values()]:
            if producer is not None:
                await producer.stop()
        self._producer, self._owners = None, {}

    def _options(self) -> dict[str, Any]:
        return {
            **self.connection,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 5,
            "max_batch_size": 900 * 1024,
            "request_timeout_ms": int(self.request_timeout * 1000),
        }

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = await started(AIOKafkaProducer(**self._options()))
        return self._producer

    async def own(self, partitions: Iterable[int]) -> None:
        """This worker now owns these table partitions: their transactional producers, started, fence
        every earlier owner (an open transaction of one is aborted). Done before the partitions'
        changelogs are restored, so nothing an earlier owner writes afterwards can be missed."""
        if self.transactional_prefix is None:
            return
        for p in sorted(set(partitions) - set(self._owners)):
            producer = AIOKafkaProducer(**self._options(), transactional_id=f"{self.transactional_prefix}-{p}")
            self._owners[p] = await started(producer)

    async def release(self, partitions: Iterable[int]) -> None:
        """These table partitions were revoked: what is still waiting for them (a flush that failed) is
        not this worker's to write any more, and their producers go (after a flush under way)."""
        gone = set(partitions)
        async with self._lock:
            for key in [k for k in self._tables if k[1] in gone]:
                self._pending.pop(key, None)
                self._tables.pop(key, None)
                self._staged.pop(key, None)
            for p in gone:
                producer = self._owners.pop(p, None)
                if producer is not None:
                    await producer.stop()

    def append(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        self.records_for(table, partition).append((key, value, None))

    def records_for(self, table: Any, partition: int) -> list[tuple[bytes | None, bytes | None, int | None]]:
        """The changelog records waiting for the next flush of a table's partition, to append
        (key, value, None) to, in the table's order; valid until the next await."""
        topic = table.changelog_topic.get_topic_name()
        self._tables[(topic, partition)] = table
        return self._batch(topic, partition)

    def stage(self, changelog: str, partition: int) -> Staged:
        """The rows of a table partition waiting for the next flush, to update; valid until the next
        await."""
        rows = self._staged.get((changelog, partition))
        if rows is None:
            rows = self._staged[(changelog, partition)] = {}
        return rows

    def staged_row(self, changelog: str, partition: int, key: bytes) -> tuple[bool, bytes | None]:
        """(True, the row) if a row of this key waits for a flush (None: deleted), else (False, None)."""
        for layer in (self._staged, self._flushing):
            rows = layer.get((changelog, partition))
            if rows is not None and key in rows:
                return True, rows[key]
        return False, None

    def staged_view(self, changelog: str, partition: int) -> Staged:
        """Every row of a table partition waiting for a flush, the latest of each key."""
        flushing = self._flushing.get((changelog, partition))
        staged = self._staged.get((changelog, partition))
        if not flushing:
            return staged or {}
        return {**flushing, **(staged or {})}

    def forward(self, topic: str, partition: int, key: bytes | None, value: bytes | None, timestamp_ms: int) -> None:
        """A record for another partition (real topic name), sent with its original timestamp."""
        self._batch(topic, partition).append((key, value, timestamp_ms))

    def _batch(self, topic: str, partition: int) -> list[tuple[bytes | None, bytes | None, int | None]]:
        records = self._pending.get((topic, partition))
        if records is None:
            records = self._pending[(topic, partition)] = []
        return records

    async def flush(self) -> None:
        """Every record appended before this call is on the broker, and every row staged before it is
        in RocksDB, when it returns."""
        async with self._lock:
            if not self._pending:
                return
            pending, tables = self._pending, self._tables
            self._pending, self._tables = {}, {}
            self._flushing, self._staged = self._staged, {}
            try:
                await self._send(pending, tables, self._flushing)
            except BaseException:
                # not known to be written: kept, ahead of what was appended since, for the next flush
                # (records the broker did take are sent again: a changelog keeps the latest, in order)
                for tp, records in self._pending.items():
                    pending.setdefault(tp, []).extend(records)
                self._pending, self._tables = pending, {**tables, **self._tables}
                for tp, rows in self._staged.items():
                    self._flushing.setdefault(tp, {}).update(rows)
                self._staged = self._flushing
                raise
            finally:
                self._flushing = {}

    async def _send(
        self,
        pending: dict[tuple[str, int], list[tuple[bytes | None, bytes | None, int | None]]],
        tables: dict[tuple[str, int], Any],
        staged: dict[tuple[str, int], Staged],
    ) -> None:
        """Send the records (each table partition's in a transaction of its own producer), wait for the
        broker, then write the staged rows and the changelogs' offsets into RocksDB."""
        owned: dict[int, list[tuple[str, int, list[Any]]]] = {}
        plain: list[tuple[str, int, list[Any]]] = []
        for (topic, partition), records in pending.items():
            if (topic, partition) in tables and self.transactional_prefix is not None:
                owned.setdefault(partition, []).append((topic, partition, records))
            else:
                plain.append((topic, partition, records))
        # every send ends before the flush does, a failed one or not: the next flush must not begin a
        # transaction while a producer still commits this one's
        sent = await asyncio.gather(
            self._send_plain(plain), *(self._send_owned(p, items) for p, items in owned.items()), return_exceptions=True
        )
        failed = [e for e in sent if isinstance(e, BaseException)]
        if failed:
            raise failed[0]
        last: dict[tuple[str, int], int] = {}
        for done in sent:
            assert not isinstance(done, BaseException)
            for (topic, partition), offset in done.items():
                last[(topic, partition)] = max(offset, last.get((topic, partition), -1))
        for (topic, partition), offset in last.items():
            table = tables.get((topic, partition))
            if table is not None:
                compat.write_rows_and_offset(table, partition, staged.get((topic, partition), {}), offset)

    async def _send_plain(self, items: list[tuple[str, int, list[Any]]]) -> dict[tuple[str, int], int]:
        if not items:
            return {}
        producer = await self._ensure_producer()
        return await _delivered(producer, items)

    async def _send_owned(self, partition: int, items: list[tuple[str, int, list[Any]]]) -> dict[tuple[str, int], int]:
        producer = self._owners.get(partition)
        if producer is None:
            # not this worker's partition (revoked while a timer wrote to it): taking it over here would
            # fence its owner and write an older row over its own
            log.warning(
                "dropped %d changelog record(s) of table partition %d, which this worker does not own",
                sum(len(records) for _, _, records in items),
                partition,
            )
            return {}
        try:
            async with producer.transaction():
                return await _delivered(producer, items)
        except (ProducerFenced, InvalidProducerEpoch) as exc:
            self.give_up(
                f"writing the changelog of table partition {partition} (this worker was frozen or cut off for "
                "longer than its session timeout)",
                exc,
            )


async def _delivered(producer: AIOKafkaProducer, items: list[tuple[str, int, list[Any]]]) -> dict[tuple[str, int], int]:
    """Send these records and wait for the broker: the last offset written per topic partition."""
    sent = []
    for topic, partition, records in items:
        for future, count in await send_batches(producer, topic, partition, records):
            sent.append((future, topic, partition, count))
    last: dict[tuple[str, int], int] = {}
    for future, topic, partition, count in sent:
        metadata = await future
        end = metadata.offset + count - 1
        last[(topic, partition)] = max(end, last.get((topic, partition), -1))
    return last
