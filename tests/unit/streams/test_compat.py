"""The pinned libraries' internals that streams/compat.py relies on are still there and still behave."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient
from faust.stores.rocksdb import Store as RocksDBStore
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from hypothesis import given
from hypothesis import strategies as st

from booster.streams import compat


def test_rocksdb_store_internals() -> None:
    assert callable(RocksDBStore._db_for_partition)
    assert callable(RocksDBStore.set_persisted_offset)
    assert RocksDBStore.offset_key.startswith(compat.FAUST_KEYS)


def test_consumer_thread_internals() -> None:
    assert list(inspect.signature(AIOKafkaConsumerThread._create_worker_consumer).parameters) == ["self", "transport"]
    assert callable(FaustConsumer._new_consumer_thread)
    consumer_class = compat.read_committed_consumer()
    assert issubclass(consumer_class, FaustConsumer)


def test_aiokafka_consumer_internals() -> None:
    async def make() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")

    consumer = asyncio.run(make())
    assert consumer._isolation_level == "read_uncommitted"  # the attribute our thread overrides
    assert isinstance(consumer._client, AIOKafkaClient)
    assert callable(AIOKafkaClient.force_metadata_update)


def test_a_held_message_is_acked_only_after_its_release() -> None:
    class Consumer:
        def __init__(self) -> None:
            self.acked: list[int] = []

        def ack(self, message: ConsumerMessage) -> bool:  # as Faust's Consumer.ack does
            message.acked = True
            self.acked.append(message.offset)
            return True

    consumer = Consumer()

    class Event:
        def __init__(self, offset: int) -> None:
            self.message = ConsumerMessage("t", 0, offset, 0.0, 0, {}, b"k", b"v", None)
            self.message.incref()  # the conductor's reference: one stream reads it

        def ack(self) -> bool:
            return self.message.ack(consumer)  # type: ignore[arg-type]

    done, interrupted = Event(1), Event(2)
    compat.hold_acks([done, interrupted])
    compat.release_acks([done])  # its effects are written; `interrupted` was cut short
    for event in (done, interrupted):  # what the stream's `finally` does for every yielded event
        event.ack()
    assert consumer.acked == [1]


def faust_bookkeeping(committed: int | None, acked: list[int], gaps: tuple[tuple[int, int], ...] = ()) -> Any:
    """An object with the attributes Faust's Consumer keeps its ack bookkeeping in, for one partition."""
    from collections import defaultdict

    from intervaltree import IntervalTree  # type: ignore[import-untyped]

    class Bookkeeping:
        _should_commit = FaustConsumer._should_commit

        def __init__(self) -> None:
            self._acked: defaultdict[Any, list[int]] = defaultdict(list)
            self._acked_index: defaultdict[Any, set[int]] = defaultdict(set)
            self._committed_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
            self._gap: defaultdict[Any, IntervalTree] = defaultdict(IntervalTree)
            self._unacked_messages: set[ConsumerMessage] = set()

    b = Bookkeeping()
    b._committed_offset[TP0] = committed
    b._acked[TP0] = list(acked)
    b._acked_index[TP0] = set(acked)
    for begin, end in gaps:
        b._gap[TP0].addi(begin, end)
    return b


TP0 = TP("t", 0)


def in_flight(b: Any, offset: int) -> None:
    message = ConsumerMessage("t", 0, offset, 0.0, 0, {}, b"k", b"v", None, tp=TP0)
    b._unacked_messages.add(message)


def test_faust_commits_past_a_message_in_flight_at_the_committed_offset() -> None:
    """faust-streaming issue 606, still in the pinned version: what `committable_offsets` exists for.
    When this fails, Faust has fixed it and the override can go."""
    b = faust_bookkeeping(2585, [2586, 2587, 2588, 2589])
    in_flight(b, 2585)
    assert FaustConsumer._new_offset(b, TP0) == 2590


def test_a_message_in_flight_at_the_committed_offset_is_never_committed_past() -> None:
    b = faust_bookkeeping(2585, [2586, 2587, 2588, 2589])
    in_flight(b, 2585)
    assert compat.committable_offsets(b, [TP0]) == {}
    assert b._acked[TP0] == [2586, 2587, 2588, 2589]  # kept for the commit after it is acked
    b._acked[TP0].append(2585)
    b._acked_index[TP0].add(2585)
    b._unacked_messages.clear()
    assert compat.committable_offsets(b, [TP0]) == {TP0: 2590}
    assert b._acked[TP0] == [] and b._acked_index[TP0] == set()


def test_markers_and_aborted_records_are_committed_past_as_faust_does() -> None:
    # a marker at the committed offset (in no gap: Faust's gaps start one past it), then acked records,
    # then markers or aborted records in a gap, then one more acked record
    b = faust_bookkeeping(10, [11, 12, 16], gaps=((13, 16),))
    assert compat.committable_offsets(b, [TP0]) == {TP0: 17}
    assert FaustConsumer._new_offset(faust_bookkeeping(10, [11, 12, 16], gaps=((13, 16),)), TP0) == 17


def test_a_gap_never_covers_a_message_in_flight() -> None:
    # Faust's _add_gap ends its gap at the message being delivered, inclusive
    b = faust_bookkeeping(10, [10, 11, 14], gaps=((12, 14),))
    in_flight(b, 13)
    assert compat.committable_offsets(b, [TP0]) == {TP0: 13}
    assert b._acked[TP0] == [14]


@given(
    st.lists(st.integers(0, 30), unique=True),
    st.lists(st.tuples(st.integers(0, 30), st.integers(1, 5)), max_size=3),
    st.one_of(st.none(), st.integers(0, 30)),
    st.one_of(st.none(), st.integers(0, 30)),
)
def test_the_commit_point_never_passes_what_is_not_done(
    acked: list[int], gaps: list[tuple[int, int]], committed: int | None, flight: int | None
) -> None:
    spans = [(begin, begin + length) for begin, length in gaps]
    point = compat.commit_point(acked, spans, committed, flight)
    if point is None:
        return
    done = set(acked) | {o for begin, end in spans for o in range(begin, end)}
    start = min(done) if committed is None else committed
    assert flight is None or point <= flight
    assert point > start
    # every offset from the start up to the point is done, but for one marker at the committed offset
    skipped = [o for o in range(start, point) if o not in done or o == flight]
    assert skipped in ([], [start]) and (not skipped or committed is not None)


def test_a_copy_read_before_the_seek_to_the_committed_offset_holds_nothing_back() -> None:
    b = faust_bookkeeping(100, [100, 101])
    in_flight(b, 40)  # read from an earlier position before Faust seeked to the committed offset
    assert compat.committable_offsets(b, [TP0]) == {TP0: 102}


def test_the_ack_bookkeeping_committable_offsets_reads_is_still_faust_s() -> None:
    from faust.transport.consumer import Consumer

    init = inspect.getsource(Consumer.__init__)
    for attribute in ("_unacked_messages", "_acked", "_acked_index", "_gap", "_committed_offset"):
        assert f"self.{attribute} = " in init, attribute
    assert list(inspect.signature(Consumer._filter_committable_offsets).parameters) == ["self", "tps"]
    assert callable(Consumer._should_commit)
    assert issubclass(compat.read_committed_consumer(), Consumer)
    assert "_filter_committable_offsets" in compat.read_committed_consumer().__dict__
