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

from booster.streams import compat
from booster.streams.offsets import OffsetLedger


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


class FakeConsumer:
    """What `hold_acks`, `release_acks` and `committable_offsets` use of Faust's Consumer, for one
    partition, with Faust's own ack and commit checks."""

    _should_commit = FaustConsumer._should_commit

    def __init__(self, committed: int | None = None) -> None:
        from collections import defaultdict

        from intervaltree import IntervalTree  # type: ignore[import-untyped]

        self.ledger = OffsetLedger()
        self.acked: list[int] = []
        self.seeks: list[tuple[Any, int]] = []
        self._acked: defaultdict[Any, list[int]] = defaultdict(list)
        self._acked_index: defaultdict[Any, set[int]] = defaultdict(set)
        self._committed_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
        self._committed_offset[TP0] = committed
        self._gap: defaultdict[Any, IntervalTree] = defaultdict(IntervalTree)
        self._read_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
        self.app = self  # Faust's Consumer.app: what `count_reading_again` was given

    def ack(self, message: ConsumerMessage) -> bool:  # as Faust's Consumer.ack does
        message.acked = True
        self.acked.append(message.offset)
        self._acked[message.tp].append(message.offset)
        self._acked_index[message.tp].add(message.offset)
        return True

    def assignment(self) -> set[Any]:
        return {TP0}

    async def seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.ledger.seeked(tp, offset)


TP0 = TP("t", 0)
TP1 = TP("t", 1)


class FakeEvent:
    def __init__(self, consumer: FakeConsumer, offset: int) -> None:
        self.consumer = consumer
        self.app = self  # Faust's Event.app; its `consumer` is the one that delivered the message
        self.message = ConsumerMessage("t", 0, offset, 0.0, 0, {}, b"k", b"v", None, tp=TP0)
        self.message.incref()  # the conductor's reference: one stream reads it

    def ack(self) -> bool:
        return self.message.ack(self.consumer)  # type: ignore[arg-type]


def test_a_held_message_is_acked_and_counted_done_only_after_its_release() -> None:
    consumer = FakeConsumer(committed=1)
    consumer.ledger.seeked(TP0, 1)
    consumer.ledger.fetched(TP0, [1, 2])
    done, interrupted = FakeEvent(consumer, 1), FakeEvent(consumer, 2)
    compat.hold_acks([done, interrupted])
    compat.release_acks([done])  # its effects are written; `interrupted` was cut short
    for event in (done, interrupted):  # what the stream's `finally` does for every yielded event
        event.ack()
    assert consumer.acked == [1]
    assert consumer.ledger.is_done(TP0, 1) and not consumer.ledger.is_done(TP0, 2)
    assert compat.committable_offsets(consumer, [TP0], now=0.0) == {TP0: 2}


def test_faust_commits_past_a_message_in_flight_at_the_committed_offset() -> None:
    """faust-streaming issue 606, still in the pinned version: one reason Faust's account of what to
    commit is not used. When this fails, Faust has fixed it; the others (see offsets.py) remain."""
    from collections import defaultdict

    from intervaltree import IntervalTree

    class Bookkeeping:
        def __init__(self) -> None:
            self._acked: defaultdict[Any, list[int]] = defaultdict(list, {TP0: [2586, 2587, 2588, 2589]})
            self._acked_index: defaultdict[Any, set[int]] = defaultdict(set, {TP0: {2586, 2587, 2588, 2589}})
            self._committed_offset: defaultdict[Any, int | None] = defaultdict(lambda: None, {TP0: 2585})
            self._gap: defaultdict[Any, IntervalTree] = defaultdict(IntervalTree)

    # 2585 is still being processed
    assert FaustConsumer._new_offset(Bookkeeping(), TP0) == 2590  # type: ignore[arg-type]


def test_the_commit_trims_faust_s_own_bookkeeping() -> None:
    consumer = FakeConsumer(committed=10)
    consumer.ledger.seeked(TP0, 10)
    consumer.ledger.fetched(TP0, [10, 11, 12])
    for offset in (10, 11, 12):
        consumer.ack(FakeEvent(consumer, offset).message)
        consumer.ledger.release(TP0, offset)
    consumer._gap[TP0].addi(11, 12)
    assert compat.committable_offsets(consumer, [TP0], now=0.0) == {TP0: 13}
    assert consumer._acked[TP0] == [] and consumer._acked_index[TP0] == set() and not consumer._gap[TP0]


def test_a_record_dropped_on_the_way_is_read_again() -> None:
    """faust-streaming issue 596 as seen here: records 616..623 never reached an agent, 624.. did."""

    told: list[tuple[str, str]] = []

    async def run() -> list[tuple[Any, int]]:
        consumer = FakeConsumer(committed=616)
        compat.count_reading_again(consumer, lambda topic, why: told.append((topic, why)))  # the app, here
        consumer.ledger.seeked(TP0, 616)
        consumer.ledger.fetched(TP0, range(616, 640))
        consumer._read_offset[TP0] = 639  # the fetch loop handed them all on, or dropped them
        for offset in range(624, 640):
            consumer.ledger.release(TP0, offset)
        for now in (0.0, 5.0, compat.LOST_GRACE_SECONDS):
            assert compat.committable_offsets(consumer, [TP0], now) == {}
        await asyncio.sleep(0)  # the seek runs as its own task
        return consumer.seeks

    assert asyncio.run(run()) == [(TP0, 616)]
    assert told == [("t", "dropped")]  # counted: booster_records_read_again_total


def test_the_consumer_internals_the_ledger_is_fed_from() -> None:
    from faust.transport.consumer import Consumer

    init = inspect.getsource(Consumer.__init__)
    for attribute in ("_acked", "_acked_index", "_gap", "_committed_offset", "_read_offset"):
        assert f"self.{attribute} = " in init, attribute
    # reading again from a record: Faust's seek moves the read offset too, or the drain loop drops it
    assert "self._read_offset[ensure_TP(partition)] = offset" in inspect.getsource(Consumer.seek)
    assert "self.seek_to_committed()" in inspect.getsource(Consumer.perform_seek)
    signatures = {
        Consumer._filter_committable_offsets: ["self", "tps"],
        FaustConsumer._getmany: ["self", "active_partitions", "timeout"],
        Consumer.seek: ["self", "partition", "offset"],
        Consumer.on_partitions_revoked: ["self", "revoked"],
    }
    for method, parameters in signatures.items():
        assert list(inspect.signature(method).parameters) == parameters, method
    assert callable(Consumer._should_commit)
    overrides = compat.read_committed_consumer().__dict__
    for name in ("_filter_committable_offsets", "_getmany", "seek_to_committed", "seek", "on_partitions_revoked"):
        assert name in overrides, name


def test_faust_recovery_builds_active_offsets_after_highwaters_and_before_it_seeks() -> None:
    """`prepare_recovery` wraps `_build_highwaters` and `_build_offsets`: they must still be called for
    the actives with title "active", in that order, and before the seek reads the offsets."""
    from faust.tables.recovery import Recovery

    source = inspect.getsource(Recovery._restart_recovery.fun)  # a mode Service task
    highwaters = source.index(
        'self._build_highwaters)(\n                        consumer, assigned_active_tps, active_highwaters, "active"'
    )
    offsets = source.index(
        'self._build_offsets)(\n                        consumer, assigned_active_tps, active_offsets, "active"'
    )
    seek = source.index(
        'self._seek_offsets)(\n                        consumer, assigned_active_tps, active_offsets, "active"'
    )
    assert highwaters < offsets < seek
    assert "recovery_consistency_check" in source  # compares the same offsets with the highwaters
    assert "self.completed.set()" in inspect.getsource(Recovery.on_recovery_completed)


def test_recovery_fences_first_waits_for_the_last_record_and_takes_the_restore_s_offsets() -> None:
    """The wrapper fences the partitions' earlier writers before Faust reads the changelogs' ends, makes
    each end the last record (a transaction's commit marker ends the changelog, and Faust, reading up to
    it, would wait for ever), hands the restore Faust's offsets and those ends, and keeps the larger
    offset."""
    calls: list[str] = []

    class Recovery:
        def __init__(self) -> None:
            self.active_highwaters: dict[Any, int] = {}

        async def _build_highwaters(self, consumer: Any, tps: Any, destination: Any, title: str) -> None:
            calls.append(f"highwaters {title}")
            destination.update({TP0: 9_999, TP1: 50})  # Faust's: the end offset less one (a marker)

        async def _build_offsets(self, consumer: Any, tps: Any, destination: Any, title: str) -> None:
            destination.update({TP0: -1, TP1: 40})

    class App:
        class tables:
            recovery = Recovery()

    recovery = App.tables.recovery
    seen: list[tuple[dict[Any, int | None], dict[Any, int | None]]] = []

    async def own(partitions: set[int]) -> None:
        calls.append(f"own {sorted(partitions)}")

    async def last_records(ends: dict[Any, int], starts: dict[Any, int]) -> dict[Any, int]:
        assert ends == {TP0: 10_000, TP1: 51} and starts == {TP0: 0, TP1: 41}
        return {TP0: 9_998, TP1: 40}  # TP1: only markers after what is applied

    async def restore(offsets: Any, highwaters: Any) -> dict[Any, int]:
        seen.append((dict(offsets), dict(highwaters)))
        return {TP0: 9_998, TP1: 30}  # TP1: behind Faust's own (never moves an offset back)

    compat.prepare_recovery(App, own, last_records, restore)
    tps = {TP0, TP1}
    asyncio.run(recovery._build_highwaters(None, tps, recovery.active_highwaters, "active"))
    active: dict[Any, int] = {}
    asyncio.run(recovery._build_offsets(None, tps, active, "active"))
    assert calls == ["own [0, 1]", "highwaters active"]
    assert recovery.active_highwaters == {TP0: 9_998, TP1: 40}
    assert seen == [({TP0: -1, TP1: 40}, {TP0: 9_998, TP1: 40})]
    assert active == {TP0: 9_998, TP1: 40}
    standby: dict[Any, int] = {}
    asyncio.run(recovery._build_offsets(None, {TP0}, standby, "standby"))
    assert len(seen) == 1, "standby partitions are Faust's to follow"


def test_recovered_follows_faust_s_recovery_and_rebalances() -> None:
    """/ready's answer: false until Faust's first recovery completes, false again while a rebalance
    (and the recovery it starts) runs."""
    import faust

    app: Any = faust.App("ready-test", broker="kafka://127.0.0.1:1", store="memory://")
    assert not compat.recovered(app)
    app.tables.recovery.completed.set()
    assert compat.recovered(app)
    app.on_rebalance_start()
    assert not compat.recovered(app)
    app.on_rebalance_end()
    app.in_recovery = True
    assert not compat.recovered(app)
    app.in_recovery = False
    assert compat.recovered(app)


def test_the_livelock_check_skips_a_partition_waiting_for_its_offset_reset() -> None:
    """A partition fetched, then sought to its beginning (committing, never committed): until the
    broker answers, aiokafka's state has no position, and Faust's check must not end the worker."""
    from types import SimpleNamespace

    from aiokafka import TopicPartition
    from aiokafka.consumer.fetcher import OffsetResetStrategy
    from aiokafka.consumer.subscription_state import SubscriptionState

    async def check() -> None:
        tp = TopicPartition("t.message.sent", 0)
        subscriptions = SubscriptionState()
        subscriptions.assign_from_user({tp})
        state = subscriptions.subscription.assignment.state_value(tp)
        state.seek(40)
        state.highwater, state.timestamp = 50, 1_000  # a fetch of this assignment returned
        state.await_reset(OffsetResetStrategy.EARLIEST)  # the seek to the beginning, not answered yet
        consumer_class: Any = compat.read_committed_consumer()
        thread: Any = object.__new__(consumer_class.thread_class)
        thread._consumer = SimpleNamespace(_fetcher=SimpleNamespace(_subscriptions=subscriptions))
        thread._ensure_consumer = lambda: thread._consumer
        app = SimpleNamespace(
            monitor=SimpleNamespace(stream_inbound_time={}), topics=SimpleNamespace(acks_enabled_for=lambda topic: True)
        )
        thread.consumer = SimpleNamespace(app=app)
        thread.time_started, thread.tp_fetch_request_timeout_secs, thread.tp_stream_timeout_secs = 0.0, 1e9, 1e9
        faust_tp = TP(tp.topic, tp.partition)
        thread.verify_event_path(1.0, faust_tp)  # Faust's own check asserts here (no position)
        state.seek(0)  # the broker answered: checked as Faust checks it
        thread.verify_event_path(1.0, faust_tp)

    asyncio.run(check())
