"""Launches, accounts and cancellations on the in-memory store: one decision per campaign, launches
that wait for their account, broadcasts to every partition."""

from __future__ import annotations

import asyncio
from typing import Any

from booster.schemas.catalog import LAUNCHES_BY_ACCOUNT
from booster.streams.control import Control
from booster.streams.launches import Launches
from booster.streams.metrics import Metrics
from booster.streams.reports import Reports
from booster.streams.store import MemoryTable
from tests.samples import SAMPLES
from tests.unit.streams.fakes import SentRecords, incoming

PARTITIONS = 3


class World:
    def __init__(self) -> None:
        self.by_account = SentRecords("campaign.launched")
        self.control = SentRecords("booster.control")
        self.reports = SentRecords("booster.reports")
        self.metrics = Metrics()
        self.pending = MemoryTable("pending-launches")
        self.launches = Launches(
            by_account=self.by_account,
            control=Control(self.control, PARTITIONS),
            reports=Reports(self.reports, MemoryTable("summaries"), self.metrics),
            accounts=MemoryTable("accounts"),
            pending=self.pending,
            decided=MemoryTable("launch-decisions"),
            metrics=self.metrics,
            staleness_ms=10 * 365 * 24 * 3_600_000,  # these launches are dated 2026-01-01: not about staleness
        )

    def launch(self, record: dict[str, Any]) -> None:
        rekeyed = incoming("campaign.launched", record, key=record["account_id"], read_from=LAUNCHES_BY_ACCOUNT)
        asyncio.run(self.launches.decide(rekeyed))

    def account(self, channels: list[str], at: int = 1_767_225_600_000) -> None:
        record = {"account_id": "acct-1", "channels": channels, "updated_at": at}
        asyncio.run(self.launches.decide(incoming("account.channels", record)))


LAUNCH = {**SAMPLES["campaign.launched"], "booster": {**SAMPLES["campaign.launched"]["booster"], "channel": None}}


def test_a_launch_is_rekeyed_by_account_and_a_cancel_is_broadcast() -> None:
    w = World()
    asyncio.run(w.launches.route(incoming("campaign.launched", LAUNCH)))
    assert [(s.key, s.partition) for s in w.by_account.sent] == [(b"acct-1", None)]
    cancel = {"campaign_id": "cmp-1", "cancelled_at": 1_767_229_200_000}
    asyncio.run(w.launches.route(incoming("campaign.booster-cancelled", cancel)))
    assert sorted(s.partition or 0 for s in w.control.sent) == list(range(PARTITIONS))
    assert {(c["kind"], c["at"]) for c in w.control.decoded()} == {("CANCEL", 1_767_229_200_000)}


def test_a_launch_waits_for_its_account_then_is_scheduled_everywhere() -> None:
    w = World()
    w.launch(LAUNCH)
    assert w.control.sent == [] and w.reports.sent == []
    assert len(list(w.pending.partition(0).items())) == 1
    w.account(["EMAIL"])
    assert [c["kind"] for c in w.control.decoded()] == ["SCHEDULE"] * PARTITIONS
    assert [r["status"] for r in w.reports.decoded()] == ["SCHEDULED"]
    assert list(w.pending.partition(0).items()) == []  # the join is done


def test_a_duplicate_launch_is_counted_and_changes_nothing() -> None:
    w = World()
    w.account(["EMAIL"])
    w.launch(LAUNCH)
    w.launch({**LAUNCH, "group_size": 0})  # would be cancelled if it were decided again
    assert [r["status"] for r in w.reports.decoded()] == ["SCHEDULED"]
    assert w.metrics.get("booster_duplicate_launches_total") == 1


def test_refused_and_booster_less_launches() -> None:
    w = World()
    w.account(["EMAIL"])
    w.launch({**LAUNCH, "campaign_id": "sms", "booster": {**LAUNCH["booster"], "channel": "SMS"}})
    w.launch({**LAUNCH, "campaign_id": "none", "booster": None})
    assert [(r["campaign_id"], r["status"]) for r in w.reports.decoded()] == [("sms", "REJECTED")]
    # a refused booster's rows go as a booster-less campaign's do (R12), not after the longest window
    controls = [(c["campaign_id"], c["kind"]) for c in w.control.decoded()]
    assert controls == [("sms", "NO_BOOSTER")] * PARTITIONS + [("none", "NO_BOOSTER")] * PARTITIONS
