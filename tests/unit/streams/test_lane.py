"""The batch lane: whole fetches to the ingest agent in order, offsets held until written, a revoke that
drops what is queued for its partitions and waits for the batch in flight, and commits through the
consumer's ledger (transaction markers and aborted records are offsets the fetches skipped)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import pytest

from booster.streams import compat
from booster.streams.lane import Batch, Lane
from booster.streams.offsets import OffsetLedger


class TP(NamedTuple):
    topic: str
    partition: int


class Record(NamedTuple):
    offset: int


A, B, OTHER = TP("message.sent", 0), TP("message.sent", 1), TP("booster.control", 0)


def fetch(ledger: OffsetLedger, tp: TP, offsets: list[int]) -> dict[Any, list[Record]]:
    """What the consumer does before it puts a fetch on the lane."""
    ledger.fetched(tp, offsets)
    return {tp: [Record(o) for o in offsets]}


def lane_with_ledger(*tps: TP, max_queued: int = 4) -> tuple[Lane, OffsetLedger]:
    lane, ledger = Lane({tp.topic for tp in tps}, max_queued=max_queued), OffsetLedger()
    lane.attach(ledger)
    for tp in tps:
        ledger.seeked(tp, 0)
    return lane, ledger


async def take(batches: AsyncIterator[Batch]) -> Batch:
    return await asyncio.wait_for(batches.__anext__(), 2.0)


def offsets(batch: Batch) -> dict[Any, list[int]]:
    return {tp: [r.offset for r in records] for tp, records in batch.records.items()}


def test_queued_fetches_reach_the_agent_merged_in_order_and_commit_once_written() -> None:
    async def run() -> None:
        lane, ledger = lane_with_ledger(A, B)
        await lane.put(fetch(ledger, A, [0, 1, 2]))
        await lane.put({**fetch(ledger, A, [3, 4]), **fetch(ledger, B, [0])})
        batches = lane.batches()
        batch = await take(batches)
        assert offsets(batch) == {A: [0, 1, 2, 3, 4], B: [0]}
        assert ledger.commit_point(A, 0) is None  # held: not written yet
        lane.done(batch)
        assert (ledger.commit_point(A, 0), ledger.commit_point(B, 0)) == (5, 1)

    asyncio.run(run())


def test_a_revoke_drops_what_is_queued_and_waits_for_the_batch_in_flight() -> None:
    async def run() -> None:
        lane, ledger = lane_with_ledger(A, B)
        await lane.put(fetch(ledger, A, [0, 1]))
        batches = lane.batches()
        in_flight = await take(batches)
        await lane.put({**fetch(ledger, A, [2, 3]), **fetch(ledger, B, [0, 1])})
        revoking = asyncio.ensure_future(lane.revoke({A, OTHER}))
        await asyncio.sleep(0.05)
        assert not revoking.done()  # A's batch is still being written: its changelog must land first
        lane.done(in_flight)
        await asyncio.wait_for(revoking, 2.0)
        ledger.forget({A})  # what the consumer does next
        assert offsets(await take(batches)) == {B: [0, 1]}  # A's queued records were dropped

    asyncio.run(run())


def test_a_revoke_of_partitions_the_batch_in_flight_does_not_hold_does_not_wait() -> None:
    async def run() -> None:
        lane, ledger = lane_with_ledger(A, B)
        await lane.put(fetch(ledger, A, [0]))
        in_flight = await take(lane.batches())
        await asyncio.wait_for(lane.revoke({B}), 1.0)
        lane.done(in_flight)

    asyncio.run(run())


def test_a_batch_the_agent_abandons_is_never_committed() -> None:
    async def run() -> None:
        lane, ledger = lane_with_ledger(A)
        await lane.put(fetch(ledger, A, [0, 1, 2]))
        await take(lane.batches())
        lane.abandon()  # cancelled half-way: a stop, a crash
        assert ledger.commit_point(A, 0) is None
        await asyncio.wait_for(lane.revoke({A}), 1.0)  # and a revoke does not wait for it

    asyncio.run(run())


def test_a_full_lane_holds_the_fetch_loop_back() -> None:
    async def run() -> None:
        lane, ledger = lane_with_ledger(A, max_queued=1)
        await lane.put(fetch(ledger, A, [0]))
        blocked = asyncio.ensure_future(lane.put(fetch(ledger, A, [1])))
        await asyncio.sleep(0.05)
        assert not blocked.done()
        batches = lane.batches()
        first = await take(batches)
        await asyncio.wait_for(blocked, 1.0)
        lane.done(first)
        lane.done(await take(batches))
        assert ledger.commit_point(A, 0) == 2

    asyncio.run(run())


@pytest.mark.parametrize("gaps", [[(3, 4)], [(2, 5), (7, 8)]])
def test_transaction_markers_and_aborted_records_are_committed_past(gaps: list[tuple[int, int]]) -> None:
    """Read-committed fetches skip markers and aborted records: the offsets between two returned
    records hold none, and the commit goes past them once the records around them are written."""

    async def run() -> None:
        lane, ledger = lane_with_ledger(A)
        skipped = {o for begin, end in gaps for o in range(begin, end)}
        returned = [o for o in range(10) if o not in skipped]
        await lane.put(fetch(ledger, A, returned))
        batch = await take(lane.batches())
        assert offsets(batch) == {A: returned}
        lane.done(batch)
        assert ledger.commit_point(A, 0) == 10

    asyncio.run(run())


def test_faust_fetches_through_the_method_the_lane_takes_its_records_from() -> None:
    """The lane removes its partitions' records from what `_getmany` returns: Faust's fetch loop must
    get every record through it, and the consumer must still revoke through the override."""
    from faust.transport.consumer import Consumer

    assert "records = await self._getmany(" in inspect.getsource(Consumer._wait_next_records)
    assert "await self._wait_next_records(timeout)" in inspect.getsource(Consumer.getmany)
    source = inspect.getsource(compat.read_committed_consumer)
    assert "self.lane.put(diverted)" in source and "self.lane.revoke(revoked)" in source


def test_the_consumer_gives_the_lane_its_partitions_and_faust_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    from faust.transport.drivers.aiokafka import Consumer as FaustConsumer

    async def fetched(self: Any, active_partitions: Any, timeout: float) -> dict[Any, list[Record]]:
        return {A: [Record(7), Record(8)], OTHER: [Record(3)]}

    class Topics:
        @staticmethod
        def acks_enabled_for(topic: str) -> bool:
            return True

    class App:
        topics = Topics()

    monkeypatch.setattr(FaustConsumer, "_getmany", fetched)
    consumer: Any = object.__new__(compat.read_committed_consumer())
    consumer.app, consumer.ledger = App(), OffsetLedger()
    consumer.lane = Lane({A.topic})
    consumer.lane.attach(consumer.ledger)
    consumer.ledger.seeked(A, 7)

    async def run() -> None:
        assert await consumer._getmany(None, 1.0) == {OTHER: [Record(3)]}  # Faust never sees A's records
        batch = await take(consumer.lane.batches())
        assert offsets(batch) == {A: [7, 8]}
        assert consumer.ledger.commit_point(A, 7) is None
        consumer.lane.done(batch)
        assert consumer.ledger.commit_point(A, 7) == 9

    asyncio.run(run())


class Watched:
    """What `fetch_loop_stall` reads of Faust's consumer."""

    def __init__(self, done: float | None, asked: float | None, assigned: bool = True, flow: bool = True) -> None:
        self.fetch_done_at, self.fetch_asked_at = done, asked
        self.flow_active, self._assigned = flow, assigned
        self.lane = Lane({A.topic})

    def assignment(self) -> set[Any]:
        return {A} if self._assigned else set()


def test_a_fetch_loop_that_stands_still_while_partitions_are_assigned_is_said() -> None:
    stall = compat.fetch_loop_stall
    assert stall(Watched(done=100.0, asked=90.0), now=140.0, after=30.0) == (
        "no fetch finished for 40 s, not fetching; lane: 0 fetch(es) queued, a batch not in flight, "
        "the fetch loop not waiting"
    )
    assert "inside a fetch" in (stall(Watched(done=100.0, asked=101.0), now=140.0, after=30.0) or "")
    assert stall(Watched(done=100.0, asked=90.0), now=120.0, after=30.0) is None  # not for long
    assert stall(Watched(done=100.0, asked=90.0, assigned=False), now=140.0, after=30.0) is None
    assert stall(Watched(done=100.0, asked=90.0, flow=False), now=140.0, after=30.0) is None  # rebalancing
    assert stall(Watched(done=None, asked=None), now=140.0, after=30.0) is None  # not started yet
