"""Fan-out of one booster in one partition: commands exactly once, resumable (G2).

Commands are produced in Kafka transactions by a producer whose transactional id belongs to the
partition, so a worker that lost the partition is fenced the moment the new owner starts. Each
transaction also carries a progress record (the last recipient key covered and the running tally);
a restarted fan-out reads the committed progress and resumes after it, and the last transaction
carries the partition's summary as well. A read-committed consumer of booster.commands therefore sees
every command of a booster once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from booster.config import Settings
from booster.processors.audience import Decision, Mark, Tally, outcome_of
from booster.processors.boosters import Schedule, command_ids
from booster.processors.campaigns import CampaignPartition, called_off, cancelled_by
from booster.processors.frequency import MAX_CAP_WINDOW_MS, Sent
from booster.processors.packing import summary_to_dict, tally_of_record
from booster.processors.summaries import PartitionSummary
from booster.schemas import codec
from booster.schemas.catalog import audience_key
from booster.schemas.templates import CommandTemplate, OutcomeTemplate
from booster.streams.audience import decide_rows
from booster.streams.connect import client_options, started
from booster.streams.history import add_sent, counted_sends, next_offset, set_marker
from booster.streams.records import exit_for_restart, give_up_after, send_batches
from booster.streams.store import PartitionStore, recipient_key
from booster.streams.wire import progress_record

log = logging.getLogger(__name__)

Record = tuple[bytes, bytes, None]  # key, value, and no timestamp of its own (the producer stamps it)


@dataclass
class ProgressLog:
    """What this worker has read of one partition's booster.fanout-progress while it owns the
    partition: where to read on from, and the latest progress of each booster not fired since."""

    next_offset: int = 0
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    records_read: int = 0


@dataclass(frozen=True)
class FanoutResult:
    summary: PartitionSummary | None  # None when an earlier run had already finished
    commands: int
    # the offsets of booster.audience between which the booster's outcomes are (None: from the
    # partition's start, to its end), for its measurement
    outcomes: tuple[int | None, int | None] = (None, None)


PROGRESS_POLL_MS = 20


async def _nothing_to_flush() -> None:
    """Tables kept in memory (tests): nothing waits for a changelog."""


class Fanout(Service):
    """The fan-out producers (one per partition this worker fans out) and the progress reader; they
    start when first needed and stop with the worker."""

    def __init__(
        self,
        settings: Settings,
        app_id: str,
        give_up: Callable[[str, BaseException], NoReturn] = exit_for_restart,
        flush_tables: Callable[[], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.app_id = app_id
        self.give_up = give_up
        # the tables' changelog writes, flushed before the history's marker moves (`streams/history.py`)
        self.flush_tables = flush_tables or _nothing_to_flush
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._lock = asyncio.Lock()
        # one reader for the worker's life instead of a consumer started per fan-out
        self._progress_reader: AIOKafkaConsumer | None = None
        # read once per owned partition, then only what is new: the topic holds every booster ever
        # run there, and re-reading it at each fan-out made fire latency grow with uptime
        self.progress: dict[int, ProgressLog] = {}
        # per partition, where this worker's last commit marker in booster.audience is
        self._own_commit_at: dict[int, int] = {}

    def busy(self) -> bool:
        """Whether a fan-out (or the forgetting of one's progress) is under way."""
        return self._lock.locked()

    def _transactional_id(self, partition: int) -> str:
        return f"{self.app_id}-fanout-{partition}"

    async def producer_for(self, partition: int) -> AIOKafkaProducer:
        prod = self._producers.get(partition)
        if prod is None:
            prod = AIOKafkaProducer(
                **client_options(self.settings),
                transactional_id=self._transactional_id(partition),
                enable_idempotence=True,
                acks="all",
                linger_ms=5,
                max_batch_size=900 * 1024,  # under the broker's default message.max.bytes
                request_timeout_ms=int(self.settings.request_timeout * 1000),
            )
            # init_transactions: fences any earlier owner of this partition
            self._producers[partition] = await started(prod)
        return prod

    async def release(self, partitions: set[int]) -> None:
        for p in partitions:
            self.progress.pop(p, None)  # another owner may write it meanwhile
            self._own_commit_at.pop(p, None)
            prod = self._producers.pop(p, None)
            if prod is not None:
                try:
                    await prod.stop()
                except KafkaError as exc:
                    log.warning("stopping the fan-out producer of partition %s: %s", p, exc)

    async def on_stop(self) -> None:
        await self.release(set(self._producers))
        if self._progress_reader is not None:
            await self._progress_reader.stop()
            self._progress_reader = None

    async def load_progress(self, partition: int) -> dict[str, dict[str, Any]]:
        """The latest committed progress of every booster in a partition that has not fired since this
        worker took the partition."""
        known = self.progress.setdefault(partition, ProgressLog())

        def fold(msgs: list[Any]) -> None:
            for msg in msgs:
                known.records_read += 1
                if msg.value is None:  # a tombstone (`forget`): that booster is done with for good
                    known.latest.pop((msg.key or b"").decode(), None)
                    continue
                record = codec().decode("booster.fanout-progress", msg.value)
                known.latest[record["campaign_id"]] = record

        tp = TopicPartition(self.settings.topic("booster.fanout-progress"), partition)
        known.next_offset = await self._read_on(tp, known.next_offset, fold)
        return known.latest

    async def catch_up_history(self, partition: int, history: PartitionStore, now: int) -> int:
        """Bring the contacts' booster history up to the end of this partition of booster.audience
        (committed records): what a worker killed after a commit, or the partition's earlier owner,
        did not add (`streams/history.py`). How many outcomes it read."""
        read = 0

        def fold(msgs: list[Any]) -> None:
            nonlocal read
            read += len(msgs)
            outcomes = [codec().decode("booster.audience", m.value) for m in msgs if m.value is not None]
            add_sent(history, counted_sends(o for o in outcomes if o["deadline"] > now - MAX_CAP_WINDOW_MS), now)

        tp = TopicPartition(self.settings.topic("booster.audience"), partition)
        start = next_offset(history)
        end = await self._read_on(tp, start, fold, skip_marker_at=self._own_commit_at.get(partition))
        if end != start:
            if read:
                await self._flush_history(partition)
            set_marker(history, end)
        return read

    async def audience_end(self, partition: int) -> int:
        """The end of this partition of booster.audience (its last stable offset: read committed)."""
        return await self._end_of(TopicPartition(self.settings.topic("booster.audience"), partition))

    async def _end_of(self, tp: TopicPartition) -> int:
        """A partition's end (read committed), asked with the reader's fetches paused: a long-polling
        fetch of the partition assigned last would hold the offsets request behind it on the same
        connection (unsubscribe() or assign([]) instead can leave a group-less consumer whose stop()
        never returns, aiokafka 0.14.0)."""
        consumer = await self._reader()
        consumer.pause(*consumer.assignment())
        end: int = (await consumer.end_offsets([tp]))[tp]
        return end

    async def read_outcomes(
        self, partition: int, start: int | None, end: int | None, fold: Callable[[list[Any]], None]
    ) -> None:
        """Hand `fold` the committed records of this partition of booster.audience from `start` (None:
        its beginning) to `end` (None: its end now), a fetched batch at a time. Under the
        fan-out's lock: the two share a consumer."""
        tp = TopicPartition(self.settings.topic("booster.audience"), partition)
        async with self._lock:
            await self._read_on(tp, start or 0, fold, until=end)

    async def _reader(self) -> AIOKafkaConsumer:
        if self._progress_reader is None:
            reader = AIOKafkaConsumer(
                **client_options(self.settings),
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
                fetch_max_wait_ms=20,
            )
            self._progress_reader = await started(reader)
        return self._progress_reader

    async def _read_on(
        self,
        tp: TopicPartition,
        start: int,
        fold: Callable[[list[Any]], None],
        skip_marker_at: int | None = None,
        until: int | None = None,
    ) -> int:
        """Read a partition's committed records from `start` to its end, handing each fetched batch to
        `fold`; the offset to read on from next time. `skip_marker_at`: the offset of a transaction
        marker this worker wrote, not read when it is all there is (a fetch of it waits for nothing).
        `until`: read only the records before this offset."""
        end = await self._end_of(tp)  # the end first
        consumer = await self._reader()
        if until is not None:
            end = min(end, until)
        if end <= start or (start == skip_marker_at and end == start + 1):
            return end
        consumer.assign([tp])
        if start == 0:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, start)
        while await consumer.position(tp) < end:
            # short polls: what is left may be only a transaction marker, which moves the position but
            # yields no record, and getmany would wait its whole timeout for one (0.5 s per fan-out)
            batch = await consumer.getmany(tp, timeout_ms=PROGRESS_POLL_MS)
            msgs = batch.get(tp, [])
            if until is not None:  # (the others fold what came after the end too: they read on from there)
                msgs = [m for m in msgs if m.offset < until]
            if msgs:
                fold(msgs)
        position: int = await consumer.position(tp)
        return position

    def _forget_progress(self, partition: int, campaign_id: str, last_offset: int) -> None:
        """A booster fired here: its progress is not needed again while this worker owns the
        partition (the campaign's state says fired), nor are the records this fan-out wrote up to
        `last_offset`, the only ones written meanwhile (the partition's transactional id fences any
        other writer). The end offset is no substitute: a transaction's markers, which move it, are
        written after the commit returns."""
        known = self.progress.get(partition)
        if known is None:
            return
        known.latest.pop(campaign_id, None)
        known.next_offset = max(known.next_offset, last_offset + 1)

    async def forget(self, campaign_id: str, partition: int) -> None:
        """A tombstone for a booster's progress in this partition, so compaction drops it: called once
        its campaign state is forgotten (the longest window after its deadline), when no fan-out of it
        can run again. Written with the partition's transactional producer, after any fan-out under way."""
        async with self._lock:
            try:
                prod = await self.producer_for(partition)
                offset, _ = await self._commit(campaign_id, partition, self._tombstone(prod, partition, campaign_id))
                self._forget_progress(partition, campaign_id, offset)
            except KafkaError as exc:  # only retention is lost: the record stays until the next try
                await self.release({partition})
                log.warning("forgetting the fan-out progress of %s in partition %s: %s", campaign_id, partition, exc)

    async def _tombstone(self, prod: AIOKafkaProducer, partition: int, campaign_id: str) -> tuple[int, None]:
        topic = self.settings.topic("booster.fanout-progress")
        async with prod.transaction():
            sent = await prod.send(topic, value=None, key=campaign_id.encode(), partition=partition)
        offset: int = (await sent).offset
        return offset, None

    async def run(
        self,
        *,
        state: CampaignPartition,
        partition: int,
        recipients: PartitionStore,
        contacts: PartitionStore,
        history: PartitionStore,
        now: int,
    ) -> FanoutResult:
        schedule = state.schedule
        assert schedule is not None
        async with self._lock:
            try:
                return await self._run(schedule, state, partition, recipients, contacts, history, now)
            except KafkaError:
                # a fenced or broken producer is not reused; the next tick starts a fresh one
                await self.release({partition})
                raise

    async def _run(
        self,
        schedule: Schedule,
        state: CampaignPartition,
        partition: int,
        recipients: PartitionStore,
        contacts: PartitionStore,
        history: PartitionStore,
        now: int,
    ) -> FanoutResult:
        cid = schedule.campaign_id
        prod = await self.producer_for(partition)
        capped = schedule.frequency_cap is not None
        if capped:  # only a capped booster reads or writes the history: the others run as before the cap
            await self.catch_up_history(partition, history, now)
        progress = (await self.load_progress(partition)).get(cid)
        if progress is not None and progress["done"]:
            return FanoutResult(None, 0, (progress.get("outcomes_from"), None))
        tally = Tally()
        after = None
        # every outcome this fan-out writes comes after the end of the partition now: the partition's
        # transactional producer fences every other writer
        outcomes_from = await self.audience_end(partition) if progress is None else progress.get("outcomes_from")
        if progress is not None:
            tally = tally_of_record(progress)
            if progress["last_key"] is not None:
                after = recipient_key(cid, progress["last_key"])
            log.info("booster %s partition %s: resuming fan-out after %s", cid, partition, progress["last_key"])
        template = CommandTemplate(
            booster_id=schedule.booster_id,
            booster_name=schedule.booster_name,
            campaign_id=cid,
            account_id=schedule.account_id,
            channel=schedule.channel,
            content_ref=schedule.content_ref,
            deadline=schedule.deadline,
            issued_at=now,
        )
        booster_id = schedule.booster_id
        command_id_for = command_ids(booster_id)
        outcome_template = OutcomeTemplate(
            booster_id=booster_id,
            campaign_id=cid,
            account_id=schedule.account_id,
            deadline=schedule.deadline,
            decided_at=now,
            frequency_capped=capped,
        )
        chunk_size = self.settings.fanout_chunk
        batch: list[Record] = []
        outcomes: list[Record] = []  # R16: each recipient's outcome, in the same transactions
        sent: dict[bytes, list[Sent]] = {}  # of a capped booster: its sends, the contacts' history
        counted = 0  # sends added to the history by the committed transactions before the last
        read: dict[bytes, tuple[Sent, ...]] = {}  # the history rows the walk read, for `add_sent`
        outcomes_end: int | None = None  # the offset after this fan-out's last committed outcome
        sent_entry = [(schedule.deadline, booster_id)]
        # a chunk's rows counted by decision and marks, added to the tally at its end (`Tally.count_all`)
        counts: dict[tuple[Decision, tuple[Mark, ...]], int] = {}
        walked = 0
        commands = 0
        last_contact: str | None = progress["last_key"] if progress else None
        reason = called_off(state)  # as the booster's one decision says (R13)
        if reason is None:
            # quiet hours are judged when the commands are issued: a worker that fires late judges its own time
            rows = decide_rows(
                recipients, contacts, schedule, schedule.deadline, after,
                issued_at=max(now, schedule.deadline), history=history, histories_read=read,
            )  # fmt: skip
            for contact_id, decision, marks, send_after in rows:
                last_contact = contact_id
                walked += 1
                counts[(decision, marks)] = counts.get((decision, marks), 0) + 1
                command_id = None
                if decision is None:  # eligible: not excluded, and a recipient
                    command_id = command_id_for(contact_id)
                    batch.append((contact_id.encode(), template.encode(command_id, contact_id, send_after), None))
                    if capped:
                        sent[contact_id.encode()] = sent_entry
                if (outcome := outcome_of(decision)) is not None:
                    value = outcome_template.encode(contact_id, outcome, command_id)
                    outcomes.append((audience_key(booster_id, contact_id), value, None))
                if walked >= chunk_size:
                    commands += len(batch)
                    tally = tally.count_all(counts)
                    counts = {}
                    progress_value = progress_record(cid, partition, last_contact, False, tally, outcomes_from)
                    chunk = self._transaction(prod, partition, cid, batch, outcomes, progress_value)
                    _, chunk_end = await self._commit(cid, partition, chunk)
                    outcomes_end = chunk_end or outcomes_end
                    if capped:
                        add_sent(history, sent, now, read)  # the marker moves once, at the end (`_add_history`)
                        counted += len(sent)
                        read.clear()
                    batch = []
                    outcomes = []
                    sent = {}
                    walked = 0
        tally = tally.count_all(counts)
        summary = PartitionSummary(
            campaign_id=cid,
            partition=partition,
            partitions=self.settings.partitions,
            schedule=schedule,
            cancelled_at=cancelled_by(state),
            cancel_reason=reason,
            tally=tally,
        )
        commands += len(batch)
        done = progress_record(cid, partition, last_contact, True, tally, outcomes_from)
        last = self._transaction(prod, partition, cid, batch, outcomes, done, summary)
        last_offset, chunk_end = await self._commit(cid, partition, last)
        if capped:
            add_sent(history, sent, now, read)
            await self._add_history(partition, history, counted + len(sent), chunk_end or outcomes_end)
        self._forget_progress(partition, cid, last_offset)
        # a fresh fan-out that wrote no outcome has none; a resumed one may have, before the crash
        outcomes_to = chunk_end or outcomes_end or (outcomes_from if progress is None else None)
        return FanoutResult(summary, commands, (outcomes_from, outcomes_to))

    async def _add_history(self, partition: int, history: PartitionStore, added: int, end: int | None) -> None:
        """The marker past a fan-out's outcomes once the sends it added to the contacts' rows are in the
        changelog (a worker killed before reads them from booster.audience instead, `catch_up_history`):
        one flush per partition's fan-out, not per transaction."""
        if end is None:
            return
        if added:
            await self._flush_history(partition)
        set_marker(history, end)
        # what follows in the partition is this transaction's commit marker, and then nothing until
        # this worker writes again: the partition's transactional producer fences every other writer
        self._own_commit_at[partition] = end

    async def _flush_history(self, partition: int) -> None:
        """The history rows' changelog writes, before the marker: bounded like a commit (a broker that
        does not answer for BOOSTER_RETRY_SECONDS ends the worker; the restarted one reads the sends
        back from booster.audience)."""
        what = f"writing the frequency-cap history of partition {partition} to its changelog"
        await give_up_after(self.settings.retry_seconds, what, self.flush_tables(), self.give_up)

    async def _commit(
        self, campaign_id: str, partition: int, transaction: Awaitable[tuple[int, int | None]]
    ) -> tuple[int, int | None]:
        """A chunk's transaction (`_transaction`). A broker that does not answer for BOOSTER_RETRY_SECONDS
        ends the worker (an idempotent producer waits for as long as the broker is away): the restarted
        worker resumes after the last committed chunk, and its producer fences this one's open
        transaction."""
        what = f"committing a fan-out chunk of {campaign_id} in partition {partition}"
        return await give_up_after(self.settings.retry_seconds, what, transaction, self.give_up)

    async def _transaction(
        self,
        prod: AIOKafkaProducer,
        partition: int,
        campaign_id: str,
        batch: list[Record],
        outcomes: list[Record],
        progress: dict[str, Any],
        summary: PartitionSummary | None = None,
    ) -> tuple[int, int | None]:
        """Commands, outcomes, progress and summary in one transaction; returns the progress record's
        offset, and the offset after the last outcome (None without outcomes)."""
        s = self.settings
        c = codec()
        async with prod.transaction():
            # contacts of this partition are keyed to the same partition of booster.commands and
            # booster.audience (co-partitioned)
            await send_batches(prod, s.topic("booster.commands"), partition, batch)
            outcomes_sent = await send_batches(prod, s.topic("booster.audience"), partition, outcomes)
            progress_sent = await prod.send(
                s.topic("booster.fanout-progress"),
                value=c.encode("booster.fanout-progress", progress),
                key=campaign_id.encode(),
                partition=partition,
            )
            if summary is not None:
                await prod.send(
                    s.topic("booster.summaries"),
                    value=c.encode("booster.summaries", summary_to_dict(summary)),
                    key=campaign_id.encode(),
                )
        offset: int = (await progress_sent).offset  # delivered: the transaction is committed
        outcomes_end = None
        if outcomes_sent:
            last_batch, count = outcomes_sent[-1]
            outcomes_end = (await last_batch).offset + count  # a batch's future gives its first offset
        return offset, outcomes_end
