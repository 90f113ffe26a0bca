"""Deadlines: the timer that finds due boosters of this worker's active partitions, the control agent
that folds schedules, cancellations, "no booster" and decisions into each partition's campaign state,
and the ticks that decide a booster and fan a partition's share of it out.

timer (every BOOSTER_TICK_INTERVAL_SECONDS) -> due(state)? -> lag gate open (G1)? -> TICK into the partition
booster.control -> `on_control`: SCHEDULE / CANCEL / NO_BOOSTER / DECIDED / COUNTED fold into the state;
TICK, in three steps (R13), and a fourth once the booster's measurement window ends (`streams/uplift.py`):
  count:  every partition tells the deciding one whether all its recipients opened (COUNTED, R7),
          again every RETICK_SECONDS until the decision arrives; the deciding partition answers a
          count that comes after its decision with the decision
  decide: the deciding partition, once every partition has counted, decides and broadcasts DECIDED
  fire:   every partition fans out as decided

The fan-out runs inside the control agent's stream iteration; once its commands are committed, the
campaign's rows go (`retention.FiredRows`), after this worker's other fan-outs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import assert_never

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from booster.config import Settings
from booster.processors.audience import all_opened
from booster.processors.campaigns import (
    DECIDING_PARTITION,
    CampaignPartition,
    ChannelAccess,
    Counted,
    Decided,
    Due,
    NoBoosterFor,
    Scheduled,
    Tick,
    called_off_by_launch,
    decide_booster,
    due,
    evolve_campaign,
    evolve_campaign_decided,
    evolve_campaign_fired,
    overdue,
)
from booster.processors.events import BoosterCancelled
from booster.processors.notices import cancel_refused_notice, lost_launch_notice
from booster.schemas.catalog import CONTACT_INPUT_TOPICS, REROUTED
from booster.streams.audience import delete_rows, recipient_states
from booster.streams.campaigns import CampaignStates
from booster.streams.control import Control
from booster.streams.fanout import Fanout
from booster.streams.gate import COMMITTED_SECONDS, LagGate
from booster.streams.metrics import Metrics
from booster.streams.notices import Notices
from booster.streams.records import Incoming, log_decision, now_ms, run_timer
from booster.streams.reports import Reports
from booster.streams.retention import FiredRows
from booster.streams.store import Table
from booster.streams.uplift import Measurements
from booster.streams.wire import control_event

log = logging.getLogger("booster.worker")

RETICK_SECONDS = 15.0  # a tick not done by then (lost, failed fan-out) is sent again
WAITING_LOG_SECONDS = 10.0  # a deadline held by the gate is logged this often


@dataclass
class _Watch:
    """The timer's memory of one due campaign in one partition, until it fires or is forgotten."""

    ticked_at: float | None = None  # monotonic time of the last tick sent
    snapshot: dict[TopicPartition, int] | None = None  # the gate's end offsets, taken once
    rerouted: dict[TopicPartition, int] | None = None  # then what was forwarded here, once those are reached
    logged_at: float | None = None  # monotonic time of the last waiting-for-lag line
    lagging: bool = False  # the lag gate held it at the last look: the inputs are behind


class Deadlines:
    def __init__(
        self,
        *,
        settings: Settings,
        campaigns: CampaignStates,
        recipients: Table,
        contacts: Table,
        sent_history: Table,
        control: Control,
        gate: LagGate,
        fanout: Fanout,
        notices: Notices,
        reports: Reports,
        metrics: Metrics,
        active_partitions: Callable[[], list[int]],
        fired_rows: FiredRows,
        engagement: Table,
        measurements: Measurements,
    ) -> None:
        self.settings = settings
        self.campaigns = campaigns
        self.recipients = recipients
        self.contacts = contacts
        self.sent_history = sent_history
        self.control = control
        self.gate = gate
        self.fanout = fanout
        self.notices = notices
        self.reports = reports
        self.metrics = metrics
        self.active_partitions = active_partitions
        self.fired_rows = fired_rows
        self.engagement = engagement
        self.measurements = measurements
        self._watches: dict[tuple[str, int], _Watch] = {}
        self.overdue = 0  # due steps of this worker's partitions past BOOSTER_OVERDUE_SECONDS, inputs caught up
        self.stepped_at = time.monotonic()  # the control agent's last step done: this worker is working
        self._stepped = False

    # -- the timer ---------------------------------------------------------------------------------

    async def timer(self) -> None:
        await run_timer("looking for deadlines", self.look_for_deadlines)

    async def look_for_deadlines(self) -> None:
        now = now_ms()
        waiting = stuck = 0
        s = self.settings
        for p in self.active_partitions():
            due_here = [
                (campaign_id, d, overdue(state, now, s.allowed_lateness_ms, s.overdue_ms))
                for campaign_id, state in self.campaigns.in_partition(p)
                if (d := self._due(state, p, now)) is not None
            ]
            for campaign_id, d, late in due_here:
                watch = self._watch(campaign_id, p)
                if watch.ticked_at is not None and time.monotonic() - watch.ticked_at < RETICK_SECONDS:
                    stuck += late and not watch.lagging
                    continue
                if d.kind in ("count", "decide", "fire", "measure") and not await self._gate_open(
                    campaign_id, p, watch
                ):
                    waiting += 1
                    watch.lagging = True
                    continue
                watch.lagging = False
                stuck += late
                if late:
                    log_decision("overdue", campaign_id, partition=p, step=d.kind, late_by_ms=now - (d.gate_at or now))
                await self.control.send(Tick(campaign_id, now), p)
                watch.ticked_at = time.monotonic()
        self.overdue = stuck
        self.metrics.set("booster_deadlines_waiting", waiting)
        self.metrics.set("booster_overdue_deadlines", stuck, step="partition")

    async def _gate_open(self, campaign_id: str, p: int, watch: _Watch) -> bool:
        """G1: every input this partition's deadline depends on is processed up to the snapshot, and
        then what that processing forwarded to this partition (misrouted facts on booster.rerouted;
        cancellations and channel changes on booster.control) up to a second snapshot taken once the
        first is reached."""
        deps = self.gate_inputs(p)
        if watch.snapshot is None:  # taken once, at a moment after deadline + lateness (due() says so)
            watch.snapshot = await self.gate.end_offsets(deps)
        if watch.rerouted is None:
            behind = await self.gate.lagging(deps, watch.snapshot, COMMITTED_SECONDS)
            if behind:
                self._log_waiting(campaign_id, p, watch, behind)
                return False
            watch.rerouted = await self.gate.end_offsets(self.forwarded_inputs(p))
        behind = await self.gate.lagging(self.forwarded_inputs(p), watch.rerouted, COMMITTED_SECONDS)
        if behind:
            self._log_waiting(campaign_id, p, watch, behind)
            return False
        return True

    def _due(self, state: CampaignPartition, partition: int, now: int) -> Due | None:
        s = self.settings
        return due(state, now, s.allowed_lateness_ms, deciding=partition == DECIDING_PARTITION, partitions=s.partitions)

    def gate_inputs(self, partition: int) -> list[TopicPartition]:
        s = self.settings
        every = range(s.partitions)
        # a misrouted fact of this partition's contacts may sit in any partition of its topic
        tps = [TopicPartition(s.topic(t), q) for t in CONTACT_INPUT_TOPICS for q in every]
        # a cancellation, and a change of an account's channels, reach this partition through one of
        # these, then this partition of booster.control (in the second phase, `forwarded_inputs`)
        tps += [TopicPartition(s.topic("campaign.booster-cancelled"), q) for q in every]
        tps += [TopicPartition(s.topic("account.channels"), q) for q in every]
        return tps

    def forwarded_inputs(self, partition: int) -> list[TopicPartition]:
        s = self.settings
        return [TopicPartition(s.topic(REROUTED), partition), TopicPartition(s.topic("booster.control"), partition)]

    def _watch(self, campaign_id: str, p: int) -> _Watch:
        return self._watches.setdefault((campaign_id, p), _Watch())

    def _log_waiting(self, campaign_id: str, p: int, watch: _Watch, lagging: dict[TopicPartition, int]) -> None:
        if watch.logged_at is not None and time.monotonic() - watch.logged_at < WAITING_LOG_SECONDS:
            return
        watch.logged_at = time.monotonic()
        behind = {f"{tp.topic}[{tp.partition}]": n for tp, n in sorted(lagging.items())}
        log_decision("waiting-for-lag", campaign_id, partition=p, behind=behind)

    def forget_partitions(self, partitions: set[int]) -> None:
        for key in [k for k in self._watches if k[1] in partitions]:
            del self._watches[key]

    def watched(self) -> int:
        return len(self._watches)

    # -- the control agent -------------------------------------------------------------------------

    async def on_control(self, incoming: Incoming) -> None:
        self._stepped = True  # a tick that finds nothing due is no step: `_tick` says so
        await self._on_control(incoming)
        if self._stepped:
            self.stepped_at = time.monotonic()

    async def _on_control(self, incoming: Incoming) -> None:
        record = incoming.decode()
        campaign_id = incoming.key_text(record, "campaign_id")
        p = incoming.partition
        state = self.campaigns.get(campaign_id, p)
        event = control_event(record)
        deciding = p == DECIDING_PARTITION  # what accounts are told about the booster is told from there, once
        match event:
            case Tick():
                await self._tick(campaign_id, p, state)
                return
            case BoosterCancelled():
                if deciding:  # a cancel after the decision is refused
                    await self.notices.send(cancel_refused_notice(state, event))
            case Scheduled():
                if deciding:  # G5: another launch of the campaign id lost to this one, or this one lost
                    await self.notices.send(lost_launch_notice(state, event))
            case Counted():
                if state is not None and state.decision is not None:  # its partition missed the decision
                    await self.control.send(replace(state.decision, schedule=state.schedule), event.partition)
            case NoBoosterFor() | Decided() | ChannelAccess():
                pass
            case _:
                assert_never(event)
        new = evolve_campaign(state, event)
        if new == state:
            return
        if new.no_booster and not (state is not None and state.no_booster):  # R1, R12: its rows go at once
            delete_rows(self.recipients.partition(p), campaign_id)
        self.campaigns.put(campaign_id, p, new)
        if deciding and (report := called_off_by_launch(state, new)) is not None:
            await self.reports.send(report, at=event.cancelled_at if isinstance(event, BoosterCancelled) else event.at)
        if isinstance(event, Decided | Counted):  # the next step may be due: tick for it at once
            self._watch(campaign_id, p).ticked_at = None

    async def _tick(self, campaign_id: str, p: int, state: CampaignPartition | None) -> None:
        now = now_ms()
        d = None if state is None else self._due(state, p, now)
        if state is None or d is None:
            self._stepped = False
            return
        if d.kind == "count":
            await self._count(campaign_id, p, state, now)
            return
        if d.kind == "decide":
            await self._decide(campaign_id, p, state, now)
            return
        if d.kind == "measure":
            try:
                await self.measurements.measure(campaign_id, p, state, now)
            except KafkaError as exc:
                log.warning("measuring %s in partition %s failed (%s); it will be retried", campaign_id, p, exc)
                self._watch(campaign_id, p).ticked_at = None
                return
            self._watches.pop((campaign_id, p), None)
            return
        if d.kind == "forget":
            if state.fired:  # a worker that stopped before `fired_rows` deleted them left them
                delete_rows(self.recipients.partition(p), campaign_id)
                delete_rows(self.engagement.partition(p), campaign_id)  # a window that was not measured
            self._done(campaign_id, p, None)
            if state.fired:  # else the topic would keep every booster's progress for ever
                await self.fanout.forget(campaign_id, p)
            return
        if d.kind == "expire":
            dropped = delete_rows(self.recipients.partition(p), campaign_id)
            self._done(campaign_id, p, None)
            log_decision("expired-without-booster", campaign_id, partition=p, rows=dropped)
            return
        await self._fire(campaign_id, p, state, now)

    async def _count(self, campaign_id: str, p: int, state: CampaignPartition, now: int) -> None:
        """R7: whether every recipient here opened the original, for the deciding partition."""
        assert state.schedule is not None
        schedule = state.schedule
        rows = recipient_states(self.recipients.partition(p), campaign_id)
        opened = all_opened(rows, schedule.deadline, count_machine_opens=schedule.count_machine_opens)
        await self.control.send(Counted(campaign_id, now, p, opened), DECIDING_PARTITION)

    async def _decide(self, campaign_id: str, p: int, state: CampaignPartition, now: int) -> None:
        """R13: the one decision, kept here at once (a cancel that comes after it is refused) and
        broadcast; every partition, this one included, fans out as it says."""
        decision = decide_booster(state, campaign_id, now)
        self.campaigns.put(campaign_id, p, evolve_campaign_decided(state, decision))
        await self.control.broadcast(decision)
        self._watch(campaign_id, p).ticked_at = None  # this partition's fire tick comes next, not in 15 s
        reason = None if decision.reason is None else decision.reason.value
        log_decision("decided", campaign_id, send=reason is None, reason=reason, cancelled_at=decision.cancelled_at)

    async def _fire(self, campaign_id: str, p: int, state: CampaignPartition, now: int) -> None:
        started = time.monotonic()
        try:
            result = await self.fanout.run(
                state=state,
                partition=p,
                recipients=self.recipients.partition(p),
                contacts=self.contacts.partition(p),
                history=self.sent_history.partition(p),
                now=now,
            )
        except KafkaError as exc:
            log.warning("fan-out of %s in partition %s failed (%s); it will be retried", campaign_id, p, exc)
            self._watch(campaign_id, p).ticked_at = None
            return
        self._done(campaign_id, p, evolve_campaign_fired(state, result.outcomes))
        self.fired_rows.add(campaign_id, p)  # after the fan-outs: the next partition's commands first
        self.metrics.inc("booster_commands_total", result.commands)
        self.metrics.inc("booster_fanouts_total")
        deadline = state.schedule.deadline if state.schedule is not None else now
        took = time.monotonic() - started
        self.metrics.observe("booster_fire_delay_seconds", max(0, now - deadline) / 1000)
        self.metrics.observe("booster_fanout_duration_seconds", took)
        summary = result.summary
        log_decision(
            "fired-partition",
            campaign_id,
            partition=p,
            commands=result.commands,
            audience=None if summary is None else summary.tally.audience,
            seconds=round(took, 3),
            late_by_ms=now - deadline,
        )

    def _done(self, campaign_id: str, p: int, state: CampaignPartition | None) -> None:
        """The campaign fired here or is forgotten: its state is written and the timer's memory goes."""
        self.campaigns.put(campaign_id, p, state)
        self._watches.pop((campaign_id, p), None)
