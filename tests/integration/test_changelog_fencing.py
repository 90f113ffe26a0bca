"""A table partition's changelog has one writer: the worker that takes the partition over fences the one
that had it, so a worker frozen past its session timeout (a zombie, which still believes it owns the
partition) can never write an older row over the new owner's (against the real broker)."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any, NoReturn

import faust
import pytest

from booster.broker.local import LocalKafka
from booster.ops import admin
from booster.streams.connect import client_options
from booster.streams.store import ChangelogSink, FaustTable
from tests.conftest import fresh_settings


class Fenced(Exception):
    pass


def fenced(what: str, exc: BaseException) -> NoReturn:
    raise Fenced(what) from exc


def test_a_zombie_s_write_is_refused_once_the_new_owner_has_taken_the_partition(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    settings = fresh_settings(partitions=2)
    asyncio.run(admin.create(settings))
    changelog = settings.changelog_topic("contacts")

    def worker(name: str) -> tuple[ChangelogSink, FaustTable]:
        app = faust.App(settings.group_id, store="rocksdb://", datadir=str(tmp_path / name), broker="kafka://x")
        faust_table = app.Table("contacts", key_type=bytes, value_type=bytes, partitions=2)
        sink = ChangelogSink(
            client_options(settings), transactional_prefix=f"{settings.group_id}-changelog", give_up=fenced
        )
        return sink, FaustTable(faust_table, sink)

    async def scenario() -> list[tuple[bytes | None, bytes | None]]:
        (old_sink, old), (new_sink, new) = worker("old"), worker("new")
        try:
            await old_sink.own([0])
            old.partition(0).write({b"k": b"v1"})
            await old_sink.flush()
            old.partition(0).write({b"k": b"v1, older"})  # staged when it froze
            await new_sink.own([0])  # the group moved partition 0: its new owner takes it over
            new.partition(0).write({b"k": b"v2"})
            await new_sink.flush()
            with pytest.raises(Fenced):  # the zombie resumes and flushes
                await old_sink.flush()
            return await _changelog(settings, changelog)
        finally:
            await old_sink.stop()
            await new_sink.stop()

    assert asyncio.run(scenario()) == [(b"k", b"v1"), (b"k", b"v2")]
    # the Faust apps and clients made here are finalized now: a finalizer that runs later, inside
    # pytest's own import of a module, trips CPython 3.11's "AST constructor recursion depth mismatch"
    gc.collect()


async def _changelog(settings: Any, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**client_options(settings), isolation_level="read_committed")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        out = []
        while await consumer.position(tp) < end:
            for msg in (await consumer.getmany(timeout_ms=500)).get(tp, []):
                out.append((msg.key, msg.value))
        return out
    finally:
        await consumer.stop()
