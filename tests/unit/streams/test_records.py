"""The guard every per-record agent runs in: bad records are dead-lettered, broker trouble is retried
and then ends the worker without acknowledging the record."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError
from hypothesis import given
from hypothesis import strategies as st

from booster.errors import DecodeError
from booster.streams.metrics import Metrics
from booster.streams.records import DeadLetters, Guard, Incoming, is_broker_trouble
from booster.streams.store import ChangelogSink
from tests.unit.streams.fakes import Flushes, GaveUp, SentRecords, incoming, retry

RECORD = incoming("contact.deleted", {"contact_id": "k1", "account_id": "a", "deleted_at": 1_767_225_600_000}, offset=7)


class Clocks:
    def observe(self, incoming: Incoming, now: int) -> None:
        pass


class World:
    def __init__(self) -> None:
        self.dead, self.sink, self.metrics = SentRecords("booster.dead-letter"), Flushes(), Metrics()
        self.retry, self.sleeps = retry(seconds=10.0)
        self.guard = Guard(
            self.sink,
            DeadLetters(self.dead, self.metrics, self.retry),
            self.metrics,
            Clocks(),
            self.retry,
        )
        self.calls = 0

    def run(self, failures: list[BaseException]) -> None:
        async def handler(incoming: Incoming) -> None:
            self.calls += 1
            if failures:
                raise failures.pop(0)

        asyncio.run(self.guard(RECORD, handler))


def test_broker_trouble_is_retried_then_the_record_counts_and_nothing_is_dead_lettered() -> None:
    w = World()
    w.run([KafkaConnectionError(), NodeNotReadyError(), TimeoutError()])
    assert w.calls == 4 and w.sleeps.slept == [0.5, 1.0, 2.0]
    assert w.dead.sent == [] and w.sink.count == 1
    assert w.metrics.get("booster_events_total", topic="contact.deleted") == 1


def test_a_flush_the_broker_does_not_take_is_retried_alone() -> None:
    w = World()
    w.sink.failures = 2
    w.run([])
    assert w.calls == 1 and w.sink.count == 1 and w.dead.sent == []


def test_records_of_a_failed_flush_are_sent_again_by_the_next_ahead_of_newer_ones() -> None:
    sink = ChangelogSink({"bootstrap_servers": "127.0.0.1:1"})
    sent: list[Any] = []

    async def broker_away(pending: Any, tables: Any, staged: Any) -> None:
        raise KafkaTimeoutError()

    async def broker_back(pending: Any, tables: Any, staged: Any) -> None:
        sent.extend(r for records in pending.values() for r in records)

    sink.forward("t", 0, b"k", b"v1", 1)
    sink._send = broker_away  # type: ignore[method-assign]
    with pytest.raises(KafkaTimeoutError):
        asyncio.run(sink.flush())
    sink.forward("t", 0, b"k", b"v2", 2)
    sink._send = broker_back  # type: ignore[method-assign]
    asyncio.run(sink.flush())
    assert sent == [(b"k", b"v1", 1), (b"k", b"v2", 2)]


def test_broker_trouble_that_outlasts_the_retries_ends_the_worker_without_counting_the_record() -> None:
    w = World()
    with pytest.raises(GaveUp):
        w.run([KafkaConnectionError()] * 100)
    assert w.dead.sent == []  # and the guard raised: the record does not count as processed
    assert sum(w.sleeps.slept) <= 10.0


def test_a_bad_record_is_dead_lettered_at_once_and_counts() -> None:
    w = World()
    w.run([DecodeError("not Avro", kind="undecodable")])
    assert w.calls == 1 and w.sleeps.slept == []
    assert [d["kind"] for d in w.dead.decoded()] == ["undecodable"]  # and the guard returned: it counts


def test_only_the_infrastructures_failures_are_broker_trouble() -> None:
    assert is_broker_trouble(KafkaConnectionError()) and is_broker_trouble(ConnectionResetError())
    assert is_broker_trouble(TimeoutError()) and is_broker_trouble(TimeoutError())
    assert not is_broker_trouble(DecodeError("x", kind="corrupt")) and not is_broker_trouble(KeyError("x"))


def test_a_write_that_never_answers_ends_the_worker_once_the_retries_budget_is_spent() -> None:
    """An idempotent producer waits for as long as the broker is away instead of failing."""
    give_up, _ = retry(seconds=0.2)

    async def hangs() -> None:
        await asyncio.sleep(3600)

    started = time.monotonic()
    with pytest.raises(GaveUp):
        asyncio.run(give_up.bounded("flushing", hangs))
    assert time.monotonic() - started < 5


def test_a_write_whose_cancellation_waits_for_the_broker_still_ends_the_worker() -> None:
    """A transaction cancelled half-way aborts itself, and aiokafka's abort waits (shielded) for the
    broker as long as it is away: the worker gives up without waiting for the cancellation to end."""
    give_up, _ = retry(seconds=0.2)
    broker_back = asyncio.Event()

    async def aborts_on_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.shield(broker_back.wait())  # as TransactionContext.__aexit__ -> abort_transaction
            raise

    async def run() -> None:
        try:
            await give_up.bounded("writing the changelog", aborts_on_cancel)
        finally:
            broker_back.set()  # lets the abandoned write end, so the loop closes cleanly

    started = time.monotonic()
    with pytest.raises(GaveUp):
        asyncio.run(asyncio.wait_for(run(), 30))
    assert time.monotonic() - started < 5


def test_a_handler_may_run_longer_than_the_retries_budget() -> None:
    """A fan-out of millions of commands runs inside a handler: only the writes in it are bounded."""
    patient, _ = retry(seconds=0.05)

    async def long_but_working() -> str:
        await asyncio.sleep(0.3)
        return "done"

    assert asyncio.run(patient("fanning out", long_but_working)) == "done"


@given(st.binary(max_size=80))
def test_murmur2_is_kafkas(data: bytes) -> None:
    """The faster murmur2 gives what aiokafka's (and Java's) default partitioner computes."""
    from aiokafka.partitioner import murmur2 as aiokafka_murmur2

    from booster.streams.records import murmur2

    assert murmur2(data) == aiokafka_murmur2(data)
