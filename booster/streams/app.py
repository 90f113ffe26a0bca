"""The Faust app: settings, tables and topics, and the agents that wire them to the modules that do
the work. Nothing is decided here.

One record's way, from a fact to a command:
  ingest.py     message.* / contact.*  -> recipients, contacts (and the campaign first seen); a fact in
                                          another partition than its contact's -> booster.rerouted
  launches.py   campaign.launched      -> launches-by-account -> validated -> booster.control (SCHEDULE)
  deadlines.py  booster.control        -> campaign state; the timer's TICK -> fanout.py -> booster.commands
  reports.py    booster.summaries      -> the final report on booster.reports
  uplift.py     the timer's TICK after the measurement window -> booster.measurements -> booster.results
  notices.py    refused, cancelled, pending, duplicate launches, late cancels -> booster.notices
  retention.py  timer: rows past their retention -> deleted, tombstones to the changelogs
  web.py        /metrics and the audience preview
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any

import faust
from aiokafka import TopicPartition

from booster.config import Settings
from booster.errors import BoosterError
from booster.processors.campaigns import stuck
from booster.schemas.catalog import CONTACT_INPUT_TOPICS, LAUNCHES_BY_ACCOUNT, REROUTED, STATE_TABLES
from booster.streams import compat
from booster.streams.campaigns import CampaignStates
from booster.streams.clocks import Clocks
from booster.streams.connect import client_options, faust_credentials
from booster.streams.control import Control
from booster.streams.deadlines import Deadlines
from booster.streams.fanout import Fanout
from booster.streams.gate import LagGate
from booster.streams.ingest import Ingestion
from booster.streams.lane import Lane
from booster.streams.launches import Launches
from booster.streams.metrics import Metrics
from booster.streams.notices import Notices
from booster.streams.records import (
    DeadLetters,
    Guard,
    Handler,
    Incoming,
    Retry,
    WorkerClock,
    now_ms,
    run_timer,
    use_clock,
    use_record_limit,
)
from booster.streams.reports import Reports
from booster.streams.restore import BulkRestore, last_records
from booster.streams.retention import FiredRows, Retention
from booster.streams.store import ChangelogSink, FaustTable
from booster.streams.uplift import Measurements
from booster.streams.web import Web

log = logging.getLogger("booster.worker")

CONSUMER_MAX_POLL_RECORDS = 5000
CONSUMER_BUFFER = 16384
MIB = 1024 * 1024
# how often the rows of fired boosters are looked for (they are deleted once no fan-out runs)
FIRED_ROWS_INTERVAL = 0.5
FETCH_WATCH_INTERVAL = 10.0  # how often the worker checks that its fetch loop still runs
FETCH_STALL_SECONDS = 30.0  # a fetch loop that finished no fetch for this long is said in the log
LIVENESS_STALL_SECONDS = 120.0  # ... and for this long, /live answers 503 (an orchestrator restarts it)
OVERDUE_WATCH_INTERVAL = 30.0  # how often the summaries are walked for boosters waiting on a partition
# RocksDB's memory is bounded per database (one per table and partition): Faust's defaults (64 MiB x 3
# write buffers, a 2 GiB block cache each) would let it grow with the state
ROCKSDB_LARGE = {"write_buffer_size": 16 * MIB, "max_write_buffer_number": 2, "block_cache_size": 32 * MIB}
ROCKSDB_SMALL = {"write_buffer_size": 2 * MIB, "max_write_buffer_number": 2, "block_cache_size": 2 * MIB}


def web_host(bind: str) -> str:
    """The name other workers reach this one's pages at (the audience preview gathers from all)."""
    return socket.getfqdn() if bind in ("0.0.0.0", "::", "") else bind


def raw_schema() -> faust.Schema:  # type: ignore[type-arg]
    """Bytes in, bytes out: decoding is ours, so a bad record cannot crash an agent."""
    return faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


class BoosterApp:
    def __init__(self, settings: Settings, datadir: Path | None = None) -> None:
        s = self.settings = settings
        self.app_id = s.group_id
        self.datadir = datadir or s.home / "workers" / self.app_id / str(s.web_port)
        self.datadir.mkdir(parents=True, exist_ok=True)
        use_clock(WorkerClock(s.clock_speed, s.clock_anchor_ms))
        use_record_limit(s.max_record_bytes)
        self.app = app = faust.App(
            self.app_id,
            broker=f"kafka://{s.broker}",
            broker_credentials=faust_credentials(s.security),
            store=s.store,
            datadir=str(self.datadir),
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            consumer_auto_offset_reset="earliest",
            web_port=s.web_port,
            web_bind=s.web.bind,
            web_host=web_host(s.web.bind),
            producer_acks=-1,
            broker_commit_interval=1.0,
            table_standby_replicas=s.standby_replicas,
            # a killed worker's partitions move after this long (Faust's default is 60 s)
            broker_session_timeout=s.session_timeout,
            # static membership: a worker back within the session timeout keeps its partitions
            consumer_group_instance_id=s.group_instance_id or None,
            broker_heartbeat_interval=min(3.0, s.session_timeout / 3),
            # bigger fetches and buffers: fewer wake-ups per event on the hot ingest path
            broker_max_poll_records=CONSUMER_MAX_POLL_RECORDS,
            stream_buffer_maxsize=CONSUMER_BUFFER,
            # topics are created before the worker starts (`booster.ops.admin.create_internal`)
            topic_allow_declare=False,
        )
        app.transport.Consumer = compat.read_committed_consumer()  # type: ignore[misc]
        ingested = [s.topic(t) for t in (*CONTACT_INPUT_TOPICS, REROUTED)]
        self.lane = Lane(ingested) if s.batch_lane else None
        if self.lane is not None:
            compat.use_lane(app, self.lane)

        # helper clients: started with the app, stopped with it
        self.metrics = metrics = Metrics.of_worker(app)
        compat.count_reading_again(
            app,
            lambda topic, why: metrics.inc(
                "booster_records_read_again_total", topic=self.contract_name(topic), why=why
            ),
        )
        # each table partition's changelog is written by that partition's own transactional producer
        self.sink = sink = ChangelogSink(
            client_options(s), s.request_timeout, transactional_prefix=f"{self.app_id}-changelog"
        )
        self.gate = gate = LagGate(client_options(s), self.app_id, processed=self._processed)
        self.fanout = fanout = Fanout(s, self.app_id, flush_tables=sink.flush)
        for service in (sink, gate, fanout):
            app.add_dependency(service)
        self._changelogs: dict[str, Any] = {}  # changelog topic -> its Faust table

        self.recipients = self._table("recipients", ROCKSDB_LARGE)
        self.contacts = self._table("contacts", ROCKSDB_LARGE)
        self.sent_history = self._table("sent-history", ROCKSDB_SMALL)
        self.engagement = self._table("engagement", ROCKSDB_SMALL)
        self.campaigns = CampaignStates(self._table("campaigns", ROCKSDB_SMALL))

        self.retry = retry = Retry(s.retry_seconds)
        dead_letters = DeadLetters(self._topic("booster.dead-letter"), metrics, retry)
        clocks = Clocks(metrics, s.allowed_lateness_ms)
        self.guard = Guard(sink, dead_letters, metrics, clocks, retry)
        control = Control(self._topic("booster.control"), s.partitions)
        notices = Notices(self._topic("booster.notices"), metrics)
        self.reports = Reports(
            self._topic("booster.reports"), self._table("summaries", ROCKSDB_SMALL), notices, metrics
        )
        self.ingestion = Ingestion(
            self.recipients, self.contacts, self.engagement, self.campaigns, sink, dead_letters, metrics, clocks,
            partitions=s.partitions, rerouted_topic=s.topic(REROUTED), retry=retry,
        )  # fmt: skip
        decided = self._table("launch-decisions", ROCKSDB_SMALL)
        live = self._table("account-boosters", ROCKSDB_SMALL)
        self.launches = Launches(
            by_account=self._topic(LAUNCHES_BY_ACCOUNT),
            control=control,
            reports=self.reports,
            accounts=self._table("accounts", ROCKSDB_SMALL),
            pending=self._table("pending-launches", ROCKSDB_SMALL),
            decided=decided,
            live=live,
            metrics=metrics,
            staleness_ms=s.launch_staleness_ms,
            engine_lateness_ms=s.engine_lateness_ms,
            allowed_lateness_ms=s.allowed_lateness_ms,
            decision_retention_ms=s.decision_retention_ms,
            active_partitions=lambda: self.active_partitions(LAUNCHES_BY_ACCOUNT),
            gate=gate,
            accounts_topic=s.topic("account.channels"),
        )
        self.measurements = Measurements(
            campaigns=self.campaigns,
            engagement=self.engagement,
            measuring=self._table("measurements", ROCKSDB_SMALL),
            fanout=fanout,
            measurements_topic=self._topic("booster.measurements"),
            results_topic=self._topic("booster.results"),
            metrics=metrics,
            partitions=s.partitions,
        )
        self.fired_rows = FiredRows(
            self.recipients, sink, fanning_out=fanout.busy, partitions_of=self.active_partitions
        )
        self.deadlines = Deadlines(
            settings=s,
            campaigns=self.campaigns,
            recipients=self.recipients,
            contacts=self.contacts,
            sent_history=self.sent_history,
            control=control,
            gate=gate,
            fanout=fanout,
            notices=notices,
            reports=self.reports,
            metrics=metrics,
            active_partitions=self.active_partitions,
            fired_rows=self.fired_rows,
            engagement=self.engagement,
            measurements=self.measurements,
        )
        self.retention = Retention(
            decided=decided,
            live=live,
            summaries=self.reports.summaries,
            measurements=self.measurements.measuring,
            contacts=self.contacts,
            recipients=self.recipients,
            sent_history=self.sent_history,
            campaigns=self.campaigns,
            sink=sink,
            metrics=metrics,
            decision_retention_ms=s.decision_retention_ms,
            contact_retention_ms=s.contact_retention_ms,
            allowed_lateness_ms=s.allowed_lateness_ms,
            partitions_of=self.active_partitions,
        )
        self.web = Web(
            settings=s,
            campaigns=self.campaigns,
            recipients=self.recipients,
            contacts=self.contacts,
            sent_history=self.sent_history,
            gate=gate,
            metrics=metrics,
            active_partitions=self.active_partitions,
            contract_name=self.contract_name,
            own_url=lambda: str(app.conf.canonical_url).rstrip("/"),
            other_urls=self._other_workers,
            ready=lambda: compat.recovered(app),
            stalled=self._not_live,
            lane_queued=lambda: 0 if self.lane is None else self.lane.queued(),
        )

        async def ingest(stream: Any) -> None:
            # on the lane, the records never reach the agent's stream: the agent still subscribes Faust's
            # consumer to the topics (and so has them assigned), and takes whole fetches from the lane
            if self.lane is not None:
                hold = s.hold_ingest_file
                await self.ingestion.lane_agent(
                    self.lane, self.contract_name, lambda: bool(hold) and Path(hold).exists()
                )
            else:
                await self.ingestion.agent(stream, self.contract_name)

        app.agent(self._topic(*CONTACT_INPUT_TOPICS, REROUTED), name="booster.ingest")(ingest)
        self._agent("booster.launches", ("campaign.launched", "campaign.booster-cancelled"), self.launches.route)
        self._agent("booster.accounts", ("account.channels", LAUNCHES_BY_ACCOUNT), self.launches.decide)
        self._agent("booster.control", ("booster.control",), self.deadlines.on_control)
        # one agent for both merges: each agent is one more stream and subscription to start
        self._agent("booster.summaries", ("booster.summaries", "booster.measurements"), self._merge)
        app.timer(s.tick_interval, name="booster.deadlines")(self.deadlines.timer)
        app.timer(s.tick_interval, name="booster.pending-launches")(self.launches.timer)
        app.timer(s.sweep_interval, name="booster.retention")(self.retention.timer)
        app.timer(FIRED_ROWS_INTERVAL, name="booster.fired-rows")(self.fired_rows.timer)
        app.timer(FETCH_WATCH_INTERVAL, name="booster.fetch-watch")(self._watch_fetches)
        app.timer(OVERDUE_WATCH_INTERVAL, name="booster.overdue-reports")(self._watch_reports)
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.web.register(app)
        restore = None
        if s.bulk_restore:
            restore = BulkRestore(client_options(s), self._changelog_database, on_restored=metrics.restored)
        compat.prepare_recovery(
            app, self._own, lambda ends, starts: last_records(client_options(s), ends, starts), restore
        )

    async def _own(self, partitions: set[int]) -> None:
        """This worker takes these table partitions over: fence their earlier writers (a broker away
        meanwhile is waited for, as any write is, for up to BOOSTER_RETRY_SECONDS)."""
        await self.retry.bounded(
            f"taking table partitions {sorted(partitions)} over", lambda: self.sink.own(partitions)
        )

    def _processed(self, tp: TopicPartition, committed: int | None) -> int | None:
        """The lag gate's view of what this worker processed: its consumer's ledger."""
        ledger = getattr(self.app.consumer, "ledger", None)  # our consumer class has one
        return None if ledger is None else ledger.processed(tp, committed)

    def _changelog_database(self, topic: str, partition: int) -> tuple[Any, bytes] | None:
        return compat.changelog_database(self._changelogs[topic], partition)

    def _not_live(self) -> str | None:
        """Why an orchestrator should restart this worker (/live answers 503 with it), or None."""
        stall = compat.fetch_loop_stall(self.app.consumer, time.monotonic(), LIVENESS_STALL_SECONDS)
        if stall is not None:
            return f"the fetch loop stands still: {stall}"
        overdue = self.deadlines.overdue + self.reports.overdue
        idle = time.monotonic() - max(self.deadlines.stepped_at, self.reports.stepped_at)
        if stuck(overdue, int(idle * 1000), self.settings.overdue_ms):
            return (
                f"{overdue} booster(s) of this worker's partitions are overdue (BOOSTER_OVERDUE_SECONDS past their "
                f"deadline, inputs caught up) and no booster step was done here for {idle:.0f} s: a restart moves "
                "their partitions; see the log's overdue lines"
            )
        return None

    async def _watch_reports(self) -> None:
        s = self.settings

        async def look() -> None:
            partitions = self.active_partitions("booster.summaries")
            self.reports.look_for_missing(partitions, now_ms(), s.allowed_lateness_ms, s.overdue_ms)

        await run_timer("looking for boosters whose report waits on a partition", look)

    async def _watch_fetches(self) -> None:
        stall = compat.fetch_loop_stall(self.app.consumer, time.monotonic(), FETCH_STALL_SECONDS)
        if stall is not None:
            log.warning("the fetch loop stands still while partitions are assigned: %s", stall)

    async def _merge(self, incoming: Incoming) -> None:
        """A partition's summary into the booster's report, or its measurement into its results."""
        if incoming.topic == "booster.measurements":
            await self.measurements.on_measurement(incoming)
        else:
            await self.reports.on_summary(incoming)

    def _table(self, name: str, options: dict[str, int]) -> FaustTable:
        if name not in STATE_TABLES:  # `booster topics create` and the worker's start make its changelog
            raise BoosterError(f"table {name!r} is not in catalog.STATE_TABLES; add it there")
        # key_type/value_type bytes make Faust store and changelog our bytes as they are
        table = self.app.Table(
            name, partitions=self.settings.partitions, key_type=bytes, value_type=bytes, options=options
        )
        self._changelogs[self.settings.changelog_topic(name)] = table
        return FaustTable(table, self.sink)

    def _topic(self, *names: str) -> Any:
        return self.app.topic(*[self.settings.topic(n) for n in names], schema=raw_schema())

    def _agent(self, name: str, topics: tuple[str, ...], handler: Handler) -> None:
        guard = self.guard

        async def agent(stream: Any) -> None:
            async for event in stream.events():
                compat.hold_acks([event])  # acked only once its effects are written
                await guard(Incoming.of(event.message, self.contract_name(event.message.topic)), handler)
                compat.release_acks([event])

        self.app.agent(self._topic(*topics), name=name)(agent)

    def contract_name(self, real: str) -> str:
        prefix = self.settings.topic_prefix
        return real[len(prefix) :] if prefix and real.startswith(prefix) else real

    def active_partitions(self, topic: str = "booster.control") -> list[int]:
        """This worker's active partitions of a topic (contract name)."""
        real = self.settings.topic(topic)
        return sorted(tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == real)

    def _other_workers(self) -> set[str]:
        me = str(self.app.conf.canonical_url).rstrip("/")
        return {str(url).rstrip("/") for url in self.app.router.tables_metadata()} - {me}

    async def _on_revoked(self, sender: Any, revoked: set[Any], **_: Any) -> None:
        control = self.settings.topic("booster.control")
        gone = {tp.partition for tp in revoked if tp.topic == control}
        self.campaigns.forget_partitions(gone)
        self.deadlines.forget_partitions(gone)
        by_account = self.settings.topic(LAUNCHES_BY_ACCOUNT)
        self.launches.forget_partitions({tp.partition for tp in revoked if tp.topic == by_account})
        await self.fanout.release(gone)
        await self.sink.release(gone)
