"""Every use of a private API of Faust, aiokafka or rocksdict, each with why we need it.

Checked against faust-streaming 0.15.3, aiokafka 0.14.0 and rocksdict 0.3.29 (pinned in
pyproject.toml); `tests/unit/streams/test_compat.py` fails when one of these assumptions stops
holding. Nothing else in the project reaches into those libraries' internals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import cache
from typing import Any

from booster.streams import fetches
from booster.streams.lane import Lane
from booster.streams.offsets import OffsetLedger

log = logging.getLogger("booster.worker")

# Faust keeps a table partition's persisted changelog offset in the same RocksDB database as the rows,
# under keys starting with this (RocksDBStore.offset_key is b"__faust\0offset__"): walks skip them.
FAUST_KEYS = b"__faust\x00"


def partition_db(table: Any, partition: int) -> Any:
    """One partition's RocksDB database (a rocksdict `Rdict`) of a Faust table, or None for the memory
    store.

    Why: Faust has no API to walk one partition of a table from a key prefix, nor to write rows
    without its per-key bookkeeping (an in-memory index of every key written). RocksDBStore keeps one
    rocksdict `Rdict` per partition behind the private `_db_for_partition`, which opens it if needed.
    """
    opener = getattr(table.data, "_db_for_partition", None)
    return None if opener is None else opener(partition)


def memory_rows(table: Any) -> dict[bytes, bytes]:
    """The dict behind a Faust table on the memory store (`memory://`, for experiments).

    Why: the memory store has no partitions of its own; `table.data` is the store object itself.
    """
    rows: dict[bytes, bytes] = table.data
    return rows


def write_rows_and_offset(table: Any, partition: int, rows: Mapping[bytes, bytes | None], offset: int) -> None:
    """Write rows into a Faust table partition's RocksDB together with the last changelog offset they
    reached, as Faust records its persisted offset, in one write: a restarted worker reads only what it
    missed from the changelog, and never has a row the changelog does not.

    Why: our changelog records are produced by our own producers (ChangelogSink), not by
    `Table.send_changelog`, so Faust does not record their offsets itself; its `persisted_offset` reads
    the offset back (a decimal string) from the private `RocksDBStore.offset_key`.
    """
    found = changelog_database(table, partition)
    if found is None:  # the memory store has no local state to resume from
        return
    db, offset_key = found
    from rocksdict import WriteBatch

    batch = WriteBatch(raw_mode=True)
    for key, value in rows.items():
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    batch.put(offset_key, str(offset).encode())
    db.write(batch)


def changelog_database(table: Any, partition: int) -> tuple[Any, bytes] | None:
    """A Faust table partition's RocksDB database and the key its persisted changelog offset is kept
    under, for the bulk restore to write rows and offset in one batch; None for the memory store.

    Why: Faust names the key in the private `RocksDBStore.offset_key` and reads it back (as a decimal
    string) in `persisted_offset`, the offset its recovery resumes from.
    """
    db = partition_db(table, partition)
    return None if db is None else (db, table.data.offset_key)


def prepare_recovery(
    app: Any,
    own: Callable[[set[int]], Awaitable[None]],
    last_records: Callable[[dict[Any, int], dict[Any, int]], Awaitable[dict[Any, int]]],
    restore: Callable[[Any, Any], Awaitable[dict[Any, int]]] | None,
) -> None:
    """Three steps in Faust's recovery of the active table partitions, after a rebalance:
    1. `own(partitions)` before it looks at their changelogs' ends: this worker fences every earlier
       writer of the partitions (`ChangelogSink.own`), so nothing is written after the ends it reads;
    2. once it knows, for each changelog partition, the last offset already in RocksDB and the end,
       the end becomes the last record (`last_records(ends, starts)`): the changelogs are written in
       transactions, and Faust would wait for the commit marker at their end, which it never reads;
    3. `restore(offsets, highwaters)` (the bulk restore, if on), whose offsets replace Faust's when
       further on, so its recovery reads only what is left.

    Why: Faust's recovery (`faust.tables.recovery.Recovery._restart_recovery`) has no hook there. It
    calls `_build_highwaters(consumer, tps, destination, title)` for the actives (`title="active"`),
    then `_build_offsets` likewise, which fills `destination` before `_seek_offsets` reads it; the
    highwaters are kept in `active_highwaters`. A rebalance meanwhile cancels these steps (Faust's
    `_wait`), which leaves RocksDB consistent.
    """
    recovery = app.tables.recovery
    build_highwaters = recovery._build_highwaters
    build_offsets = recovery._build_offsets

    async def own_then_build_highwaters(consumer: Any, tps: Any, destination: Any, title: str) -> None:
        if title == "active" and tps:
            await own({tp.partition for tp in tps})
        await build_highwaters(consumer, tps, destination, title)

    async def build_then_restore(consumer: Any, tps: Any, destination: Any, title: str) -> None:
        await build_offsets(consumer, tps, destination, title)
        if title != "active" or not tps:
            return
        highwaters = recovery.active_highwaters
        applied = {tp: destination[tp] if destination[tp] is not None else -1 for tp in tps}
        ends = {tp: highwaters[tp] + 1 for tp in tps if highwaters.get(tp) is not None}  # Faust's are ends less 1
        last = await last_records(ends, {tp: applied[tp] + 1 for tp in ends})
        for tp, offset in last.items():
            # never below what is applied: Faust refuses an applied offset past its highwater
            highwaters[tp] = max(offset, applied[tp])
        if restore is None:
            return
        reached = await restore({tp: destination[tp] for tp in tps}, {tp: highwaters.get(tp) for tp in tps})
        for tp, offset in reached.items():
            if offset > applied[tp]:
                destination[tp] = offset

    recovery._build_highwaters = own_then_build_highwaters
    recovery._build_offsets = build_then_restore


def recovered(app: Any) -> bool:
    """Whether the worker's tables hold every assigned partition's state and its agents run (Faust's
    recovery has completed since the last rebalance).

    Why: the recovery service's `completed` event is set when the first recovery ends and never
    cleared; `app.rebalancing` is true from a rebalance's start until its recovery has ended.
    """
    return bool(app.tables.recovery.completed.is_set()) and not app.rebalancing and not app.in_recovery


@cache
def read_committed_consumer() -> type:
    """Faust's consumer class, reading with isolation.level=read_committed, processing only what a
    fetch nothing overtook returned (`booster.streams.fetches`), and committing what our
    `OffsetLedger` says is processed (set as `app.transport.Consumer`). Built on first use, so the CLI
    does not import Faust."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
    from faust.transport.drivers.aiokafka import Consumer as FaustConsumer

    class ReadCommittedThread(AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # Why: Faust reads committed records only in its exactly_once mode, which we do not use;
            # the fan-out's summaries are transactional and an aborted one must never be merged.
            # aiokafka reads the attribute when it builds its fetcher, at start, after this.
            consumer._isolation_level = "read_committed"
            return consumer

        async def committed_then_seek(self, committing: frozenset[Any]) -> dict[Any, int | None]:
            """Every assigned partition's committed offset, looked up first, then each partition
            sought there in one step of the client's loop (no fetch runs between two seeks); a
            committing partition with no committed offset is sought to its beginning (the group's
            reset policy), never left where it was.

            Why: aiokafka's `seek_to_committed` looks the offsets up one by one between its seeks, so
            fetches run meanwhile, and it leaves a partition whose committed offset is 0 or none at
            its position, past records that were never processed. `call_thread` runs a call in the
            client's own loop, as Faust's `seek_to_committed` does.
            """
            return dict(await self.call_thread(self._committed_then_seek, self._ensure_consumer(), committing))

        async def _committed_then_seek(self, consumer: Any, committing: frozenset[Any]) -> dict[Any, int | None]:
            partitions = sorted(consumer.assignment())
            found = await asyncio.gather(*(consumer.committed(tp) for tp in partitions))
            offsets = dict(zip(partitions, found, strict=True))
            beginning = []
            for tp, offset in offsets.items():
                if offset is not None and (offset > 0 or (offset == 0 and tp in committing)):
                    consumer.seek(tp, offset)
                elif tp in committing:
                    beginning.append(tp)
            if beginning:
                await consumer.seek_to_beginning(*beginning)
            return offsets

        def verify_event_path(self, now: float, tp: Any) -> None:
            """Faust's livelock check of one partition, skipped while the partition has no position.

            Why: the check reads aiokafka's private `TopicPartitionState.position`, which asserts while
            the partition waits for an offset reset: one we seek to its beginning (committing, never
            committed) after a fetch of the same assignment, when the broker answers slowly (just
            restarted). The assertion crashed the consumer and ended the worker; a partition with no
            position yet has no progress to check.
            """
            from aiokafka import TopicPartition

            subscription = self._ensure_consumer()._fetcher._subscriptions.subscription
            assignment = None if subscription is None else subscription.assignment
            state = None if assignment is None else assignment.state_value(TopicPartition(tp.topic, tp.partition))
            if state is not None and not state.has_valid_position:
                return None
            return super().verify_event_path(now, tp)

    class ReadCommittedConsumer(FaustConsumer):
        """Why the overrides: Faust's own account of what it may commit loses and stalls records (see
        `booster.streams.offsets`), and its fetch loop can process records of a fetch a rebalance or
        a seek overtook (see `booster.streams.fetches`); each one below feeds or uses ours instead."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.ledger = OffsetLedger()
            self.lane: Lane | None = getattr(self.app, LANE_ATTRIBUTE, None)
            if self.lane is not None:
                self.lane.attach(self.ledger)
            self.dropped_records = 0  # of fetches a rebalance or a seek overtook
            # a seek waits for the fetch under way to return and be admitted, and no fetch is issued
            # while a seek runs: aiokafka runs both in its own loop, and a fetch issued while a seek was
            # being made could return records from the new position that no other fetch reads again
            self._fetching = asyncio.Lock()

        thread_class = ReadCommittedThread

        def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
            return ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)

        fetch_asked_at: float | None = None  # monotonic: the fetch loop's last call, and its last return
        fetch_done_at: float | None = None

        async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
            # every record the broker returned, before Faust's loops drop any: what the position
            # skipped holds no record
            self.fetch_asked_at = time.monotonic()
            records = await self._fetch_and_divert(active_partitions, timeout)
            self.fetch_done_at = time.monotonic()
            return records

        def _epoch(self, tp: Any) -> int:
            return 0 if self.lane is None else self.lane.epoch(tp)

        async def _fetch_and_divert(self, active_partitions: Any, timeout: float) -> Any:
            # a copy: Faust's set is emptied by a revoke while the fetch waits, and aiokafka reads an
            # empty set as every partition
            asked = None if active_partitions is None else set(active_partitions)
            async with self._fetching:
                generation, assigned = self.app.consumer_generation_id, self.assignment()
                fetch = fetches.tag(generation, asked or (), assigned, self._epoch, self.ledger, self._committing)
                records = await super()._getmany(asked, timeout)
                admitted = fetches.admit(
                    fetch,
                    records,
                    generation=self.app.consumer_generation_id,
                    flow_active=self.flow_active,
                    assigned=self.assignment(),
                    epochs=self._epoch,
                    ledger=self.ledger,
                    committing=self._committing,
                )
            if admitted.dropped:
                self.dropped_records += sum(admitted.dropped.values())
                log.info(
                    "dropped what a fetch overtaken by a rebalance or a seek returned (read again from the "
                    "committed or sought offset): %s",
                    ", ".join(f"{tp.topic}[{tp.partition}] {n}" for tp, n in sorted(admitted.dropped.items())),
                )
            for tp, offset in admitted.read_again.items():
                await self.seek(tp, offset)  # before the next fetch is issued
            diverted = {tp: b for tp, b in admitted.records.items() if self.lane is not None and self.lane.takes(tp)}
            if diverted:
                # the batch lane: Faust's fetch loop never sees these records (no Event per record); the
                # lane holds their offsets until the ingest agent has written their effects
                assert self.lane is not None
                await self.lane.put(diverted, fetch.epochs)
            return {tp: batch for tp, batch in admitted.records.items() if tp not in diverted}

        def _committing(self, tp: Any) -> bool:
            """Whether the group commits this partition (agents' topics; not changelogs)."""
            return bool(self.app.topics.acks_enabled_for(tp.topic))

        async def seek_to_committed(self) -> Any:
            async with self._fetching:
                committing = frozenset(tp for tp in self.assignment() if self._committing(tp))
                for tp in committing:
                    self.ledger.seeking(tp)
                offsets: dict[Any, int | None] = {}
                try:
                    offsets = await self._thread.committed_then_seek(committing)  # type: ignore[attr-defined]
                finally:  # a seek that failed or was cancelled leaves the position unknown
                    for tp in committing:
                        offset = offsets.get(tp)
                        self.ledger.seeked(tp, offset if offset is not None and offset >= 0 else None)
                return offsets

        async def seek(self, partition: Any, offset: int) -> None:
            if not self._committing(partition):
                await super().seek(partition, offset)
                return
            async with self._fetching:
                self.ledger.seeking(partition)
                sought: int | None = None
                try:
                    await super().seek(partition, offset)
                    sought = offset
                finally:
                    self.ledger.seeked(partition, sought)

        async def on_partitions_revoked(self, revoked: set[Any]) -> None:
            if revoked:
                # at once, before anything awaits: a fetch under way now is not processed (Faust stops
                # the flow too, later, after other awaits)
                self.stop_flow()
            if self.lane is not None:  # as Faust waits for unacked events: the batch in flight is written
                await self.lane.revoke(revoked)
            self.ledger.forget(revoked)
            await super().on_partitions_revoked(revoked)

        def _filter_committable_offsets(self, tps: Iterable[Any]) -> dict[Any, int]:
            return committable_offsets(self, tps, time.monotonic())

    return ReadCommittedConsumer


def fetch_loop_stall(consumer: Any, now: float, after: float) -> str | None:
    """What the fetch loop is doing when it has not finished a fetch for `after` seconds while the
    worker holds partitions and its flow is on (Faust's `flow_active`), else None. Said in the log, so
    that a worker whose inputs stand still says why (seen once in CI: a worker that took over every
    partition processed nothing more, with no error).

    Why: `flow_active` and `assignment()` are Faust's; the times are our consumer's (`_getmany`).
    """
    done = getattr(consumer, "fetch_done_at", None)
    if done is None or now - done < after or not consumer.assignment() or not consumer.flow_active:
        return None
    asked = getattr(consumer, "fetch_asked_at", None)
    doing = "inside a fetch" if asked is not None and asked > done else "not fetching"
    lane = getattr(consumer, "lane", None)
    return f"no fetch finished for {now - done:.0f} s, {doing}" + ("" if lane is None else f"; lane: {lane.state()}")


LANE_ATTRIBUTE = "booster_lane"  # set on the Faust app; its consumer, which Faust makes, finds it there
READ_AGAIN_ATTRIBUTE = "booster_read_again"  # likewise: what is told when a partition is read again


def use_lane(app: Any, lane: Lane) -> None:
    """Give the consumer Faust makes for `app` the batch lane (`booster.streams.lane`)."""
    setattr(app, LANE_ATTRIBUTE, lane)


def count_reading_again(app: Any, counter: Callable[[str, str], None]) -> None:
    """`counter(topic, why)` is called each time the consumer of `app` reads a partition again from a
    record its commits stand still at (why: held, a handler holds it too long; dropped, nobody took it)."""
    setattr(app, READ_AGAIN_ATTRIBUTE, counter)


_reading_again: set[asyncio.Future[None]] = set()
HELD_SECONDS = 120.0  # a record held this long at the commit point is read again
LOST_GRACE_SECONDS = 10.0  # a record handed on that stops the commits this long, held by no handler, is read again


def committable_offsets(consumer: Any, tps: Iterable[Any], now: float) -> dict[Any, int]:
    """The offsets a Faust consumer may commit now, by its `ledger`; Faust's own ack bookkeeping is
    only trimmed (it would grow otherwise), never trusted.

    Why: `Consumer._filter_committable_offsets` is where Faust decides what to commit; see
    `booster.streams.offsets` for what its decision gets wrong.
    """
    ledger: OffsetLedger = consumer.ledger
    offsets = {}
    for tp in {*tps, *ledger.partitions()}:
        committed = consumer._committed_offset[tp]
        offset = ledger.commit_point(tp, committed)
        if offset is None:  # the commits stand still here: a record dropped on the way is read again
            _read_again_if_lost(consumer, tp, committed, now)
            continue
        consumer._acked[tp] = [o for o in consumer._acked[tp] if o >= offset]
        consumer._acked_index[tp] = {o for o in consumer._acked_index[tp] if o >= offset}
        consumer._gap[tp].chop(0, offset)
        if consumer._should_commit(tp, offset):
            offsets[tp] = offset
    return offsets


def _read_again_if_lost(consumer: Any, tp: Any, committed: int | None, now: float) -> None:
    held = consumer.ledger.held_long(tp, committed, now, HELD_SECONDS)
    if held is not None and tp in consumer.assignment():
        log.warning(
            "%s[%d]: record %d has been held by a handler for %.0f s or more and the partition's commits "
            "stand still behind it (a release lost to a rebalance, or a handler that is stuck); reading "
            "the partition again from it",
            tp.topic,
            tp.partition,
            held,
            HELD_SECONDS,
        )
        _told_reading_again(consumer, tp, "held")
        _seek(consumer, tp, held)
        return
    read = consumer._read_offset.get(tp)  # the last offset Faust's fetch loop handed on or dropped
    again = consumer.ledger.lost(tp, committed, read, now, LOST_GRACE_SECONDS)
    if again is None or tp not in consumer.assignment():
        return
    log.warning(
        "%s[%d]: record %d was fetched and never processed (dropped by Faust's fetch loop, as in "
        "faust-streaming issue 596); reading the partition again from it",
        tp.topic,
        tp.partition,
        again,
    )
    _told_reading_again(consumer, tp, "dropped")
    _seek(consumer, tp, again)


def _told_reading_again(consumer: Any, tp: Any, why: str) -> None:
    counter = getattr(consumer.app, READ_AGAIN_ATTRIBUTE, None)
    if counter is not None:
        counter(tp.topic, why)


def _seek(consumer: Any, tp: Any, offset: int) -> None:
    task = asyncio.ensure_future(consumer.seek(tp, offset))
    _reading_again.add(task)  # the loop keeps weak references only
    task.add_done_callback(_reading_again.discard)


def hold_acks(events: Iterable[Any]) -> None:
    """Keep these events from being acked (and their offsets committed) until `release_acks`.

    Why: Faust acks an event its stream yielded in the iterator's `finally`, and `Stream.on_stop`
    closes a `take()` generator suspended at its yield, so a batch can be acked while the agent is
    still processing it, or after the agent was cancelled (a stop, a rebalance) half-way. Offsets whose
    rows never reached the changelog were committed, and the partition's next owner skipped them (seen:
    recipients counted WAITING after a worker left). A message is acked when its reference count
    reaches zero (`Message.ack`), as for a message several streams share; one more reference per
    event, dropped only once its effects are written, leaves an interrupted event uncommitted, to be
    processed again by whoever consumes the partition next (the folds are idempotent). Faust's wait
    for unacked messages at a rebalance waits for it, as it should.
    """
    ledger: OffsetLedger | None = None
    for event in events:
        ledger = ledger or ledger_of(event)  # one consumer delivers them all
        message = event.message
        message.incref()
        ledger.hold(message.tp, message.offset)


def release_acks(events: Iterable[Any]) -> None:
    """Drop the reference `hold_acks` took: the stream's own ack now completes each event, and the
    consumer's ledger counts its offset as processed."""
    ledger: OffsetLedger | None = None
    for event in events:
        ledger = ledger or ledger_of(event)
        message = event.message
        ledger.release(message.tp, message.offset)
        event.ack()


def ledger_of(event: Any) -> OffsetLedger:
    """The ledger of the consumer that delivered this event (a fresh one for a consumer without)."""
    ledger = getattr(event.app.consumer, "ledger", None)
    return ledger if isinstance(ledger, OffsetLedger) else OffsetLedger()


async def refresh_metadata(consumer: Any) -> None:
    """Fetch cluster metadata now.

    Why: a consumer started without subscriptions may not know a topic created moments ago, and
    AIOKafkaConsumer has no public call that refreshes metadata for an assign()-only consumer.
    """
    await consumer._client.force_metadata_update()


async def create_acls(admin: Any, entries: Iterable[tuple[int, str, int, str, int]]) -> list[str]:
    """Create ALLOW ACLs (resource type, name, pattern type, principal, operation), any host; returns
    the broker's refusals as text (empty: every one is in place; creating one that exists is a no-op).

    Why: aiokafka's admin client has no create_acls (its protocol module has the CreateAcls request,
    one ACL per request) and the project takes no second Kafka client for one admin call; the request
    goes through the admin client's private `_send_request`, which picks a node and negotiates the
    request's version.
    """
    from aiokafka.protocol.admin import CreateAclsRequest

    allow, any_host = 3, "*"

    async def create(resource_type: int, name: str, pattern: int, principal: str, operation: int) -> list[str]:
        request = CreateAclsRequest(resource_type, name, pattern, principal, any_host, operation, allow)
        response = await admin._send_request(request)
        return [
            f"{principal} operation {operation} on {name}: error {code} {message or ''}".strip()
            for code, message in response.creation_responses
            if code
        ]

    answers = await asyncio.gather(*(create(*entry) for entry in entries))
    return [refusal for refused in answers for refusal in refused]


def use_faust_sensors(app: Any, registry: Any) -> None:
    """Faust's own sensors (its consumer, producer, tables, rebalances) in the worker's registry, so
    /metrics serves them with ours.

    Why here: `faust.sensors.prometheus` exports only `setup_prometheus_sensors`, which adds a second
    page and names one histogram `faust_events_runtime_ms`, which `promtool check metrics` refuses (a
    unit other than the base one). Its `FaustMetrics` and `PrometheusMonitor` are used instead to make
    the same metrics, with that one as `faust_events_runtime_seconds` (the NamedTuple's `_replace`).
    """
    from faust.sensors.prometheus import MS_LATENCY_BUCKETS, FaustMetrics, PrometheusMonitor
    from prometheus_client import Histogram

    class SecondsFromMilliseconds(Histogram):
        """A histogram in seconds fed in milliseconds (Faust's monitor measures runtimes in ms)."""

        def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
            super().observe(amount / 1000, exemplar)

    made = FaustMetrics.create(registry, "faust")
    registry.unregister(made.events_runtime_latency)
    runtime = SecondsFromMilliseconds(
        "faust_events_runtime_seconds",
        "Seconds an event took from its arrival to its ack.",
        registry=registry,
        buckets=tuple(ms / 1000 for ms in MS_LATENCY_BUCKETS),
    )
    app.monitor = PrometheusMonitor(metrics=made._replace(events_runtime_latency=runtime))
