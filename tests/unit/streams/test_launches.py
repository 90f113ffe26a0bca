"""Launches, accounts and cancellations on the in-memory store: one decision per campaign, launches
that wait for their account, broadcasts to every partition."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import TopicPartition

from booster.schemas.catalog import LAUNCHES_BY_ACCOUNT
from booster.streams.control import Control
from booster.streams.launches import Launches
from booster.streams.metrics import Metrics
from booster.streams.notices import Notices
from booster.streams.records import Incoming
from booster.streams.reports import Reports
from booster.streams.store import MemoryTable, pending_key
from tests.samples import SAMPLES
from tests.unit.streams.fakes import Gate, SentRecords, incoming

PARTITIONS = 3


class World:
    def __init__(self) -> None:
        self.by_account = SentRecords("campaign.launched")
        self.control = SentRecords("booster.control")
        self.reports = SentRecords("booster.reports")
        self.notices = SentRecords("booster.notices")
        self.metrics = Metrics()
        self.pending = MemoryTable("pending-launches")
        self.gate = Gate()
        notices = Notices(self.notices, self.metrics)
        self.launches = Launches(
            by_account=self.by_account,
            control=Control(self.control, PARTITIONS),
            reports=Reports(self.reports, MemoryTable("summaries"), notices, self.metrics),
            accounts=MemoryTable("accounts"),
            pending=self.pending,
            decided=MemoryTable("launch-decisions"),
            live=MemoryTable("account-boosters"),
            metrics=self.metrics,
            staleness_ms=10 * 365 * 24 * 3_600_000,  # these launches are dated 2026-01-01: not about staleness
            engine_lateness_ms=10 * 365 * 24 * 3_600_000,
            allowed_lateness_ms=5000,
            decision_retention_ms=10 * 365 * 24 * 3_600_000,
            active_partitions=lambda: [0],
            gate=self.gate,  # type: ignore[arg-type]
            accounts_topic="t.account.channels",
        )

    def launch(self, record: dict[str, Any]) -> None:
        rekeyed = incoming("campaign.launched", record, key=record["account_id"], read_from=LAUNCHES_BY_ACCOUNT)
        asyncio.run(self.launches.decide(rekeyed))

    def deliver_ticks(self) -> None:
        """The timer's ticks sent to launches-by-account, consumed by the accounts agent."""
        for sent in self.by_account.sent:
            tick = Incoming(
                LAUNCHES_BY_ACCOUNT, f"t.{LAUNCHES_BY_ACCOUNT}", sent.partition or 0, 0, sent.key, sent.value, 0
            )
            asyncio.run(self.launches.decide(tick))

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
    assert w.control.sent == []
    [pending] = w.reports.decoded()  # R15: visible while it waits
    assert (pending["status"], pending["reason_code"]) == ("PENDING", "ACCOUNT_PENDING")
    assert len(list(w.pending.partition(0).items())) == 1
    w.account(["EMAIL"])
    assert [c["kind"] for c in w.control.decoded()] == ["SCHEDULE"] * PARTITIONS
    assert [r["status"] for r in w.reports.decoded()] == ["PENDING", "SCHEDULED"]
    assert list(w.pending.partition(0).items()) == []  # the join is done


def test_a_launch_older_than_the_decisions_kept_is_counted_and_not_decided_again() -> None:
    w = World()
    w.account(["EMAIL"])
    w.launches.decision_retention_ms = 30 * 86_400_000  # the launch's deadline is months before today
    w.launch(LAUNCH)
    assert w.control.sent == [] and w.reports.sent == [] and w.notices.sent == []
    assert w.metrics.get("booster_forgotten_launches_total") == 1
    assert list(w.launches.decided.partition(0).items()) == []


def test_the_same_launch_again_is_counted_and_another_launch_is_decided_too() -> None:
    w = World()
    w.account(["EMAIL"])
    w.launch(LAUNCH)
    w.launch(LAUNCH)  # the same bytes: a producer's retry, or a replay after a crash
    assert [r["status"] for r in w.reports.decoded()] == ["SCHEDULED"]
    assert w.metrics.get("booster_duplicate_launches_total") == 1
    # G5: another launch of the campaign id is decided as well, whatever came first; the control
    # partitions keep the one that wins (here a booster-less one: no booster) and tell the loser
    w.launch({**LAUNCH, "group_size": 0})
    assert [r["status"] for r in w.reports.decoded()] == ["SCHEDULED", "CANCELLED"]
    assert [c["kind"] for c in w.control.decoded()][-PARTITIONS:] == ["NO_BOOSTER"] * PARTITIONS
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


def test_a_refused_launch_tells_its_account_why() -> None:
    w = World()
    w.account(["EMAIL"])
    w.launch({**LAUNCH, "campaign_id": "sms", "booster": {**LAUNCH["booster"], "channel": "SMS"}})
    [report] = w.reports.decoded()
    assert report["reason_code"] == "CHANNEL_NOT_ENABLED"
    [notice] = w.notices.decoded()
    assert (notice["kind"], notice["reason_code"], notice["campaign_id"]) == (
        "BOOSTER_REJECTED",
        "CHANNEL_NOT_ENABLED",
        "sms",
    )
    assert notice["at"] == LAUNCH["launched_at"] and "SMS" in notice["text"]
    assert [s.key for s in w.notices.sent] == [b"acct-1"]  # keyed by account
    assert w.metrics.get("booster_notices_total", kind="booster_rejected") == 1


def test_a_waiting_launch_is_told_once_however_often_it_is_sent() -> None:
    w = World()
    w.launch(LAUNCH)
    w.launch(LAUNCH)  # a producer's retry while it waits
    assert [(n["kind"], n["reason_code"]) for n in w.notices.decoded()] == [("LAUNCH_PENDING", "ACCOUNT_PENDING")]
    w.account(["EMAIL"])
    assert len(w.notices.sent) == 1  # scheduled: nothing more to tell


def test_every_launch_of_a_campaign_id_is_broadcast_and_none_is_told_here() -> None:
    w = World()
    w.account(["EMAIL"])
    w.launch(LAUNCH)
    w.launch({**LAUNCH, "name": "relaunched"})
    w.launch({**LAUNCH, "name": "relaunched"})  # that one sent twice
    schedules = {(c["schedule"]["booster_name"]) for c in w.control.decoded() if c["kind"] == "SCHEDULE"}
    assert len(schedules) == 2  # the winner is the control partitions' to pick, and its loser's notice
    assert w.notices.sent == []
    assert w.metrics.get("booster_duplicate_launches_total") == 1


def test_every_launch_waiting_for_its_account_is_decided_when_it_comes() -> None:
    w = World()
    w.launch(LAUNCH)
    w.launch({**LAUNCH, "name": "relaunched"})  # the account is not known yet: both wait
    assert len(list(w.pending.partition(0).items())) == 2
    w.account(["EMAIL"])
    assert w.pending.partition(0).rows == {}
    schedules = {(c["schedule"]["booster_name"]) for c in w.control.decoded() if c["kind"] == "SCHEDULE"}
    assert len(schedules) == 2


def test_a_decision_kept_by_an_older_worker_still_recognises_duplicates() -> None:
    w = World()
    w.launches.decided.partition(0).write({b"cmp-1": b"SCHEDULED"})  # no fingerprint
    w.launch({**LAUNCH, "name": "relaunched"})
    assert w.reports.sent == [] and w.notices.sent == []
    assert w.metrics.get("booster_duplicate_launches_total") == 1


def test_a_launch_whose_account_never_comes_is_rejected_after_its_deadline() -> None:
    w = World()
    deadline = LAUNCH["launched_at"] + LAUNCH["booster"]["delay_seconds"] * 1000  # long past (2026-01-01)
    w.launch(LAUNCH)
    asyncio.run(w.launches.look_for_expired_launches())
    asyncio.run(w.launches.look_for_expired_launches())  # not again within RETICK_SECONDS
    [tick] = w.by_account.sent
    assert (tick.key, tick.partition) == (b"acct-1", 0)
    w.deliver_ticks()
    assert [(r["status"], r["reason_code"]) for r in w.reports.decoded()] == [
        ("PENDING", "ACCOUNT_PENDING"),
        ("REJECTED", "ACCOUNT_UNKNOWN"),
    ]
    assert w.reports.decoded()[-1]["deadline"] == deadline
    assert [n["kind"] for n in w.notices.decoded()] == ["LAUNCH_PENDING", "BOOSTER_REJECTED"]
    assert [c["kind"] for c in w.control.decoded()] == ["NO_BOOSTER"] * PARTITIONS  # its rows go at once
    assert list(w.pending.partition(0).items()) == []
    w.deliver_ticks()  # a tick sent twice (retick) finds nothing pending: nothing more
    w.account(["EMAIL"])  # the channels come late: the campaign is decided already
    w.launch(LAUNCH)
    assert len(w.reports.sent) == 2 and w.metrics.get("booster_duplicate_launches_total") == 1


def test_a_pending_launch_expires_only_once_its_accounts_channels_are_read_past_its_deadline() -> None:
    """Channels that reached Kafka before the deadline and wait unread behind a worker's lag decide the
    launch: the expiry waits for account.channels, from one snapshot taken after the deadline."""
    w = World()
    w.launch(LAUNCH)
    w.gate.lag[TopicPartition("t.account.channels", 0)] = 3
    asyncio.run(w.launches.look_for_expired_launches())
    asyncio.run(w.launches.look_for_expired_launches())
    assert w.by_account.sent == [] and w.gate.snapshots == 1
    w.account(["EMAIL"])  # the channels that were behind, read now
    assert w.launches._snapshots == {}  # decided: nothing kept for its expiry
    w.gate.lag.clear()
    asyncio.run(w.launches.look_for_expired_launches())
    assert w.by_account.sent == []  # nothing pending any more
    assert [(r["status"], r["reason_code"]) for r in w.reports.decoded()] == [
        ("PENDING", "ACCOUNT_PENDING"),
        ("SCHEDULED", None),
    ]


def test_a_pending_launch_waits_out_the_allowed_lateness_before_it_expires() -> None:
    """Channels are a fact like the others: those that reach Kafka within the allowed lateness after the
    deadline still decide the launch, so the expiry is not even considered before then."""
    w = World()
    delay_ms = LAUNCH["booster"]["delay_seconds"] * 1000
    just_due = {**LAUNCH, "launched_at": int(time.time() * 1000) - delay_ms - 1000}  # its deadline a second ago
    w.launch(just_due)
    asyncio.run(w.launches.look_for_expired_launches())
    assert w.by_account.sent == [] and w.gate.snapshots == 0  # 4 s of the 5 s allowed lateness are left
    w.account(["EMAIL"], at=just_due["launched_at"])
    assert [(r["status"], r["reason_code"]) for r in w.reports.decoded()] == [
        ("PENDING", "ACCOUNT_PENDING"),
        ("SCHEDULED", None),
    ]


def test_a_launch_with_a_delay_outside_the_window_is_rejected_without_waiting_for_its_account() -> None:
    w = World()
    w.launch({**LAUNCH, "booster": {**LAUNCH["booster"], "delay_seconds": 60}})
    w.launch({**LAUNCH, "campaign_id": "none", "booster": None})  # and no booster: nothing to wait for
    assert [(r["status"], r["reason_code"]) for r in w.reports.decoded()] == [("REJECTED", "DELAY_OUT_OF_RANGE")]
    assert list(w.pending.partition(0).items()) == []


def test_a_channel_the_account_loses_before_the_deadline_is_told_to_every_partition() -> None:
    w = World()
    w.account(["EMAIL"])
    w.launch(LAUNCH)
    deadline = LAUNCH["launched_at"] + LAUNCH["booster"]["delay_seconds"] * 1000
    w.control.sent.clear()
    w.account(["SMS"], at=deadline - 1)  # EMAIL revoked before the deadline
    assert [(c["kind"], c["enabled"], c["at"]) for c in w.control.decoded()] == [("CHANNEL", False, deadline - 1)] * 3
    w.control.sent.clear()
    w.account(["SMS", "EMAIL"], at=deadline + 1)  # given back after it: too late to matter, and forgotten
    assert w.control.sent == []
    assert list(w.launches.live.partition(0).items()) == []


def test_an_accounts_boosters_past_the_longest_window_go_when_it_launches_again() -> None:
    w = World()
    w.account(["EMAIL"])
    w.launch(LAUNCH)  # dated 2026-01-01: its deadline is far more than 7 days ago
    live = w.launches.live.partition(0)
    assert [k for k, _ in live.items()] == [pending_key("acct-1", LAUNCH["campaign_id"])]
    w.launch({**LAUNCH, "campaign_id": "c2"})
    assert [k for k, _ in live.items()] == [pending_key("acct-1", "c2")]


def test_the_same_launch_again_broadcasts_its_schedule_again() -> None:
    """A replay after a crash may find the decision kept but its broadcast lost; receivers keep the
    first schedule, so sending it again is safe."""
    w = World()
    w.account(["EMAIL"])
    recent = {**LAUNCH, "launched_at": int(time.time() * 1000) - 3_600_000}
    w.launch(recent)
    first = w.control.decoded()
    w.control.sent.clear()
    w.launch(recent)
    assert w.control.decoded() == first and len(first) == PARTITIONS
    assert [r["status"] for r in w.reports.decoded()] == ["SCHEDULED"] and w.notices.sent == []


def test_a_re_keyed_launch_keeps_when_it_reached_kafka_and_is_judged_by_it() -> None:
    """Lag is not lateness: the copy on launches-by-account is stamped when a worker writes it, so the
    original's arrival goes with it in a header, and staleness is judged by that."""
    from dataclasses import replace

    from booster.streams.records import ARRIVED_AT, Incoming

    deadline = LAUNCH["launched_at"] + LAUNCH["booster"]["delay_seconds"] * 1000
    w = World()
    w.launches.staleness_ms = 3_600_000
    w.account(["EMAIL"])
    asyncio.run(w.launches.route(incoming("campaign.launched", LAUNCH, timestamp_ms=deadline - 60_000)))
    assert w.by_account.sent[0].headers == [(ARRIVED_AT, str(deadline - 60_000).encode())]
    copy = incoming("campaign.launched", LAUNCH, key="acct-1", read_from=LAUNCHES_BY_ACCOUNT)
    stamped_late = replace(copy, timestamp_ms=deadline + 5 * 3_600_000)  # written by a worker far behind
    on_time = replace(stamped_late, arrived_at_ms=deadline - 60_000)
    asyncio.run(w.launches.decide(on_time))
    assert [r["status"] for r in w.reports.decoded()] == ["SCHEDULED"]
    assert isinstance(on_time, Incoming) and on_time.arrived_at() == deadline - 60_000
