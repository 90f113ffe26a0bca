"""The partition store protocol, the same on the in-memory table and on a real Faust RocksDB table
(no broker needed: the changelog sink's sends are answered here, as the broker would)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest

from booster.streams.store import ChangelogSink, FaustTable, MemoryTable, PartitionStore, Table


class Delivered(ChangelogSink):
    """The sink with a broker that takes every record: offsets counted per topic partition."""

    def __init__(self) -> None:
        super().__init__({"bootstrap_servers": "127.0.0.1:1"})
        self.sent: list[tuple[str, int, bytes | None, bytes | None]] = []
        self.ends: dict[tuple[str, int], int] = {}
        self.fail = False

    async def _send_plain(self, items: list[tuple[str, int, list[Any]]]) -> dict[tuple[str, int], int]:
        if self.fail:
            raise ConnectionError("the broker is away")
        last = {}
        for topic, partition, records in items:
            for key, value, _ in records:
                self.sent.append((topic, partition, key, value))
                end = self.ends[(topic, partition)] = self.ends.get((topic, partition), -1) + 1
                last[(topic, partition)] = end
        return last


def flush(table: Table) -> None:
    if isinstance(table, FaustTable):
        asyncio.run(table.sink.flush())


@pytest.fixture(params=["memory", "rocksdb"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Table]:
    if request.param == "memory":
        yield MemoryTable("t")
        return
    app = faust.App("store-test", store="rocksdb://", datadir=str(tmp_path), broker="kafka://127.0.0.1:1")
    faust_table = app.Table("t", key_type=bytes, value_type=bytes, partitions=2)
    yield FaustTable(faust_table, Delivered())


def keys(store: PartitionStore, prefix: bytes = b"", after: bytes | None = None) -> list[bytes]:
    return [k for k, _ in store.items(prefix, after)]


@pytest.mark.parametrize("flushed", [False, True])
def test_prefix_walks_in_key_order_resume_after_a_key_and_delete(table: Table, flushed: bool) -> None:
    """The same whether the rows wait for their changelog or are in RocksDB."""
    p = table.partition(1)
    p.write({b"b\x1f2": b"2", b"b\x1f1": b"1", b"a\x1f1": b"x", b"c": b"y"})
    table.partition(0).write({b"b\x1f0": b"other partition"})
    if flushed:
        flush(table)
    assert keys(p, b"b\x1f") == [b"b\x1f1", b"b\x1f2"]
    assert keys(p, b"b\x1f", after=b"b\x1f1") == [b"b\x1f2"]
    assert keys(p, b"b\x1f", after=b"a") == [b"b\x1f1", b"b\x1f2"]
    assert keys(p, b"z") == []
    assert p.get(b"c") == b"y" and p.get(b"nothing") is None
    assert p.get_many([b"c", b"nothing", b"b\x1f2", b"b\x1f0"]) == [b"y", None, b"2", None]
    assert p.get_many([]) == []
    p.write({b"b\x1f1": None, b"b\x1f3": b"3"})  # waiting over what is stored: a delete and a new row
    assert keys(p, b"b\x1f") == [b"b\x1f2", b"b\x1f3"] and p.get(b"b\x1f1") is None
    flush(table)
    assert keys(p, b"b\x1f") == [b"b\x1f2", b"b\x1f3"] and p.get(b"b\x1f1") is None
    assert table.estimated_keys([1]) >= 3


def test_rows_reach_rocksdb_only_with_their_changelog_and_its_offset(tmp_path: Path) -> None:
    """A worker killed between its RocksDB write and its changelog flush left a row the changelog did
    not have; a fact processed again then changed nothing, its row never reached the changelog, and the
    next owner of the partition lost it. Rows now wait for their changelog records to be acknowledged."""
    app = faust.App("store-test", store="rocksdb://", datadir=str(tmp_path), broker="kafka://127.0.0.1:1")
    faust_table = app.Table("t", key_type=bytes, value_type=bytes, partitions=2)
    sink = Delivered()
    table = FaustTable(faust_table, sink)
    store: Any = faust_table.data
    tp = faust.types.TP("store-test-t-changelog", 0)
    table.partition(0).write({b"k": b"v", b"gone": None})
    assert table.partition(0).get(b"k") == b"v"  # read back while it waits
    assert store.persisted_offset(tp) is None and store._db_for_partition(0).get(b"k") is None  # not in RocksDB
    sink.fail = True
    with pytest.raises(ConnectionError):
        asyncio.run(sink.flush())
    assert store._db_for_partition(0).get(b"k") is None and table.partition(0).get(b"k") == b"v"  # still waiting
    sink.fail = False
    asyncio.run(sink.flush())
    assert sink.sent == [("store-test-t-changelog", 0, b"k", b"v"), ("store-test-t-changelog", 0, b"gone", None)]
    assert store._db_for_partition(0).get(b"k") == b"v" and store.persisted_offset(tp) == 1
    assert [k for k, _ in table.partition(0).items()] == [b"k"]  # Faust's offset key is skipped


def test_a_revoked_partition_s_waiting_rows_are_dropped_not_written(tmp_path: Path) -> None:
    app = faust.App("store-test", store="rocksdb://", datadir=str(tmp_path), broker="kafka://127.0.0.1:1")
    faust_table = app.Table("t", key_type=bytes, value_type=bytes, partitions=2)
    sink = Delivered()
    table = FaustTable(faust_table, sink)
    table.partition(0).write({b"mine": b"1"})
    table.partition(1).write({b"gone": b"2"})
    sink.forward("t.booster.rerouted", 1, b"k", b"fact", 7)  # a forward is a fact: it still goes
    asyncio.run(sink.release([1]))
    asyncio.run(sink.flush())
    assert sorted((t, p, k) for t, p, k, _ in sink.sent) == [
        ("store-test-t-changelog", 0, b"mine"),
        ("t.booster.rerouted", 1, b"k"),
    ]
    assert table.partition(1).get(b"gone") is None


def test_rows_of_a_partition_this_worker_does_not_own_are_never_written(tmp_path: Path) -> None:
    """Written by a timer after its partition was revoked: writing them would mean taking the partition
    over, fencing its new owner and writing an older row over its own."""
    app = faust.App("store-test", store="rocksdb://", datadir=str(tmp_path), broker="kafka://127.0.0.1:1")
    faust_table = app.Table("t", key_type=bytes, value_type=bytes, partitions=2)
    sink = Delivered()
    sink.transactional_prefix = "store-test-changelog"  # fenced writers; this worker owns none
    table = FaustTable(faust_table, sink)
    table.partition(1).write({b"late": b"1"})
    asyncio.run(sink.flush())
    store: Any = faust_table.data
    assert sink.sent == [] and store._db_for_partition(1).get(b"late") is None
