"""Launches and accounts: a launch is re-keyed by account to meet `account.channels` in one
partition, validated once per campaign (R1-R3, R7), and an accepted schedule is broadcast to every
partition of booster.control. A launch whose account's channels are not known yet waits for them,
reported PENDING, and is REJECTED if they have not come once its deadline and the allowed lateness
are past (R15). Cancellations are broadcast as they come.

campaign.launched, campaign.booster-cancelled -> `route`  -> launches-by-account, booster.control
account.channels, launches-by-account         -> `decide` -> booster.control, booster.reports
timer: a pending launch past its deadline, once account.channels is read up to a moment after it
                                              -> a TICK into its launches-by-account partition -> `decide`
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import assert_never

from aiokafka import TopicPartition

from booster.processors.boosters import (
    Accepted,
    AwaitAccount,
    Duplicate,
    Forgotten,
    LaunchDecision,
    NoBooster,
    ReasonCode,
    Refused,
    expire_pending,
    launch_moment,
    launch_status,
    on_account,
    on_launch,
    pending_report,
)
from booster.processors.campaigns import (
    LiveBooster,
    NoBoosterFor,
    Scheduled,
    Tick,
    access_changes,
    broadcast_again,
    outlived,
)
from booster.processors.events import (
    AccountChannels,
    BoosterCancelled,
    CampaignLaunched,
    account_from_record,
    launch_from_record,
)
from booster.processors.notices import launch_fingerprint
from booster.processors.packing import (
    pack_account,
    pack_launch_decision,
    pack_live_booster,
    unpack_account,
    unpack_launch_decision,
    unpack_live_booster,
)
from booster.schemas import codec
from booster.streams.control import Control
from booster.streams.gate import LagGate
from booster.streams.metrics import Metrics
from booster.streams.records import ARRIVED_AT, Incoming, Topic, log_decision, now_ms, run_timer
from booster.streams.reports import Reports
from booster.streams.store import (
    PartitionStore,
    Table,
    pending_key,
    pending_launch_key,
    pending_prefix,
    split_pending_key,
)
from booster.streams.wire import control_record

RETICK_SECONDS = 15.0  # a pending launch's expiry tick not done by then is sent again
# a launch cancelled for lateness, by whose: the upstream published it late, or the workers were behind
LATE_BY = {ReasonCode.STALE_LAUNCH: "upstream", ReasonCode.ENGINE_LATE: "engine"}


class Launches:
    def __init__(
        self,
        *,
        by_account: Topic,
        control: Control,
        reports: Reports,
        accounts: Table,
        pending: Table,
        decided: Table,
        live: Table,
        metrics: Metrics,
        staleness_ms: int,
        engine_lateness_ms: int,
        allowed_lateness_ms: int,
        decision_retention_ms: int,
        active_partitions: Callable[[], list[int]],
        gate: LagGate,
        accounts_topic: str,
    ) -> None:
        self.by_account = by_account
        self.control = control
        self.reports = reports
        self.accounts = accounts
        self.pending = pending
        self.decided = decided
        self.live = live  # the account's scheduled boosters, keyed as pending launches are
        self.metrics = metrics
        self.staleness_ms = staleness_ms
        self.engine_lateness_ms = engine_lateness_ms
        self.allowed_lateness_ms = allowed_lateness_ms
        self.decision_retention_ms = decision_retention_ms
        self.active_partitions = active_partitions  # of launches-by-account, on this worker
        self._expiring: dict[tuple[str, int], float] = {}  # (campaign, partition) -> monotonic time ticked
        self.gate = gate
        self.accounts_topic = accounts_topic  # the real name of account.channels
        # (campaign, partition) -> account.channels' end offset taken after the launch's deadline
        self._snapshots: dict[tuple[str, int], dict[TopicPartition, int]] = {}

    async def route(self, incoming: Incoming) -> None:
        """campaign.launched goes to its account's partition; a cancellation to every partition."""
        record = incoming.decode()
        campaign_id = incoming.key_text(record, "campaign_id")
        if incoming.topic == "campaign.launched":
            # when the launch reached Kafka goes with it: that judges it stale, not when a worker got
            # round to re-keying it (a header: the copy is stamped now, which the broker always takes)
            arrived = [(ARRIVED_AT, str(incoming.arrived_at()).encode())]
            # the copy is internal: in the contract's own ids when it was read by a schema registry's
            copy = incoming.value if codec().registry is None else codec().encode(incoming.topic, record, internal=True)
            await self.by_account.send(key=record["account_id"].encode(), value=copy, headers=arrived)
        else:
            await self.control.broadcast(BoosterCancelled(campaign_id, record["cancelled_at"]))
            log_decision("cancel-requested", campaign_id, cancelled_at=record["cancelled_at"])

    async def decide(self, incoming: Incoming) -> None:
        """An account's channels, a launch re-keyed by account, or the timer's tick for a pending launch
        past its deadline: decide what can be decided."""
        if incoming.topic == "account.channels":
            await self._account(incoming)
        elif codec().schema_of(incoming.value).name == "booster.control":
            await self._expire(incoming)
        else:
            await self._launch(incoming)

    async def _account(self, incoming: Incoming) -> None:
        record = incoming.decode()
        account_id = incoming.key_text(record, "account_id")
        event = account_from_record(account_id, record)
        accounts, pending = self.accounts.partition(incoming.partition), self.pending.partition(incoming.partition)
        raw = accounts.get(account_id.encode())
        waiting = list(pending.items(pending_prefix(account_id)))
        launches = [kept_launch(value) for _, value in waiting]
        old = None if raw is None else unpack_account(account_id, raw)
        now = now_ms()
        account, decisions = on_account(old, event, launches, now=now, engine_lateness_ms=self.engine_lateness_ms)
        accounts.write({account_id.encode(): pack_account(account)})
        await self._tell_live_boosters(account_id, old, account, incoming.partition)
        for (_, value), launch, decision in zip(waiting, launches, decisions, strict=True):
            await self._apply(decision, incoming.partition, launch_fingerprint(value), launch_moment(launch))
        # only once every one is decided and broadcast: a failure half-way (retried, or replayed after a
        # restart) finds them still waiting and decides them again, which changes nothing downstream
        pending.write(dict.fromkeys(key for key, _ in waiting))
        for launch in launches:  # decided: the expiry's snapshot is of no more use
            self._snapshots.pop((launch.campaign_id, incoming.partition), None)

    async def _launch(self, incoming: Incoming) -> None:
        record = codec().decode("campaign.launched", incoming.value, internal=True)
        account_id = incoming.key_text(record, "account_id")
        launch = launch_from_record(record)
        p = incoming.partition
        fingerprint = launch_fingerprint(incoming.value or b"")  # decoded above: never None here
        raw_decided = self.decided.partition(p).get(launch.campaign_id.encode())
        row = None if raw_decided is None else unpack_launch_decision(raw_decided)
        decided = None if row is None else row.status
        decided_fingerprint = None if row is None else row.fingerprint
        if decided_fingerprint not in (None, fingerprint):
            # G5: another launch of the campaign id is decided as well; the control partitions keep the
            # one that wins, whatever the order, and tell the account of the one that lost
            decided = None
        raw_account = self.accounts.partition(p).get(account_id.encode())
        now = now_ms()
        step = on_launch(
            decided,
            None if raw_account is None else unpack_account(account_id, raw_account),
            launch,
            now=now,
            arrived_at=incoming.arrived_at(),
            staleness_ms=self.staleness_ms,
            engine_lateness_ms=self.engine_lateness_ms,
            decision_retention_ms=self.decision_retention_ms,
        )
        if isinstance(step, Accepted | Refused):  # how long after reaching Kafka the workers decided it
            delay = max(0, now - incoming.arrived_at()) / 1000
            self.metrics.observe("booster_launch_decision_delay_seconds", delay)
        match step:
            case Duplicate():  # the same launch again (a decision kept by an older worker has no fingerprint)
                self.metrics.inc("booster_duplicate_launches_total")
                assert row is not None  # a duplicate of a decision kept in this row
                again = broadcast_again(launch, step.decided, now_ms(), row.quiet_hours, row.frequency_cap)
                if again is not None:
                    await self.control.broadcast(again)
            case AwaitAccount():
                pending = self.pending.partition(p)
                key = pending_launch_key(account_id, launch.campaign_id, fingerprint)
                told = pending.get(key) is not None  # the launch sent again while it waits
                pending.write({key: incoming.value})
                log_decision("pending-account", launch.campaign_id, account_id=account_id)
                if not told:
                    await self.reports.send(pending_report(launch), at=launch.launched_at)  # and its notice
            case Forgotten():
                self.metrics.inc("booster_forgotten_launches_total")
                log_decision("launch-forgotten", launch.campaign_id, moment=step.moment)
            case Accepted() | Refused() | NoBooster():
                await self._apply(step, p, fingerprint, launch_moment(launch))
            case _:
                assert_never(step)

    async def _apply(self, decision: LaunchDecision, partition: int, fingerprint: str, moment: int) -> None:
        match decision:
            case NoBooster():
                await self.control.broadcast(NoBoosterFor(decision.campaign_id, decision.launched_at))
            case Refused():
                # its rows and later events go as for a launch without booster (R12), not in 7 days
                await self.control.broadcast(NoBoosterFor(decision.campaign_id, decision.launched_at))
                await self.reports.send(decision.report, at=decision.launched_at)
                code = decision.report.reason_code
                late = None if code is None else LATE_BY.get(code)
                if late is not None:
                    self.metrics.inc("booster_late_launches_total", by=late)
            case Accepted():
                await self.control.broadcast(Scheduled(decision.schedule, decision.launched_at))
                await self.reports.send(decision.report, at=decision.launched_at)
                sch = decision.schedule
                live = self.live.partition(partition)
                known = _live_boosters(live, sch.account_id)
                gone = outlived(known, now_ms(), self.allowed_lateness_ms)  # bounded by 7 days' boosters
                rows: dict[bytes, bytes | None] = {pending_key(sch.account_id, b.campaign_id): None for b in gone}
                booster = LiveBooster(sch.campaign_id, sch.channel, sch.deadline)
                rows[pending_key(sch.account_id, sch.campaign_id)] = pack_live_booster(booster)
                live.write(rows)
            case _:
                assert_never(decision)
        schedule = decision.schedule if isinstance(decision, Accepted) else None
        quiet_hours = None if schedule is None else schedule.quiet_hours
        frequency_cap = None if schedule is None else schedule.frequency_cap
        row = pack_launch_decision(launch_status(decision), fingerprint, moment, quiet_hours, frequency_cap)
        self.decided.partition(partition).write({decision.campaign_id.encode(): row})

    async def _tell_live_boosters(
        self, account_id: str, old: AccountChannels | None, new: AccountChannels, partition: int
    ) -> None:
        """R15: the account's scheduled boosters whose channel it lost (or got back) before their
        deadline are told; those no later change can matter to are forgotten."""
        live = self.live.partition(partition)
        changes, done = access_changes(old, new, _live_boosters(live, account_id))
        for change in changes:
            await self.control.broadcast(change)
            log_decision("channel-access", change.campaign_id, enabled=change.enabled, at=change.at)
        live.write({pending_key(account_id, b.campaign_id): None for b in done})

    # -- pending launches past their deadline (R15) ------------------------------------------------

    async def timer(self) -> None:
        await run_timer("looking for expired pending launches", self.look_for_expired_launches)

    async def look_for_expired_launches(self) -> None:
        """A pending launch past its deadline gets a tick into its own partition, so its rejection is
        decided by the agent that owns the partition's tables, in order with its other records; and
        only once that agent has read the partition of account.channels up to a moment after the
        deadline and its allowed lateness: channels that reached Kafka before it decide the launch,
        however far behind the workers are (G1)."""
        now = now_ms()
        for p in self.active_partitions():
            for key, value in self.pending.partition(p).items():
                launch = kept_launch(value)
                if expire_pending(launch, now, self.allowed_lateness_ms) is None:
                    continue
                ticked = self._expiring.get((launch.campaign_id, p))
                if ticked is not None and time.monotonic() - ticked < RETICK_SECONDS:
                    continue
                if not await self._channels_read(launch.campaign_id, p):
                    continue
                account_id, _ = split_pending_key(key)
                tick = codec().encode("booster.control", control_record(Tick(launch.campaign_id, now)))
                await self.by_account.send(key=account_id.encode(), value=tick, partition=p)
                self._expiring[(launch.campaign_id, p)] = time.monotonic()

    async def _channels_read(self, campaign_id: str, p: int) -> bool:
        """This partition of account.channels is processed up to its end as it was at a first look
        after the launch's deadline and allowed lateness (taken once: new records cannot hold the
        expiry back for ever)."""
        tp = TopicPartition(self.accounts_topic, p)
        ends = self._snapshots.get((campaign_id, p))
        first_look = ends is None
        if ends is None:
            ends = self._snapshots[(campaign_id, p)] = await self.gate.end_offsets([tp])
        behind = await self.gate.lagging([tp], ends)
        if behind and first_look:  # one line per launch held, not one per look
            log_decision("pending-waiting-for-lag", campaign_id, partition=p, behind=behind.get(tp, 0))
        return not behind

    async def _expire(self, incoming: Incoming) -> None:
        record = codec().decode("booster.control", incoming.value)
        campaign_id, p = record["campaign_id"], incoming.partition
        self._expiring.pop((campaign_id, p), None)
        self._snapshots.pop((campaign_id, p), None)
        if not incoming.key:
            return
        pending = self.pending.partition(p)
        # every launch of the campaign waiting for the account (none: decided meanwhile, its channels came)
        waiting = [
            (key, raw)
            for key, raw in pending.items(pending_prefix(incoming.key.decode()))
            if split_pending_key(key)[1] == campaign_id
        ]
        for key, raw in waiting:
            launch = kept_launch(raw)
            refused = expire_pending(launch, now_ms(), self.allowed_lateness_ms)
            if refused is None:
                continue
            pending.write({key: None})
            await self._apply(refused, p, launch_fingerprint(raw), launch_moment(launch))

    def forget_partitions(self, partitions: set[int]) -> None:
        for key in [k for k in self._expiring if k[1] in partitions]:
            del self._expiring[key]
        for key in [k for k in self._snapshots if k[1] in partitions]:
            del self._snapshots[key]


def kept_launch(value: bytes | None) -> CampaignLaunched:
    """A launch as launches-by-account and the pending-launches table keep it (the contract's own ids)."""
    return launch_from_record(codec().decode("campaign.launched", value, internal=True))


def _live_boosters(live: PartitionStore, account_id: str) -> list[LiveBooster]:
    """An account's scheduled boosters, as its partition of account-boosters keeps them."""
    rows = live.items(pending_prefix(account_id))
    return [unpack_live_booster(split_pending_key(key)[1], value) for key, value in rows]
