"""The control agent and the deadline timer on the in-memory store, with a fake gate and fan-out."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest
from aiokafka import TopicPartition

from booster.config import Settings
from booster.processors.boosters import Schedule, booster_id_of
from booster.processors.campaigns import CampaignPartition, ControlEvent, Decided, NoBoosterFor, Scheduled, Tick
from booster.processors.events import BoosterCancelled
from booster.processors.packing import pack_moment, pack_recipient
from booster.processors.recipients import RecipientState
from booster.processors.uplift import holdout_of
from booster.schemas import codec
from booster.streams import deadlines
from booster.streams.campaigns import CampaignStates
from booster.streams.control import Control
from booster.streams.deadlines import Deadlines
from booster.streams.metrics import Metrics
from booster.streams.notices import Notices
from booster.streams.reports import Reports
from booster.streams.retention import SLICE, FiredRows
from booster.streams.store import MemoryTable, recipient_key
from booster.streams.uplift import Measurements
from booster.streams.wire import control_event, control_record
from tests.unit.streams.fakes import Fanout, Flushes, Gate, SentRecords, incoming

HOUR = 3_600_000
T0 = 1_767_225_600_000


def schedule(deadline: int, campaign_id: str = "c1") -> Schedule:
    return Schedule(campaign_id, booster_id_of(campaign_id), "Booster for X", "a", "EMAIL", "NOT_OPENED", "t", deadline)


class World:
    def __init__(self) -> None:
        self.settings = Settings.from_env({"BOOSTER_PARTITIONS": "2", "BOOSTER_TOPIC_PREFIX": "t."})
        self.recipients, self.contacts = MemoryTable("recipients"), MemoryTable("contacts")
        self.campaigns = CampaignStates(MemoryTable("campaigns"))
        self.control_topic = SentRecords("booster.control")
        self.gate, self.fanout, self.metrics = Gate(), Fanout(), Metrics()
        self.notices = SentRecords("booster.notices")
        self.reports = SentRecords("booster.reports")
        self.control_log: list[dict[str, Any]] = []  # every control record delivered
        self.fanning_out = False
        self.fired_rows = FiredRows(
            self.recipients, Flushes(), fanning_out=lambda: self.fanning_out, partitions_of=lambda topic: [0, 1]
        )
        self.engagement = MemoryTable("engagement")
        self.measurement_topic, self.results = SentRecords("booster.measurements"), SentRecords("booster.results")
        self.measurements = Measurements(
            campaigns=self.campaigns, engagement=self.engagement, measuring=MemoryTable("measurements"),
            fanout=self.fanout, measurements_topic=self.measurement_topic, results_topic=self.results,  # type: ignore[arg-type]
            metrics=self.metrics, partitions=2,
        )  # fmt: skip
        self.deadlines = Deadlines(
            settings=self.settings, campaigns=self.campaigns, recipients=self.recipients, contacts=self.contacts,
            sent_history=MemoryTable("sent-history"), control=Control(self.control_topic, 2), gate=self.gate, fanout=self.fanout,  # type: ignore[arg-type]
            notices=Notices(self.notices, self.metrics),
            reports=Reports(self.reports, MemoryTable("summaries"), Notices(self.notices, self.metrics), self.metrics),
            metrics=self.metrics, active_partitions=lambda: [0, 1], fired_rows=self.fired_rows,
            engagement=self.engagement, measurements=self.measurements,
        )  # fmt: skip

    def control(self, event: Any, partition: int = 0) -> None:
        record = control_record(event)
        asyncio.run(self.deadlines.on_control(incoming("booster.control", record, partition=partition)))

    def add_recipient(self, contact: str, partition: int = 0, delivered: bool = True, opened: bool = False) -> None:
        state = RecipientState(
            sent_at=1, opened_at=3 if opened else None, messages=("m",), reports=(("m", 2, False),) if delivered else ()
        )
        self.recipients.partition(partition).write({recipient_key("c1", contact): pack_recipient(state)})

    def deliver(self) -> None:
        """Feed the records sent so far that are not ticks to their partitions, once."""
        sent, self.control_topic.sent = self.control_topic.sent, []
        for record, s in zip([codec().decode("booster.control", x.value) for x in sent], sent, strict=True):
            self.control_log.append(record)
            if record["kind"] != "TICK":
                self.control(control_event(record), partition=s.partition or 0)
            else:
                self.control_topic.sent.append(s)

    def run_ticks(self) -> None:
        """Feed the ticks sent so far to their partitions, once."""
        ticks = self.ticks()
        self.control_topic.sent = []
        for campaign_id, p in ticks:
            self.control(Tick(campaign_id, now()), partition=p or 0)

    def decide_all(self) -> None:
        """Count, decide and fire as the timer would, with the records going where they are sent."""
        for _ in range(3):
            asyncio.run(self.deadlines.look_for_deadlines())
            self.deliver()
            self.run_ticks()
            self.deliver()

    def ticks(self) -> list[tuple[str, int | None]]:
        return [(r["campaign_id"], s.partition) for r, s in zip(self.control_topic.decoded(), self.control_topic.sent, strict=True)
                if r["kind"] == "TICK"]  # fmt: skip


def now() -> int:
    return int(time.time() * 1000)


def test_schedule_and_cancel_fold_into_the_partitions_state() -> None:
    w = World()
    sch = schedule(now() + HOUR)
    w.control(Scheduled(sch, T0))
    w.control(BoosterCancelled("c1", sch.deadline - 5))
    w.control(BoosterCancelled("c1", sch.deadline - 9))
    assert w.campaigns.get("c1", 0) == CampaignPartition(schedule=sch, scheduled_at=T0, cancelled_at=sch.deadline - 9)
    assert w.campaigns.get("c1", 1) is None  # each partition has its own


def test_a_cancel_after_firing_or_after_the_window_is_refused_with_one_notice() -> None:
    w = World()
    sch = schedule(now() - HOUR)
    for p in (0, 1):
        w.control(Scheduled(sch, T0), partition=p)
    w.control(BoosterCancelled("c1", sch.deadline - 5), partition=1)  # in time: applied, nothing to tell
    w.control(BoosterCancelled("c1", sch.deadline + 5), partition=0)  # after the window: refused
    w.control(BoosterCancelled("c1", sch.deadline + 5), partition=1)  # the same cancel elsewhere: told once
    w.decide_all()
    w.control(BoosterCancelled("c1", sch.deadline - 7), partition=0)  # in time, but after the decision
    notices = w.notices.decoded()
    assert [(n["kind"], n["reason_code"], n["at"]) for n in notices] == [
        ("CANCEL_REFUSED", "CANCEL_TOO_LATE", sch.deadline + 5),
        ("CANCEL_REFUSED", "CANCEL_TOO_LATE", sch.deadline - 7),
    ]
    assert "window expired" in notices[0]["text"] and "started sending" in notices[1]["text"]
    assert [s.key for s in w.notices.sent] == [b"a", b"a"]


def test_no_booster_deletes_the_campaigns_rows() -> None:
    w = World()
    w.add_recipient("k1")
    w.add_recipient("k2")
    w.control(NoBoosterFor("c1", T0 + 123))
    assert list(w.recipients.partition(0).items()) == []
    state = w.campaigns.get("c1", 0)
    assert state is not None and state.no_booster and state.first_seen_at == T0 + 123


def test_a_due_booster_waits_for_the_gate_then_ticks_once() -> None:
    w = World()
    w.control(Scheduled(schedule(now() - HOUR), T0), partition=1)
    w.control(Decided("c1", now(), None), partition=1)
    lagging = TopicPartition("t.message.clicked", 1)
    w.gate.lag[lagging] = 7
    asyncio.run(w.deadlines.look_for_deadlines())
    asyncio.run(w.deadlines.look_for_deadlines())
    assert w.ticks() == [] and w.metrics.get("booster_deadlines_waiting") == 1
    assert w.gate.snapshots == 1  # the snapshot is taken once and kept
    w.gate.lag.clear()
    asyncio.run(w.deadlines.look_for_deadlines())
    asyncio.run(w.deadlines.look_for_deadlines())  # not again within RETICK_SECONDS
    assert w.ticks() == [("c1", 1)] and w.metrics.get("booster_deadlines_waiting") == 0


def test_a_future_deadline_does_not_tick() -> None:
    w = World()
    w.control(Scheduled(schedule(now() + HOUR), T0))
    asyncio.run(w.deadlines.look_for_deadlines())
    assert w.ticks() == [] and w.gate.snapshots == 0


def test_one_partition_decides_and_every_partition_fans_out_as_decided() -> None:
    for cancel_reaches in (0, 1):  # a cancel made in time, which reached only one partition so far
        w = World()
        sch = schedule(now() - HOUR)
        for p in (0, 1):
            w.control(Scheduled(sch, T0), partition=p)
        w.control(BoosterCancelled("c1", sch.deadline - 5), partition=cancel_reaches)
        asyncio.run(w.deadlines.look_for_deadlines())
        assert sorted(w.ticks()) == [("c1", 0), ("c1", 1)]  # every partition counts
        w.run_ticks()
        w.deliver()  # each COUNTED, to the deciding partition
        asyncio.run(w.deadlines.look_for_deadlines())
        assert w.ticks() == [("c1", 0)]  # only the deciding partition: the other waits for the decision
        w.run_ticks()
        w.deliver()  # DECIDED, broadcast to both
        asyncio.run(w.deadlines.look_for_deadlines())
        assert sorted(w.ticks()) == [("c1", 0), ("c1", 1)]  # the fire ticks, at once
        w.run_ticks()
        decided = sch.deadline - 5 if cancel_reaches == 0 else None  # the deciding partition's view
        assert w.fanout.cancelled_at == {("c1", 0): decided, ("c1", 1): decided}


def test_a_partition_that_missed_the_decision_gets_it_when_it_counts_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadlines, "RETICK_SECONDS", 0.0)  # no waiting between ticks here
    w = World()
    sch = schedule(now() - HOUR)
    for p in (0, 1):
        w.control(Scheduled(sch, T0), partition=p)
    asyncio.run(w.deadlines.look_for_deadlines())
    w.run_ticks()  # both count
    w.deliver()
    asyncio.run(w.deadlines.look_for_deadlines())
    assert ("c1", 0) in w.ticks()
    w.run_ticks()  # partition 0 decides, and partition 1 counts again: the decision has not arrived
    lost = [x for x in w.control_topic.sent if x.partition == 1]
    w.control_topic.sent = [x for x in w.control_topic.sent if x.partition != 1]  # DECIDED to 1 is lost
    assert lost
    w.deliver()
    state = w.campaigns.get("c1", 1)
    assert state is not None and state.decision is None
    w.decide_all()  # partition 1 counts again; partition 0 answers with its decision; both fire
    assert sorted(w.fanout.runs) == [("c1", 0), ("c1", 1)]


def test_a_booster_everyone_opened_is_called_off_in_every_partition() -> None:
    for opened_in in ((0, 1), (0,)):  # every recipient opened, or those of partition 1 did not
        w = World()
        sch = schedule(now() - HOUR)
        for p in (0, 1):
            w.control(Scheduled(sch, T0), partition=p)
            w.add_recipient(f"k{p}", partition=p, opened=p in opened_in)
        w.decide_all()
        reason = "FULL_OPEN_RATE" if opened_in == (0, 1) else None
        decisions = [r for r in w.control_log if r["kind"] == "DECIDED"]
        assert {r["reason"] for r in decisions} == {reason}
        assert w.fanout.runs == [("c1", 0), ("c1", 1)]  # each partition follows it (no commands if called off)


def test_a_tick_fans_out_deletes_the_rows_and_forgets_the_timers_memory() -> None:
    w = World()
    w.control(Scheduled(schedule(now() - HOUR), T0))
    w.control(Decided("c1", now(), None))
    for k in range(SLICE + 1):  # more than a slice
        w.add_recipient(f"k{k}", delivered=k % 2 == 0)
    asyncio.run(w.deadlines.look_for_deadlines())
    assert w.deadlines.watched() >= 1
    w.control(Tick("c1", now()))
    assert w.fanout.runs == [("c1", 0)]
    # the rows go once no fan-out runs: another partition's (or booster's) commands go first
    w.fanning_out = True
    asyncio.run(w.fired_rows.delete())
    assert len(list(w.recipients.partition(0).items())) == SLICE + 1 and w.fired_rows.waiting() == 1
    w.fanning_out = False
    asyncio.run(w.fired_rows.delete())
    assert list(w.recipients.partition(0).items()) == [] and w.fired_rows.waiting() == 0
    state = w.campaigns.get("c1", 0)
    assert state is not None and state.fired
    assert ("c1", 0) not in {k for k in w.deadlines._watches}
    assert w.campaigns.cached() == 0  # a fired campaign is not kept in memory
    assert w.metrics.get("booster_commands_total") == SLICE // 2 + 1  # the delivered ones
    w.control(Tick("c1", now()))  # a repeated tick does nothing
    assert w.fanout.runs == [("c1", 0)]


def test_a_fired_campaign_is_forgotten_after_the_longest_window() -> None:
    w = World()
    old = schedule(now() - 8 * 24 * HOUR)
    w.campaigns.put("c1", 0, CampaignPartition(schedule=old, fired=True))
    w.add_recipient("k1")  # left by a worker that stopped before deleting its fired rows
    asyncio.run(w.deadlines.look_for_deadlines())
    assert w.ticks() == [("c1", 0)]
    w.control(Tick("c1", now()))
    assert w.campaigns.get("c1", 0) is None and w.deadlines.watched() == 0
    assert list(w.recipients.partition(0).items()) == []
    assert w.fanout.forgotten == [("c1", 0)]  # its fan-out progress goes too


def test_a_campaign_without_booster_is_forgotten_with_no_progress_to_drop() -> None:
    w = World()
    w.campaigns.put("c1", 0, CampaignPartition(no_booster=True, first_seen_at=now() - 8 * 24 * HOUR))
    asyncio.run(w.deadlines.look_for_deadlines())
    w.control(Tick("c1", now()))
    assert w.campaigns.get("c1", 0) is None and w.fanout.forgotten == []


def test_revoked_partitions_leave_the_caches() -> None:
    w = World()
    w.control(Scheduled(schedule(now() + HOUR), T0), partition=1)
    w.gate.lag[TopicPartition("t.message.sent", 0)] = 1
    w.control(Scheduled(schedule(now() - HOUR), T0), partition=0)
    asyncio.run(w.deadlines.look_for_deadlines())
    assert w.campaigns.cached() == 2 and w.deadlines.watched() == 1
    w.campaigns.forget_partitions({0, 1})
    w.deadlines.forget_partitions({0, 1})
    assert w.campaigns.cached() == 0 and w.deadlines.watched() == 0


def test_a_control_record_names_its_kind() -> None:
    sch = schedule(T0 + 5)
    events: list[tuple[ControlEvent, str]] = [(Scheduled(sch, T0), "SCHEDULE"), (BoosterCancelled("c1", T0), "CANCEL"),
                        (NoBoosterFor("c1", T0), "NO_BOOSTER"), (Tick("c1", T0), "TICK")]  # fmt: skip
    for event, kind in events:
        assert (
            codec().decode("booster.control", codec().encode("booster.control", control_record(event)))["kind"] == kind
        )


def test_a_schedule_carries_its_machine_open_policy_to_every_partition() -> None:
    for counted in (False, True):
        event = Scheduled(replace(schedule(T0 + 5), count_machine_opens=counted), T0)
        wire = codec().decode("booster.control", codec().encode("booster.control", control_record(event)))
        assert control_event(wire) == event


def test_a_sent_booster_is_measured_once_its_window_ends_and_its_window_rows_go() -> None:
    """After the window, each partition reads its groups back from what the fan-out wrote to
    booster.audience, counts the engaged in the `engagement` table and sends its measurement; the
    last partition's makes the booster's one results record."""
    w = World()
    sch = replace(schedule(now() - 5 * HOUR), holdout_percent=50, measurement_ms=HOUR)
    for p in (0, 1):
        w.control(Scheduled(sch, T0), partition=p)
        w.control(Decided("c1", now(), None), partition=p)
    contacts = [f"k{i:03d}" for i in range(60)]
    for i, c in enumerate(contacts):
        w.add_recipient(c, opened=i % 6 == 0)  # opened: excluded, in neither group
    asyncio.run(w.deadlines.look_for_deadlines())
    w.run_ticks()
    assert sorted(w.fanout.runs) == [("c1", 0), ("c1", 1)]
    assert w.campaigns.cached() == 2  # fired, and measuring: the window's opens and clicks read it
    held_out = holdout_of(sch.booster_id, 50)
    eligible = [c for i, c in enumerate(contacts) if i % 6]
    boosted = [c for c in eligible if not held_out(c)]
    held = [c for c in eligible if held_out(c)]
    assert boosted and held
    engaged = {*boosted[::2], *held[::3], contacts[0]}  # contacts[0] opened before: not in a group
    w.engagement.partition(0).write({recipient_key("c1", c): pack_moment(sch.deadline + 60_000) for c in engaged})
    asyncio.run(w.deadlines.look_for_deadlines())
    w.run_ticks()
    for p in (0, 1):
        state = w.campaigns.get("c1", p)
        assert state is not None and state.fired and state.measured
    assert list(w.engagement.partition(0).items()) == [] and w.campaigns.cached() == 0
    parts = w.measurement_topic.decoded()
    assert sorted(m["partition"] for m in parts) == [0, 1]
    for sent in [*w.measurement_topic.sent, w.measurement_topic.sent[0]]:  # a duplicate changes nothing
        record = codec().decode("booster.measurements", sent.value)
        asyncio.run(w.measurements.on_measurement(incoming("booster.measurements", record, key="c1")))
    [results] = w.results.decoded()
    assert (results["boosted"], results["held_out"]) == (len(boosted), len(held))
    assert results["boosted_engaged"] == len(boosted[::2]) and results["held_out_engaged"] == len(held[::3])
    assert results["measured_until"] == sch.deadline + HOUR and results["holdout_percent"] == 50
    assert results["difference"] == pytest.approx(len(boosted[::2]) / len(boosted) - len(held[::3]) / len(held))
    asyncio.run(w.deadlines.look_for_deadlines())
    assert w.ticks() == []  # measured: nothing more until the state is forgotten


def test_a_booster_not_fired_long_after_its_deadline_while_the_inputs_are_caught_up_is_overdue() -> None:
    """A due step of a partition nobody completes (a lost record, a stuck fan-out) must not wait in
    silence: counted as overdue (for /live and the alert); a booster held by the lag gate is not."""
    w = World()
    late = schedule(now() - w.settings.allowed_lateness_ms - w.settings.overdue_ms - 60_000, "late")
    fresh = schedule(now() - w.settings.allowed_lateness_ms - 1000, "fresh")
    w.control(Scheduled(late, T0), partition=1)
    w.control(Scheduled(fresh, T0), partition=1)
    asyncio.run(w.deadlines.look_for_deadlines())
    assert w.deadlines.overdue == 1
    assert w.metrics.get("booster_overdue_deadlines", step="partition") == 1
    asyncio.run(w.deadlines.look_for_deadlines())  # its tick was sent; still not fired: still overdue
    assert w.deadlines.overdue == 1
    w.deadlines.forget_partitions({1})
    w.gate.lag[TopicPartition("t.message.sent", 1)] = 5  # the inputs are behind: waiting, not overdue
    asyncio.run(w.deadlines.look_for_deadlines())
    assert w.deadlines.overdue == 0 and w.metrics.get("booster_deadlines_waiting") == 2


def test_only_a_step_of_a_booster_counts_as_the_worker_working_on_them() -> None:
    """/live restarts a worker with overdue boosters only when it does no step of any: its progress
    clock moves with control records and ticks that find a step due, not with ticks for nothing."""
    w = World()
    w.deadlines.stepped_at = 0.0
    w.control(Tick("nobody", now()), partition=1)  # no such booster here: no step
    assert w.deadlines.stepped_at == 0.0
    due = schedule(now() - w.settings.allowed_lateness_ms - 1000, "due")
    w.control(Scheduled(due, T0), partition=1)
    assert w.deadlines.stepped_at > 0.0
    w.deadlines.stepped_at = 0.0
    w.control(Tick("due", now()), partition=1)  # its count is due: a step
    assert w.deadlines.stepped_at > 0.0


def test_a_report_waiting_long_for_a_partition_s_summary_is_overdue() -> None:
    from booster.processors.audience import Tally
    from booster.processors.packing import pack_summaries
    from booster.processors.summaries import PartitionSummary, SummaryState

    w = World()
    summaries = MemoryTable("summaries")
    reports = Reports(w.reports, summaries, Notices(w.notices, w.metrics), w.metrics)
    s = w.settings
    old, recent = schedule(now() - s.overdue_ms - s.allowed_lateness_ms - 1000, "old"), schedule(now(), "recent")
    for sch in (old, recent):
        part = PartitionSummary(sch.campaign_id, 0, 2, sch, None, Tally(3))
        summaries.partition(0).write({sch.campaign_id.encode(): pack_summaries(SummaryState({0: part}))})
    summaries.partition(0).write({b"done": pack_summaries(SummaryState(done=True, deadline=old.deadline))})
    assert reports.look_for_missing([0], now(), s.allowed_lateness_ms, s.overdue_ms) == 1
    assert w.metrics.get("booster_overdue_deadlines", step="report") == 1
