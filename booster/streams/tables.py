"""Reading one partition of a Faust table directly.

Faust has no API to walk one partition of a table from a key prefix. The RocksDB store keeps one
database per partition (a private attribute); this is the one place that relies on it.
"""

from __future__ import annotations

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
    if hasattr(store, "_db_for_partition"):
        dbs = getattr(store, "_dbs", {})
        return dbs.get(partition) if partition in dbs else store._db_for_partition(partition)
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


class PartitionWriter:
    """Writes to one partition of a raw table without Faust's per-key bookkeeping.

    The value goes to the partition's RocksDB and to the changelog through `Table.send_changelog`,
    exactly what a `table[key] = value` inside stream iteration does, minus Faust's in-memory index of
    every key written (which grows with the number of recipients) and the per-event context lookup.
    `None` deletes (a tombstone in the changelog).
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, partition: int, key: bytes) -> bytes | None:
        return partition_get(self.table, partition, key)

    def write(self, partition: int, items: dict[bytes, bytes | None]) -> None:
        db = _partition_db(self.table, partition)
        send = self.table.send_changelog
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
            send(partition, key, value)
