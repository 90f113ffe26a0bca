"""The bulk restore's choice of partitions and its writes into a real RocksDB database (no broker)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, NamedTuple

from rocksdict import Options, Rdict

from booster.streams.restore import WORTH_IT, BulkRestore, Wanted, wanted

OFFSET_KEY = b"__faust\x00offset__"


def test_every_partition_with_records_left_is_read_from_after_its_applied_offset() -> None:
    found = wanted({"a": -1, "b": 499, "c": 700, "d": None}, {"a": 799, "b": 999, "c": 700, "d": -1})
    assert found == {"a": Wanted(0, 799), "b": Wanted(500, 999)}  # c is complete, d is empty
    assert sum(w.records for w in found.values()) == 1_300


def test_a_few_records_left_are_left_to_faust() -> None:
    read: list[dict[Any, Wanted]] = []

    class Reading(BulkRestore):
        async def _read(self, todo: dict[Any, Wanted], deadline: float) -> tuple[dict[Any, int], int]:
            read.append(todo)
            return {tp: w.last for tp, w in todo.items()}, sum(w.records for w in todo.values())

    restore = Reading({}, lambda topic, partition: None)
    assert asyncio.run(restore({"a": -1}, {"a": WORTH_IT - 2})) == {} and read == []
    assert asyncio.run(restore({"a": -1}, {"a": WORTH_IT - 1})) == {"a": WORTH_IT - 1}
    assert read == [{"a": Wanted(0, WORTH_IT - 1)}]
    assert wanted({"a": 5}, {"a": None}) == {}


class Record(NamedTuple):
    offset: int
    key: bytes
    value: bytes | None


class TP(NamedTuple):
    topic: str
    partition: int


def open_db(path: Path) -> Any:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    return Rdict(str(path), options)


def test_a_fetch_becomes_rows_and_deletes_with_its_last_offset(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    db.put(b"gone", b"old")
    restore = BulkRestore({}, lambda topic, partition: (db, OFFSET_KEY) if topic == "t" else None)
    batch = [Record(10, b"k1", b"v1"), Record(11, b"gone", None), Record(12, b"k1", b"v2"), Record(13, b"k2", b"v")]
    assert restore._write(TP("t", 0), batch) == 4
    assert db.get(b"k1") == b"v2"  # the latest record of a key wins, as in the changelog
    assert db.get(b"k2") == b"v"
    assert db.get(b"gone") is None
    assert int(db.get(OFFSET_KEY)) == 13  # Faust's persisted offset: its recovery resumes there
    restore._mark(TP("t", 0), 15)  # only transaction markers after 13
    assert int(db.get(OFFSET_KEY)) == 15
    assert restore._write(TP("memory", 0), batch) == 0  # the memory store keeps nothing to restore into
    db.close()


def test_an_offset_past_faust_s_highwater_is_never_handed_back() -> None:
    """Records written after Faust looked (read by the restore) must not move Faust's offset past its
    highwater: its consistency check would stop the recovery."""

    class Reading(BulkRestore):
        async def _read(self, todo: dict[Any, Wanted], deadline: float) -> tuple[dict[Any, int], int]:
            return {"a": 2_500, "b": 400}, 2_900

    restored: list[Any] = []
    restore = Reading({}, lambda topic, partition: None, on_restored=restored.append)
    reached = asyncio.run(restore({"a": -1, "b": -1}, {"a": 1_999, "b": 999}))
    assert reached == {"a": 1_999, "b": 400}
    assert restored[0].records == 2_900 and restored[0].partitions == 2
