"""The Faust app: topics, tables, agents and the deadline timer. Thin wiring around processors/.

Records come in as raw bytes and are decoded by our codec, so a bad record goes to the dead-letter
topic instead of crashing an agent (Faust's own serializers would ack it and crash).

Flow: contact-keyed events fold into `recipients` (per campaign and contact) and `contacts`; launches
are re-keyed by account to meet `account.channels`, validated, and an accepted schedule is broadcast
to every partition of `booster.control`; the timer looks at the campaigns of its active partitions and,
once a deadline is due and the lag gate is open, sends a tick into that partition; the control agent
fans out inside stream iteration (so it may delete the rows after) and the per-partition summaries
are merged into one final report by the summaries agent.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import faust
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer

from booster.config import Settings
from booster.errors import DecodeError
from booster.processors import boosters as b
from booster.processors.events import (
    AccountChannels,
    BoosterCancelled,
    contact_event_from_record,
    launch_from_record,
    message_event_from_record,
)
from booster.processors.packing import (
    pack_campaign,
    pack_contact,
    pack_recipient,
    unpack_campaign,
    unpack_contact,
    unpack_recipient,
)
from booster.processors.recipients import Exclusion, evolve_contact, evolve_recipient, explain
from booster.schemas import codec
from booster.schemas.catalog import CONTACT_INPUT_TOPICS, LAUNCHES_BY_ACCOUNT
from booster.streams.audience import NOT_A_RECIPIENT, decide_rows, facts_of
from booster.streams.fanout import Fanout
from booster.streams.gate import LagGate
from booster.streams.metrics import Metrics
from booster.streams.tables import (
    ChangelogSink,
    PartitionWriter,
    campaign_key,
    estimated_keys,
    partition_items,
    recipient_key,
    recipient_prefix,
    split_campaign_key,
)
from booster.streams.wire import control_record, report_record, schedule_of, summary_of

log = logging.getLogger("booster.worker")
decisions = logging.getLogger("booster.decisions")


def raw_schema() -> faust.Schema:  # type: ignore[type-arg]
    """Bytes in, bytes out: decoding is ours, so a bad record cannot crash an agent."""
    return faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


RETICK_SECONDS = 15.0  # a tick not done by then (lost, failed fan-out) is sent again
INGEST_BATCH = 2000  # events folded per batch; their changelog is flushed before they are acked
INGEST_WITHIN = 0.05  # seconds a partial batch waits for more events
CONSUMER_MAX_POLL_RECORDS = 5000
CONSUMER_BUFFER = 16384
MIB = 1024 * 1024
ROCKSDB_LARGE = {"write_buffer_size": 16 * MIB, "max_write_buffer_number": 2, "block_cache_size": 32 * MIB}
ROCKSDB_SMALL = {"write_buffer_size": 2 * MIB, "max_write_buffer_number": 2, "block_cache_size": 2 * MIB}


@dataclass
class _IngestBatch:
    """Rows changed by one batch of events, per partition, written once at the end of the batch."""

    recipients: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    contacts: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    campaigns: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    dead: list[tuple[Any, str, str]] = field(default_factory=list)
    dropped: int = 0


def now_ms() -> int:
    return int(time.time() * 1000)


def log_decision(event: str, campaign_id: str, **fields: Any) -> None:
    """One searchable line per booster decision."""
    decisions.info(json.dumps({"event": event, "campaign_id": campaign_id, **fields}, sort_keys=True))


class _ReadCommittedThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust reads committed records only in its exactly_once mode, which we do not use; the
        # fan-out's summaries are transactional and an aborted one must never be merged.
        consumer._isolation_level = "read_committed"
        return consumer


class ReadCommittedConsumer(FaustConsumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)


class BoosterApp:
    def __init__(self, settings: Settings, datadir: Path | None = None) -> None:
        self.settings = settings
        s = settings
        self.app_id = f"{s.topic_prefix}{s.app_id}"
        self.datadir = datadir or s.home / "workers" / self.app_id / str(s.web_port)
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            self.app_id,
            broker=f"kafka://{s.broker}",
            store=s.store,
            datadir=str(self.datadir),
            topic_partitions=s.partitions,
            topic_replication_factor=1,
            consumer_auto_offset_reset="earliest",
            web_port=s.web_port,
            web_bind="127.0.0.1",
            web_host="127.0.0.1",
            producer_acks=-1,
            broker_commit_interval=1.0,
            table_standby_replicas=0,
            # a killed worker's partitions move after this long (Faust's default is 60 s)
            broker_session_timeout=s.session_timeout,
            broker_heartbeat_interval=min(3.0, s.session_timeout / 3),
            # bigger fetches and buffers: fewer wake-ups per event on the hot ingest path
            broker_max_poll_records=CONSUMER_MAX_POLL_RECORDS,
            stream_buffer_maxsize=CONSUMER_BUFFER,
        )
        self.app.transport.Consumer = ReadCommittedConsumer  # type: ignore[misc]
        self.metrics = Metrics()
        self.gate = LagGate(s.broker, self.app_id)
        self.fanout = Fanout(s, self.app_id)
        self._ticked: dict[tuple[str, int], float] = {}
        self._waiting_logged: dict[tuple[str, int], float] = {}
        self._gate_snapshots: dict[tuple[str, int], dict[TopicPartition, int]] = {}
        # campaign states read by ingestion; every write of a campaign state updates it
        self._campaign_cache: dict[tuple[str, int], b.CampaignPartition | None] = {}
        self._wire()

    # -- naming ----------------------------------------------------------------------------------

    def contract_name(self, real: str) -> str:
        prefix = self.settings.topic_prefix
        return real[len(prefix) :] if prefix and real.startswith(prefix) else real

    def _topic(self, *names: str) -> Any:
        return self.app.topic(*[self.settings.topic(n) for n in names], schema=raw_schema())

    # -- wiring ----------------------------------------------------------------------------------

    def _wire(self) -> None:
        app, s = self.app, self.settings
        # key_type/value_type bytes make Faust store and changelog our bytes as they are
        table: dict[str, Any] = {"partitions": s.partitions, "key_type": bytes, "value_type": bytes}
        # RocksDB's memory is bounded per database (one per table and partition): Faust's defaults
        # (64 MiB x 3 write buffers, a 2 GiB block cache each) would let it grow with the state
        big = {**table, "options": ROCKSDB_LARGE}
        small = {**table, "options": ROCKSDB_SMALL}
        self.recipients = app.Table("recipients", **big)
        self.contacts = app.Table("contacts", **big)
        self.campaigns = app.Table("campaigns", **small)
        self.accounts = app.Table("accounts", **small)
        self.pending = app.Table("pending-launches", **small)
        self.launch_decisions = app.Table("launch-decisions", **small)
        self.summaries = app.Table("summaries", **small)
        self.changelog = ChangelogSink(s.broker)
        self.recipient_writer = PartitionWriter(self.recipients, self.changelog)
        self.contact_writer = PartitionWriter(self.contacts, self.changelog)
        self.campaign_writer = PartitionWriter(self.campaigns, self.changelog)

        self.contact_inputs = self._topic(*CONTACT_INPUT_TOPICS)
        self.launch_inputs = self._topic("campaign.launched", "campaign.booster-cancelled")
        self.account_inputs = self._topic("account.channels", LAUNCHES_BY_ACCOUNT)
        self.control = self._topic("booster.control")
        self.summary_inputs = self._topic("booster.summaries")
        self.reports = self._topic("booster.reports")
        self.dead_letters = self._topic("booster.dead-letter")
        self.by_account = self._topic(LAUNCHES_BY_ACCOUNT)

        app.agent(self.contact_inputs, name="booster.ingest")(self._ingest_agent)
        app.agent(self.launch_inputs, name="booster.launches")(self._launches_agent)
        app.agent(self.account_inputs, name="booster.accounts")(self._accounts_agent)
        app.agent(self.control, name="booster.control")(self._control_agent)
        app.agent(self.summary_inputs, name="booster.summaries")(self._summaries_agent)
        app.timer(s.tick_interval, name="booster.deadlines")(self._deadline_timer)
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        booster = self

        # Faust binds a page handler to its view class: a plain function, not a bound method
        async def metrics_page(view: Any, request: Any) -> Any:
            return await booster.metrics_response(view)

        app.page("/metrics")(metrics_page)

        async def audience_page(view: Any, request: Any, campaign_id: str) -> Any:
            contact = request.query.get("contact") or None
            local = booster.audience_local(campaign_id, contact)
            if request.query.get("scope") == "local":
                return view.json(local)
            return view.json(await booster.audience_cluster(campaign_id, contact, local))

        app.page("/booster/audience/{campaign_id}/")(audience_page)

    async def metrics_response(self, view: Any) -> Any:
        try:
            await self.refresh_gauges()
        except KafkaError as exc:  # the counters are still worth serving
            log.warning("could not measure lag for /metrics: %s", exc)
        return view.text(self.metrics.render(), content_type="text/plain; version=0.0.4")

    async def refresh_gauges(self) -> None:
        s = self.settings
        partitions = self.active_partitions()
        tps = [TopicPartition(s.topic(t), p) for p in partitions for t in CONTACT_INPUT_TOPICS]
        lag = await self.gate.lagging(tps) if tps else {}
        self.metrics.clear("booster_partition_lag")
        for tp in tps:
            self.metrics.set(
                "booster_partition_lag", lag.get(tp, 0), topic=self.contract_name(tp.topic), partition=tp.partition
            )
        for name, table in (
            ("recipients", self.recipients),
            ("contacts", self.contacts),
            ("campaigns", self.campaigns),
        ):
            self.metrics.set("booster_table_keys", estimated_keys(table, partitions), table=name)

    async def _on_revoked(self, sender: Any, revoked: set[Any], **_: Any) -> None:
        self._campaign_cache.clear()
        self._gate_snapshots.clear()
        control = self.settings.topic("booster.control")
        await self.fanout.release({tp.partition for tp in revoked if tp.topic == control})
        self.gate.forget(TopicPartition(tp.topic, tp.partition) for tp in revoked)

    # -- shared steps ----------------------------------------------------------------------------

    async def _dead_letter(self, message: Any, reason: str, kind: str) -> None:
        record = {
            "source_topic": self.contract_name(message.topic),
            "partition": message.partition,
            "offset": message.offset,
            "key": message.key,
            "value": message.value,
            "error": reason,
            "kind": kind,
            "failed_at": now_ms(),
        }
        await self.dead_letters.send(key=message.key, value=codec().encode("booster.dead-letter", record))
        self.metrics.inc("booster_dead_letters_total", topic=self.contract_name(message.topic), kind=kind)
        log.warning("dead letter from %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason)

    async def _guarded(self, event: Any, handler: Any) -> None:
        """Run a handler; any failure of one record sends it to the dead-letter topic (G4)."""
        message = event.message
        topic = self.contract_name(message.topic)
        try:
            await handler(topic, message)
            await self.changelog.flush()
            self.metrics.inc("booster_events_total", topic=topic)
        except DecodeError as exc:
            await self._dead_letter(message, exc.reason, exc.kind)
        except Exception as exc:  # one record must never stop its partition
            log.exception("processing %s[%s]@%s failed", message.topic, message.partition, message.offset)
            await self._dead_letter(message, f"unexpected {type(exc).__name__}: {exc}", "unexpected")
        self.gate.record(message.topic, message.partition, message.offset)

    @staticmethod
    def _key_text(message: Any, record: dict[str, Any], field: str) -> str:
        if not message.key:
            raise DecodeError("empty key", kind="bad_key")
        try:
            key: str = message.key.decode()
        except UnicodeDecodeError:
            raise DecodeError("key is not UTF-8", kind="bad_key") from None
        if key != record[field]:
            raise DecodeError(f"key {key!r} does not match {field} {record[field]!r}", kind="bad_key")
        return key

    async def _broadcast(self, kind: str, campaign_id: str, at: int, schedule: b.Schedule | None = None) -> None:
        value = codec().encode("booster.control", control_record(kind, campaign_id, at, schedule))
        for p in range(self.settings.partitions):
            await self.control.send(key=campaign_id.encode(), value=value, partition=p)

    async def _report(self, report: b.Report) -> None:
        value = codec().encode("booster.reports", report_record(report))
        await self.reports.send(key=report.campaign_id.encode(), value=value)
        self.metrics.inc("booster_boosters_total", status=report.status.lower())
        log_decision(
            report.status.lower(),
            report.campaign_id,
            booster_id=report.booster_id,
            reason=report.reason,
            deadline=report.deadline,
            audience=report.audience,
            excluded={k: v for k, v in report.excluded.items() if v},
        )

    def _delete_rows(self, campaign_id: str, partition: int) -> int:
        keys = [k for k, _ in partition_items(self.recipients, partition, recipient_prefix(campaign_id))]
        self.recipient_writer.write(partition, dict.fromkeys(keys))
        return len(keys)

    def _campaign(self, campaign_id: str, partition: int) -> b.CampaignPartition | None:
        raw = self.campaign_writer.get(partition, campaign_key(campaign_id, partition))
        return None if raw is None else unpack_campaign(raw)

    def _set_campaign(self, campaign_id: str, partition: int, state: b.CampaignPartition | None) -> None:
        key = campaign_key(campaign_id, partition)
        self.campaign_writer.write(partition, {key: None if state is None else pack_campaign(state)})
        self._campaign_cache[(campaign_id, partition)] = state

    # -- agents ----------------------------------------------------------------------------------

    async def _ingest_agent(self, stream: Any) -> None:
        # Batches: one take of up to INGEST_BATCH events costs Faust's per-event overhead once per
        # event but lets us decode, fold and write without a table round trip per event.
        async for events in stream.take_events(INGEST_BATCH, within=INGEST_WITHIN):
            await self._ingest_batch(events)

    async def _ingest_batch(self, events: list[Any]) -> None:
        batch = _IngestBatch()
        counts: dict[str, int] = {}
        for event in events:
            message = event.message
            topic = self.contract_name(message.topic)
            try:
                self._ingest_one(topic, message, batch)
                counts[topic] = counts.get(topic, 0) + 1
            except DecodeError as exc:
                batch.dead.append((message, exc.reason, exc.kind))
            except Exception as exc:  # one record must never stop its partition
                log.exception("processing %s[%s]@%s failed", message.topic, message.partition, message.offset)
                batch.dead.append((message, f"unexpected {type(exc).__name__}: {exc}", "unexpected"))
        for p, items in batch.recipients.items():
            self.recipient_writer.write(p, items)
        for p, items in batch.contacts.items():
            self.contact_writer.write(p, items)
        for p, items in batch.campaigns.items():
            self.campaign_writer.write(p, items)
        await self.changelog.flush()
        for message, reason, kind in batch.dead:
            await self._dead_letter(message, reason, kind)
        for topic, n in counts.items():
            self.metrics.inc("booster_events_total", n, topic=topic)
        if batch.dropped:
            self.metrics.inc("booster_events_dropped_total", batch.dropped)
        for event in events:  # only now are their effects in the tables
            m = event.message
            self.gate.record(m.topic, m.partition, m.offset)

    def _cached_campaign(self, campaign_id: str, p: int) -> b.CampaignPartition | None:
        key = (campaign_id, p)
        if key in self._campaign_cache:
            return self._campaign_cache[key]
        raw = self.campaign_writer.get(p, campaign_key(campaign_id, p))
        state = None if raw is None else unpack_campaign(raw)
        self._campaign_cache[key] = state
        return state

    def _ingest_one(self, topic: str, message: Any, batch: _IngestBatch) -> None:
        record = codec().decode(topic, message.value)
        self._key_text(message, record, "contact_id")
        p = message.partition
        if topic.startswith("message."):
            ev = message_event_from_record(topic, record)
            state = self._cached_campaign(ev.campaign_id, p)
            if not b.accepts_events(state):
                batch.dropped += 1
                return
            if state is None or state.first_seen_at is None:
                seen = b.evolve_campaign_seen(state, int(message.timestamp * 1000))
                self._campaign_cache[(ev.campaign_id, p)] = seen
                batch.campaigns.setdefault(p, {})[campaign_key(ev.campaign_id, p)] = pack_campaign(seen)
            key = recipient_key(ev.campaign_id, ev.contact_id)
            rows = batch.recipients.setdefault(p, {})
            old = rows[key] if key in rows else self.recipient_writer.get(p, key)
            new = pack_recipient(evolve_recipient(None if old is None else unpack_recipient(old), ev))
            if new != old:
                rows[key] = new
        else:
            cev = contact_event_from_record(topic, record)
            key = cev.contact_id.encode()
            rows = batch.contacts.setdefault(p, {})
            old = rows[key] if key in rows else self.contact_writer.get(p, key)
            new = pack_contact(evolve_contact(None if old is None else unpack_contact(old), cev))
            if new != old:
                rows[key] = new

    async def _launches_agent(self, stream: Any) -> None:
        async for event in stream.events():
            await self._guarded(event, self._launch_or_cancel)

    async def _launch_or_cancel(self, topic: str, message: Any) -> None:
        record = codec().decode(topic, message.value)
        campaign_id = self._key_text(message, record, "campaign_id")
        if topic == "campaign.launched":
            await self.by_account.send(key=record["account_id"].encode(), value=message.value)
        else:
            await self._broadcast("CANCEL", campaign_id, record["cancelled_at"])
            log_decision("cancel-requested", campaign_id, cancelled_at=record["cancelled_at"])

    async def _accounts_agent(self, stream: Any) -> None:
        async for event in stream.events():
            await self._guarded(event, self._account_or_launch)

    async def _account_or_launch(self, topic: str, message: Any) -> None:
        if topic == "account.channels":
            record = codec().decode(topic, message.value)
            account_id = self._key_text(message, record, "account_id")
            incoming = AccountChannels(account_id, frozenset(record["channels"]), record["updated_at"])
            old = self.accounts.get(account_id.encode())
            current = None if old is None else _unpack_account(account_id, old)
            state = b.evolve_account(current, incoming)
            self.accounts[account_id.encode()] = _pack_account(state)
            prefix = f"{account_id}\x1f".encode()
            waiting = list(partition_items(self.pending, message.partition, prefix))
            for key, raw in waiting:
                del self.pending[key]
                await self._decide_launch(launch_from_record(codec().decode("campaign.launched", raw)), state)
            return
        record = codec().decode("campaign.launched", message.value)
        account_id = self._key_text(message, record, "account_id")
        launch = launch_from_record(record)
        if self.launch_decisions.get(launch.campaign_id.encode()) is not None:
            self.metrics.inc("booster_duplicate_launches_total")
            return
        raw_account = self.accounts.get(account_id.encode())
        if raw_account is None:
            # R3 needs the account's channels; decide when they arrive (topics are not ordered)
            self.pending[f"{account_id}\x1f{launch.campaign_id}".encode()] = message.value
            log_decision("pending-account", launch.campaign_id, account_id=account_id)
            return
        await self._decide_launch(launch, _unpack_account(account_id, raw_account))

    async def _decide_launch(self, launch: Any, account: AccountChannels) -> None:
        decision = b.decide_launch(launch, account)
        if isinstance(decision, b.NoBooster):
            await self._broadcast("NO_BOOSTER", launch.campaign_id, launch.launched_at)
            status = "NONE"
        elif isinstance(decision, b.Refused):
            await self._report(decision.report)
            status = decision.report.status
        else:
            await self._broadcast("SCHEDULE", launch.campaign_id, launch.launched_at, decision.schedule)
            await self._report(decision.report)
            status = "SCHEDULED"
        self.launch_decisions[launch.campaign_id.encode()] = status.encode()

    async def _control_agent(self, stream: Any) -> None:
        async for event in stream.events():
            await self._guarded(event, self._control)

    async def _control(self, topic: str, message: Any) -> None:
        record = codec().decode(topic, message.value)
        campaign_id = self._key_text(message, record, "campaign_id")
        p = message.partition
        state = self._campaign(campaign_id, p)
        kind = record["kind"]
        if kind == "SCHEDULE":
            new = b.evolve_campaign_schedule(state, schedule_of(campaign_id, record["schedule"]))
        elif kind == "CANCEL":
            new = b.evolve_campaign_cancel(state, BoosterCancelled(campaign_id, record["at"]))
        elif kind == "NO_BOOSTER":
            self._delete_rows(campaign_id, p)
            new = replace(b.evolve_campaign_seen(state, record["at"]), no_booster=True)
        else:
            await self._tick(campaign_id, p, state)
            return
        if new != state:
            self._set_campaign(campaign_id, p, new)

    async def _tick(self, campaign_id: str, p: int, state: b.CampaignPartition | None) -> None:
        if state is None:
            return
        now = now_ms()
        due = b.due(state, now, self.settings.allowed_lateness_ms)
        if due is None:
            return
        if due.kind == "forget":
            self._set_campaign(campaign_id, p, None)
            return
        if due.kind == "expire":
            dropped = self._delete_rows(campaign_id, p)
            self._set_campaign(campaign_id, p, None)
            log_decision("expired-without-booster", campaign_id, partition=p, rows=dropped)
            return
        started = time.monotonic()
        try:
            result = await self.fanout.run(
                state=state, partition=p, recipients=self.recipients, contacts=self.contacts, now=now
            )
        except KafkaError as exc:
            log.warning("fan-out of %s in partition %s failed (%s); it will be retried", campaign_id, p, exc)
            self._ticked.pop((campaign_id, p), None)
            return
        rows = self._delete_rows(campaign_id, p)
        self._set_campaign(campaign_id, p, replace(state, fired=True))
        self.metrics.inc("booster_commands_total", result.commands)
        self.metrics.inc("booster_fanouts_total")
        if state.schedule is not None:
            self.metrics.inc("booster_fire_delay_seconds_sum", max(0, now - state.schedule.deadline) / 1000)
            self.metrics.inc("booster_fire_delay_seconds_count")
        summary = result.summary
        log_decision(
            "fired-partition",
            campaign_id,
            partition=p,
            commands=result.commands,
            audience=None if summary is None else summary.tally.audience,
            rows_deleted=rows,
            seconds=round(time.monotonic() - started, 3),
            late_by_ms=now - (state.schedule.deadline if state.schedule else now),
        )

    async def _summaries_agent(self, stream: Any) -> None:
        async for event in stream.events():
            await self._guarded(event, self._summary)

    async def _summary(self, topic: str, message: Any) -> None:
        record = codec().decode(topic, message.value)
        campaign_id = self._key_text(message, record, "campaign_id")
        key = campaign_id.encode()
        raw = self.summaries.get(key)
        stored: dict[str, Any] = {"done": False, "parts": {}} if raw is None else json.loads(raw)
        if stored["done"]:
            return
        stored["parts"].setdefault(str(record["partition"]), record)
        report = b.final_report(summary_of(r) for r in stored["parts"].values())
        if report is not None:
            await self._report(report)
            stored = {"done": True, "parts": {}}
        self.summaries[key] = json.dumps(stored, separators=(",", ":")).encode()

    # -- the operators' preview ---------------------------------------------------------------

    def audience_local(self, campaign_id: str, contact_id: str | None) -> dict[str, Any]:
        """Who would get the booster if it fired now, over this worker's active partitions."""
        now = now_ms()
        partitions = self.active_partitions()
        states = {p: self._campaign(campaign_id, p) for p in partitions}
        schedules = [st.schedule for st in states.values() if st is not None and st.schedule is not None]
        schedule = schedules[0] if schedules else None
        out: dict[str, Any] = {
            "campaign_id": campaign_id,
            "workers": [str(self.app.conf.canonical_url)],
            "partitions": partitions,
            "scheduled": schedule is not None,
            "deadline": None if schedule is None else schedule.deadline,
            "fired_partitions": sorted(p for p, st in states.items() if st is not None and st.fired),
            "cancelled": any(st is not None and b.is_cancelled(st) for st in states.values()),
            "evaluated_at": now,
            "audience": 0,
            "recipients": 0,
            "excluded": b.full_exclusions({}),
            "contact": None,
        }
        if schedule is None:
            return out
        at = min(now, schedule.deadline)
        out["evaluated_at"] = at
        tally = b.Tally()
        for p in partitions:
            for _contact_id, decision in decide_rows(self.recipients, self.contacts, p, schedule, at):
                if decision != NOT_A_RECIPIENT:
                    tally = tally.add(decision if isinstance(decision, Exclusion) else None)
            if contact_id is not None and p == contact_partition(contact_id, self.settings.partitions):
                recipient, contact = facts_of(self.recipients, self.contacts, p, campaign_id, contact_id)
                reason, included, why = explain(
                    recipient,
                    contact,
                    campaign_id=campaign_id,
                    channel=schedule.channel,
                    criterion=schedule.criterion,
                    at=at,
                )
                out["contact"] = {
                    "contact_id": contact_id,
                    "partition": p,
                    "in_audience": included,
                    "reason": None if reason is None else reason.value,
                    "why": why,
                }
        out["audience"] = tally.audience
        out["recipients"] = tally.audience + sum(tally.excluded.values())
        out["excluded"] = b.full_exclusions(tally.excluded)
        return out

    async def audience_cluster(self, campaign_id: str, contact_id: str | None, local: dict[str, Any]) -> dict[str, Any]:
        """The local preview merged with every other worker's (each owns some partitions)."""
        import aiohttp

        me = str(self.app.conf.canonical_url).rstrip("/")
        hosts = {str(url).rstrip("/") for url in self.app.router.tables_metadata()} - {me}
        merged = dict(local)
        params = {"scope": "local", **({"contact": contact_id} if contact_id else {})}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            for host in sorted(hosts):
                async with session.get(f"{host}/booster/audience/{campaign_id}/", params=params) as response:
                    part = await response.json()
                merged["workers"] = merged["workers"] + part["workers"]
                merged["partitions"] = sorted(merged["partitions"] + part["partitions"])
                merged["fired_partitions"] = sorted(merged["fired_partitions"] + part["fired_partitions"])
                merged["cancelled"] = merged["cancelled"] or part["cancelled"]
                if not merged["scheduled"] and part["scheduled"]:
                    merged.update(scheduled=True, deadline=part["deadline"], evaluated_at=part["evaluated_at"])
                merged["audience"] += part["audience"]
                merged["recipients"] += part["recipients"]
                merged["excluded"] = {k: v + part["excluded"].get(k, 0) for k, v in merged["excluded"].items()}
                if part["contact"] is not None:
                    merged["contact"] = part["contact"]
        return merged

    # -- the deadline timer ----------------------------------------------------------------------

    def gate_inputs(self, partition: int) -> list[TopicPartition]:
        s = self.settings
        tps = [TopicPartition(s.topic(t), partition) for t in CONTACT_INPUT_TOPICS]
        tps.append(TopicPartition(s.topic("booster.control"), partition))
        # a cancellation reaches this partition through one of these, then booster.control
        tps += [TopicPartition(s.topic("campaign.booster-cancelled"), q) for q in range(s.partitions)]
        return tps

    def active_partitions(self) -> list[int]:
        control = self.settings.topic("booster.control")
        return sorted(tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == control)

    async def _deadline_timer(self) -> None:
        try:
            await self.look_for_deadlines()
        except KafkaError as exc:
            log.warning("looking for deadlines failed (%s); trying again next time", exc)
        except Exception:  # an exception escaping a Faust timer crashes the whole worker
            log.exception("looking for deadlines failed; trying again next time")

    async def look_for_deadlines(self) -> None:
        now = now_ms()
        lateness = self.settings.allowed_lateness_ms
        waiting = 0
        for p in self.active_partitions():
            due_here = []
            for key, value in partition_items(self.campaigns, p):
                campaign_id, kp = split_campaign_key(key)
                if kp != p:
                    continue
                due = b.due(unpack_campaign(value), now, lateness)
                if due is not None:
                    due_here.append((campaign_id, due))
            for campaign_id, due in due_here:
                last = self._ticked.get((campaign_id, p))
                if last is not None and time.monotonic() - last < RETICK_SECONDS:
                    continue
                if due.kind == "fire":
                    deps = self.gate_inputs(p)
                    # taken once, at a moment after deadline + lateness (due() says we are past it)
                    snapshot = self._gate_snapshots.get((campaign_id, p))
                    if snapshot is None:
                        snapshot = await self.gate.end_offsets(deps)
                        self._gate_snapshots[(campaign_id, p)] = snapshot
                    behind = await self.gate.lagging(deps, snapshot)
                    if behind:
                        self._log_waiting(campaign_id, p, behind)
                        waiting += 1
                        continue
                value = codec().encode("booster.control", control_record("TICK", campaign_id, now))
                await self.control.send(key=campaign_id.encode(), value=value, partition=p)
                self._ticked[(campaign_id, p)] = time.monotonic()
        self.metrics.set("booster_deadlines_waiting", waiting)

    def _log_waiting(self, campaign_id: str, p: int, lagging: dict[TopicPartition, int]) -> None:
        last = self._waiting_logged.get((campaign_id, p))
        if last is not None and time.monotonic() - last < 10:
            return
        self._waiting_logged[(campaign_id, p)] = time.monotonic()
        behind = {f"{tp.topic}[{tp.partition}]": n for tp, n in sorted(lagging.items())}
        log_decision("waiting-for-lag", campaign_id, partition=p, behind=behind)


def contact_partition(contact_id: str, partitions: int) -> int:
    """The partition of a contact's records, as every producer's default partitioner picks it."""
    from aiokafka.partitioner import DefaultPartitioner

    everything = list(range(partitions))
    partition: int = DefaultPartitioner()(contact_id.encode(), everything, everything)
    return partition


def _pack_account(a: AccountChannels) -> bytes:
    return json.dumps({"channels": sorted(a.channels), "updated_at": a.updated_at}).encode()


def _unpack_account(account_id: str, raw: bytes) -> AccountChannels:
    d = json.loads(raw)
    return AccountChannels(account_id, frozenset(d["channels"]), d["updated_at"])
