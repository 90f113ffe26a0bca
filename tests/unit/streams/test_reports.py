"""Summaries merged into one final report, on the in-memory store."""

from __future__ import annotations

import asyncio

from booster.processors.audience import Tally
from booster.processors.packing import summary_to_dict, unpack_summaries
from booster.processors.summaries import PartitionSummary
from booster.streams.metrics import Metrics
from booster.streams.notices import Notices
from booster.streams.reports import Reports
from booster.streams.store import MemoryTable
from tests.unit.streams.fakes import SentRecords, incoming
from tests.unit.streams.test_deadlines import T0, schedule


def summary(p: int, audience: int) -> PartitionSummary:
    return PartitionSummary("c1", p, 3, schedule(T0), None, Tally(audience, {"OPENED": 1}))


def test_the_last_partitions_summary_makes_one_final_report() -> None:
    topic, table, metrics = SentRecords("booster.reports"), MemoryTable("summaries"), Metrics()
    reports = Reports(topic, table, Notices(SentRecords("booster.notices"), metrics), metrics)
    for s in [summary(0, 2), summary(0, 2), summary(1, 0), summary(2, 5), summary(1, 0)]:
        asyncio.run(reports.on_summary(incoming("booster.summaries", summary_to_dict(s), partition=1)))
    [report] = topic.decoded()
    assert (report["status"], report["audience"], report["billable"]) == ("SENT", 7, 7)
    assert report["excluded"]["OPENED"] == 3
    raw = table.partition(1).get(b"c1")
    assert raw is not None and unpack_summaries(raw).done and not unpack_summaries(raw).parts
    assert metrics.get("booster_boosters_total", status="sent") == 1
