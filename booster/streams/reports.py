"""Reports: every booster decision as a record on booster.reports and a decision log line (and a
notice for a REJECTED or CANCELLED one), and the per-partition summaries of a fan-out merged into the
booster's one final report."""

from __future__ import annotations

import time

from booster.processors.boosters import Report
from booster.processors.notices import report_notice
from booster.processors.packing import pack_summaries, summary_from_dict, unpack_summaries
from booster.processors.summaries import evolve_summaries, missing_summaries
from booster.schemas import codec
from booster.streams.metrics import Metrics
from booster.streams.notices import Notices
from booster.streams.records import Incoming, Topic, log_decision
from booster.streams.store import Table
from booster.streams.wire import report_record


class Reports:
    def __init__(self, topic: Topic, summaries: Table, notices: Notices, metrics: Metrics) -> None:
        self.topic = topic
        self.summaries = summaries
        self.notices = notices
        self.metrics = metrics
        self.overdue = 0  # boosters of this worker's partitions waiting past BOOSTER_OVERDUE_SECONDS for summaries
        self.stepped_at = time.monotonic()  # the last summary merged: this worker is working

    async def send(self, report: Report, *, at: int) -> None:
        """A report, and its notice when it is REJECTED or CANCELLED (`at`: when that was decided, in
        event time: the launch's or the deadline)."""
        value = codec().encode("booster.reports", report_record(report))
        await self.topic.send(key=report.campaign_id.encode(), value=value)
        self.metrics.inc("booster_boosters_total", status=report.status.lower())
        log_decision(
            report.status.lower(),
            report.campaign_id,
            booster_id=report.booster_id,
            reason=report.reason,
            reason_code=None if report.reason_code is None else report.reason_code.value,
            deadline=report.deadline,
            audience=report.audience,
            excluded={k: v for k, v in report.excluded.items() if v},
        )
        await self.notices.send(report_notice(report, at))

    def look_for_missing(self, partitions: list[int], now: int, allowed_lateness_ms: int, after_ms: int) -> int:
        """Boosters in these partitions of booster.summaries whose other partitions' summaries have not
        come `after_ms` after the deadline plus the allowed lateness: a partition whose fan-out nobody
        runs (its own state may not even say it is due). Said in the log; counted for the metric and
        /live."""
        late = 0
        for p in partitions:
            for key, raw in self.summaries.partition(p).items():
                missing = missing_summaries(unpack_summaries(raw), now, allowed_lateness_ms, after_ms)
                if missing:
                    late += 1
                    log_decision("overdue-report", key.decode(), missing_partitions=missing)
        self.overdue = late
        self.metrics.set("booster_overdue_deadlines", late, step="report")
        return late

    async def on_summary(self, incoming: Incoming) -> None:
        """booster.summaries: one partition's summary; the last one completes the final report."""
        record = incoming.decode()
        campaign_id = incoming.key_text(record, "campaign_id")
        store = self.summaries.partition(incoming.partition)
        key = campaign_id.encode()
        raw = store.get(key)
        old = None if raw is None else unpack_summaries(raw)
        summary = summary_from_dict(record)
        new, report = evolve_summaries(old, summary)
        if report is not None:
            await self.send(report, at=summary.schedule.deadline)
        if new != old:
            store.write({key: pack_summaries(new)})
        self.stepped_at = time.monotonic()
