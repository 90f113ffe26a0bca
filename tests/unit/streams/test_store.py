"""The partition store protocol, the same on the in-memory table and on a real Faust RocksDB table
(no broker needed: the rows go to RocksDB and to a changelog sink that only records them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest

from booster.streams import compat
from booster.streams.store import FaustTable, MemoryTable, PartitionStore, Table


class RecordingSink:
    def __init__(self) -> None:
        self.batches: list[tuple[str, int, list[tuple[bytes | None, bytes | None, int | None]]]] = []

    def records_for(self, table: Any, partition: int) -> list[tuple[bytes | None, bytes | None, int | None]]:
        batch: list[tuple[bytes | None, bytes | None, int | None]] = []
        self.batches.append((table.changelog_topic.get_topic_name(), partition, batch))
        return batch

    @property
    def records(self) -> list[tuple[str, int, bytes | None, bytes | None]]:
        return [(topic, p, key, value) for topic, p, batch in self.batches for key, value, _ in batch]


@pytest.fixture(params=["memory", "rocksdb"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Table]:
    if request.param == "memory":
        yield MemoryTable("t")
        return
    app = faust.App("store-test", store="rocksdb://", datadir=str(tmp_path), broker="kafka://127.0.0.1:1")
    faust_table = app.Table("t", key_type=bytes, value_type=bytes, partitions=2)
    yield FaustTable(faust_table, RecordingSink())  # type: ignore[arg-type]


def keys(store: PartitionStore, prefix: bytes = b"", after: bytes | None = None) -> list[bytes]:
    return [k for k, _ in store.items(prefix, after)]


def test_prefix_walks_in_key_order_resume_after_a_key_and_delete(table: Table) -> None:
    p = table.partition(1)
    p.write({b"b\x1f2": b"2", b"b\x1f1": b"1", b"a\x1f1": b"x", b"c": b"y"})
    table.partition(0).write({b"b\x1f0": b"other partition"})
    assert keys(p, b"b\x1f") == [b"b\x1f1", b"b\x1f2"]
    assert keys(p, b"b\x1f", after=b"b\x1f1") == [b"b\x1f2"]
    assert keys(p, b"b\x1f", after=b"a") == [b"b\x1f1", b"b\x1f2"]
    assert keys(p, b"z") == []
    assert p.get(b"c") == b"y" and p.get(b"nothing") is None
    assert p.get_many([b"c", b"nothing", b"b\x1f2", b"b\x1f0"]) == [b"y", None, b"2", None]
    assert p.get_many([]) == []
    p.write({b"b\x1f1": None})
    assert keys(p, b"b\x1f") == [b"b\x1f2"] and p.get(b"b\x1f1") is None
    assert table.estimated_keys([1]) >= 3


def test_rocksdb_rows_reach_the_changelog_and_fausts_offset_keys_are_skipped(tmp_path: Path) -> None:
    app = faust.App("store-test", store="rocksdb://", datadir=str(tmp_path), broker="kafka://127.0.0.1:1")
    faust_table = app.Table("t", key_type=bytes, value_type=bytes, partitions=2)
    sink = RecordingSink()
    table = FaustTable(faust_table, sink)  # type: ignore[arg-type]
    table.partition(0).write({b"k": b"v", b"gone": None})
    compat.set_persisted_offset(faust_table, "store-test-t-changelog", 0, 41)
    assert sink.records == [("store-test-t-changelog", 0, b"k", b"v"), ("store-test-t-changelog", 0, b"gone", None)]
    assert [k for k, _ in table.partition(0).items()] == [b"k"]
    store: Any = faust_table.data
    assert store.persisted_offset(faust.types.TP("store-test-t-changelog", 0)) == 41
