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


async def put(lane: Lane, records: dict[Any, list[Record]]) -> None:
    """A fetch issued now, handed to the lane."""
    await lane.put(records, {tp: lane.epoch(tp) for tp in records})


async def take(batches: AsyncIterator[Batch]) -> Batch:
    return await asyncio.wait_for(batches.__anext__(), 2.0)


def offsets(batch: Batch) -> dict[Any, list[int]]:
    return {tp: [r.offset for r in records] for tp, records in batch.records.items()}


def test_queued_fetches_reach_the_agent_merged_in_order_and_commit_once_written() -> None:
    async def run() -> None:
        lane, ledger = lane_with_ledger(A, B)
        await put(lane, fetch(ledger, A, [0, 1, 2]))
        await put(lane, {**fetch(ledger, A, [3, 4]), **fetch(ledger, B, [0])})
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
        await put(lane, fetch(ledger, A, [0, 1]))
        batches = lane.batches()
        in_flight = await take(batches)
        await put(lane, {**fetch(ledger, A, [2, 3]), **fetch(ledger, B, [0, 1])})
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
        await put(lane, fetch(ledger, A, [0]))
        in_flight = await take(lane.batches())
        await asyncio.wait_for(lane.revoke({B}), 1.0)
        lane.done(in_flight)

    asyncio.run(run())


def test_a_batch_the_agent_abandons_is_never_committed() -> None:
    async def run() -> None:
        lane, ledger = lane_with_ledger(A)
        await put(lane, fetch(ledger, A, [0, 1, 2]))
        await take(lane.batches())
        lane.abandon()  # cancelled half-way: a stop, a crash
        assert ledger.commit_point(A, 0) is None
        await asyncio.wait_for(lane.revoke({A}), 1.0)  # and a revoke does not wait for it

    asyncio.run(run())


def test_a_full_lane_holds_the_fetch_loop_back() -> None:
    async def run() -> None:
        lane, ledger = lane_with_ledger(A, max_queued=1)
        await put(lane, fetch(ledger, A, [0]))
        blocked = asyncio.ensure_future(put(lane, fetch(ledger, A, [1])))
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
        await put(lane, fetch(ledger, A, returned))
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
    assert "self.lane.put(diverted, fetch.epochs)" in source and "self.lane.revoke(revoked)" in source


class Broker:
    """Stands in for the client under our consumer: each fetch waits until the test answers it."""

    def __init__(self) -> None:
        self.asked: list[asyncio.Future[dict[Any, list[Record]]]] = []
        self.revoked: list[set[Any]] = []
        self.sought: list[tuple[Any, int]] = []

    async def fetched(self, active_partitions: Any, timeout: float) -> dict[Any, list[Record]]:
        reply: asyncio.Future[dict[Any, list[Record]]] = asyncio.get_running_loop().create_future()
        self.asked.append(reply)
        return await reply

    async def faust_revoke(self, revoked: set[Any]) -> None:
        self.revoked.append(revoked)

    async def seek(self, tp: Any, offset: int) -> None:
        self.sought.append((tp, offset))

    async def answer(self, records: dict[Any, list[Record]]) -> None:
        """Answer the fetch under way, once one is."""
        for _ in range(100):
            if self.asked and not self.asked[-1].done():
                self.asked[-1].set_result(records)
                return
            await asyncio.sleep(0)
        raise AssertionError("no fetch is under way")


def our_consumer(monkeypatch: pytest.MonkeyPatch, lane_topics: set[str], assigned: set[Any]) -> tuple[Any, Broker]:
    """Our consumer class on what it reads of Faust's: the app's generation and topics, the assignment
    and the flow; its client is a `Broker`."""
    from faust.transport.drivers.aiokafka import Consumer as FaustConsumer

    broker = Broker()

    class Topics:
        @staticmethod
        def acks_enabled_for(topic: str) -> bool:
            return True

    class App:
        topics = Topics()
        consumer_generation_id = 1

    # the class's methods, as our consumer's `super()` finds them: plain functions of the consumer
    monkeypatch.setattr(FaustConsumer, "_getmany", lambda _, active, timeout: broker.fetched(active, timeout))
    monkeypatch.setattr(FaustConsumer, "on_partitions_revoked", lambda _, revoked: broker.faust_revoke(revoked))
    monkeypatch.setattr(FaustConsumer, "seek", lambda _, tp, offset: broker.seek(tp, offset))
    consumer: Any = object.__new__(compat.read_committed_consumer())
    consumer.app, consumer.ledger, consumer.dropped_records = App(), OffsetLedger(), 0
    consumer.flow_active, consumer.can_resume_flow, consumer.suspend_flow = True, asyncio.Event(), asyncio.Event()
    consumer.assignment = lambda: set(assigned)
    consumer._fetching = asyncio.Lock()
    consumer.lane = Lane(lane_topics)
    consumer.lane.attach(consumer.ledger)
    return consumer, broker


def test_the_consumer_gives_the_lane_its_partitions_and_faust_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> None:
        consumer, broker = our_consumer(monkeypatch, {A.topic}, {A, OTHER})
        consumer.ledger.seeked(A, 7)
        fetching = asyncio.ensure_future(consumer._getmany({A, OTHER}, 1.0))
        await broker.answer({A: [Record(7), Record(8)], OTHER: [Record(3)]})
        assert await fetching == {OTHER: [Record(3)]}  # Faust never sees A's records
        batch = await take(consumer.lane.batches())
        assert offsets(batch) == {A: [7, 8]}
        assert consumer.ledger.commit_point(A, 7) is None
        consumer.lane.done(batch)
        assert consumer.ledger.commit_point(A, 7) == 9

    asyncio.run(run())


def test_a_fetch_under_way_across_a_revoke_is_dropped_not_ingested_over_the_hole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """0..9 are queued when the partition is revoked, and dropped; a fetch issued before the revoke
    returns 10..19 after the partition is assigned again. Ingesting them would leave 0..9 unprocessed
    under processed records, and feeding the ledger with them would take 0..9 for offsets with no
    record: the commit point (and the lag gate) would pass over them. They are dropped; the partition
    is read again from its committed offset."""

    async def run() -> None:
        consumer, broker = our_consumer(monkeypatch, {A.topic}, {A})
        consumer.ledger.seeked(A, 0)
        first = asyncio.ensure_future(consumer._getmany({A}, 1.0))
        await broker.answer({A: [Record(o) for o in range(10)]})
        assert await first == {}  # 0..9 queued on the lane, not taken yet
        paused = asyncio.ensure_future(consumer._getmany({A}, 1.0))  # issued before the revoke
        await asyncio.sleep(0)
        await consumer.on_partitions_revoked({A})
        assert broker.revoked == [{A}] and not consumer.flow_active  # the flow stopped first
        # assigned again (a new generation); Faust seeks to the committed offset and resumes the flow
        consumer.app.consumer_generation_id = 2
        seeking = asyncio.ensure_future(consumer.seek(A, 0))  # it waits for the fetch under way
        await broker.answer({A: [Record(o) for o in range(10, 20)]})
        assert await paused == {}
        await asyncio.wait_for(seeking, 1.0)
        consumer.flow_active = True
        with pytest.raises(TimeoutError):  # neither 0..9 nor 10..19 reach the agent
            await asyncio.wait_for(consumer.lane.batches().__anext__(), 0.1)
        assert consumer.ledger.commit_point(A, 0) is None and consumer.dropped_records == 10
        again = asyncio.ensure_future(consumer._getmany({A}, 1.0))  # read again from the committed offset
        await broker.answer({A: [Record(o) for o in range(20)]})
        assert await again == {}
        batch = await take(consumer.lane.batches())
        assert offsets(batch) == {A: list(range(20))}
        consumer.lane.done(batch)
        assert consumer.ledger.commit_point(A, 0) == 20

    asyncio.run(run())


def test_a_seek_waits_for_the_fetch_under_way_and_no_fetch_overlaps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client makes seeks and fetches in its own loop: a fetch issued while a seek is being made
    could return records from the old position after it (its skipped offsets would be taken for
    offsets with no record) or from the new one (and be dropped with nothing to read them again). So a
    seek waits for the fetch under way, and the next fetch waits for the seek."""

    async def run() -> None:
        consumer, broker = our_consumer(monkeypatch, {A.topic}, {A})
        consumer.ledger.seeked(A, 30)
        under_way = asyncio.ensure_future(consumer._getmany({A}, 1.0))
        await asyncio.sleep(0)
        seeking = asyncio.ensure_future(consumer.seek(A, 5))  # the repair reads the partition again from 5
        await asyncio.sleep(0.01)
        assert not seeking.done() and broker.sought == []
        await broker.answer({A: [Record(30), Record(31)]})  # what it read at the old position counts
        assert await under_way == {}
        await asyncio.wait_for(seeking, 1.0)
        assert broker.sought == [(A, 5)]
        account = consumer.ledger.account(A)
        assert account is not None and account.empty == [] and account.expected == 5
        after = asyncio.ensure_future(consumer._getmany({A}, 1.0))
        await broker.answer({A: [Record(o) for o in range(5, 32)]})
        assert await after == {}
        batch = await take(consumer.lane.batches())
        assert offsets(batch) == {A: [30, 31, *range(5, 32)]}  # both fetches, in the order they came
        consumer.lane.done(batch)
        assert consumer.ledger.commit_point(A, 5) == 32

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
