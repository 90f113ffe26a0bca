"""What one partition knows about one campaign's booster, folded from the control topic, and what
the deadline timer should do with it.

A campaign's schedule, cancellation and "no booster" are broadcast to every partition; each partition
folds them into its own `CampaignPartition`, fires its share of the booster once, and forgets the
campaign when no event of it can matter any more (R12, G8).

One booster, one decision (R13): when the window expires, every partition counts whether all its
recipients opened the original (R7) and tells the deciding partition; that one alone then decides
whether the booster is sent or called off (cancelled on request, or a 100 % open rate), and
broadcasts that; every partition fans out its share as decided, so either every partition sends or
none does, and a cancel that reaches the deciding partition after the decision is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal, assert_never

from booster.processors.audience import full_open_rate
from booster.processors.boosters import (
    MAX_DELAY_MS,
    LaunchStatus,
    ReasonCode,
    Report,
    Schedule,
    launch_report,
    schedule_of,
)
from booster.processors.events import AccountChannels, BoosterCancelled, CampaignLaunched, Channel
from booster.processors.frequency import FrequencyCap
from booster.processors.quiet import QuietHours
from booster.processors.uplift import in_window


class ControlKind(StrEnum):
    """The kinds of record on booster.control (the Avro enum ControlKind)."""

    SCHEDULE = "SCHEDULE"
    CANCEL = "CANCEL"
    NO_BOOSTER = "NO_BOOSTER"
    TICK = "TICK"
    DECIDED = "DECIDED"
    COUNTED = "COUNTED"
    CHANNEL = "CHANNEL"


# The partition of booster.control that takes every booster's fire-or-cancel decision (R13). One
# decision per booster is little work, and a fixed partition needs no agreement on a hash.
DECIDING_PARTITION = 0


@dataclass(frozen=True, slots=True)
class Scheduled:
    """The launch was accepted: this is the booster's schedule."""

    schedule: Schedule
    at: int


@dataclass(frozen=True, slots=True)
class NoBoosterFor:
    """The launch carried no booster settings (R1): the campaign's rows can go."""

    campaign_id: str
    at: int


@dataclass(frozen=True, slots=True)
class Tick:
    """The timer found this partition's deadline due and its inputs caught up: fan out now."""

    campaign_id: str
    at: int


@dataclass(frozen=True, slots=True)
class Decided:
    """The booster's one decision, taken by the deciding partition once its window expired, its inputs
    were processed and every partition had counted: sent (`reason` None), or called off, by the cancel
    made at `cancelled_at` (CANCEL_REQUESTED) or because everyone opened the original (FULL_OPEN_RATE)."""

    campaign_id: str
    at: int
    cancelled_at: int | None
    reason: ReasonCode | None = None
    # the schedule decided on (G5: the winner among conflicting launches); every partition fans out with
    # it. None in decisions made before it was carried: the partition's own schedule then.
    schedule: Schedule | None = None


@dataclass(frozen=True, slots=True)
class Counted:
    """One partition's part of R7's 100 % open rate, sent to the deciding partition (`all_opened`:
    None when the partition has no recipient of the campaign)."""

    campaign_id: str
    at: int
    partition: int
    all_opened: bool | None


@dataclass(frozen=True, slots=True)
class ChannelAccess:
    """The account's access to the booster's channel changed at `at` (account.channels' updated_at):
    revoked (`enabled` False) or given back (R15). `account_id` None: a record from before it was
    carried, taken as the booster's account."""

    campaign_id: str
    at: int
    enabled: bool
    account_id: str | None = None


CampaignEvent = Scheduled | BoosterCancelled | NoBoosterFor | Decided | Counted | ChannelAccess
ControlEvent = CampaignEvent | Tick


def control_kind(event: ControlEvent) -> ControlKind:
    match event:
        case Scheduled():
            return ControlKind.SCHEDULE
        case BoosterCancelled():
            return ControlKind.CANCEL
        case NoBoosterFor():
            return ControlKind.NO_BOOSTER
        case Tick():
            return ControlKind.TICK
        case Decided():
            return ControlKind.DECIDED
        case Counted():
            return ControlKind.COUNTED
        case ChannelAccess():
            return ControlKind.CHANNEL
        case _:
            assert_never(event)


def campaign_of(event: ControlEvent) -> str:
    return event.schedule.campaign_id if isinstance(event, Scheduled) else event.campaign_id


@dataclass(frozen=True, slots=True)
class CampaignPartition:
    """What one partition knows about one campaign's booster.

    Broadcast facts (schedule, cancellation, no booster, the decision) arrive in every partition;
    `fired` is set once this partition's fan-out is complete (its rows go after it); `first_seen_at`
    ages out the rows of campaigns whose launch never says they have a booster (R12).
    """

    schedule: Schedule | None = None
    scheduled_at: int | None = None  # when the launch that gave `schedule` was made (None in older rows)
    cancelled_at: int | None = None
    no_booster: bool = False
    fired: bool = False
    first_seen_at: int | None = None
    decision: Decided | None = None  # the deciding partition's, the first that arrived
    counts: Mapping[int, bool | None] = field(default_factory=dict)  # in the deciding partition: each one's
    # changes of the channel's access (at, enabled, account_id or ""), in time order
    access: tuple[tuple[int, bool, str], ...] = ()
    # for the uplift measurement, once fired: the offsets of booster.audience in this partition between
    # which its outcomes are (None: unknown, from the start, or to the end), and whether its measurement was sent
    outcomes: tuple[int | None, int | None] | None = None
    measured: bool = False

    @property
    def decided(self) -> bool:
        """The booster's one decision is known here (kept, or this partition already fired)."""
        return self.decision is not None or self.fired


def launch_rank(schedule: Schedule, launched_at: int | None) -> tuple[int, str, str, str, str, str, int]:
    """G5: which of several accepted launches of one campaign id wins: the earliest made, then, for
    launches made at the same moment, the first by their booster's settings. A total order on what the
    launches say, so every partition picks the same one whatever the order they arrive in. (A schedule
    kept before launches were ranked has no launch time: it ranks first, as the first one won then.)"""
    return (
        -1 if launched_at is None else launched_at,
        schedule.account_id,
        schedule.booster_name,
        schedule.channel,
        schedule.criterion,
        schedule.content_ref,
        schedule.deadline,
    )


def evolve_campaign_schedule(
    state: CampaignPartition | None, schedule: Schedule, launched_at: int | None = None
) -> CampaignPartition:
    """The winning schedule (`launch_rank`) until the booster is decided; after that it is the decided
    one, whatever launch comes."""
    s = state or CampaignPartition()
    if s.schedule is None:
        return replace(s, schedule=schedule, scheduled_at=None if s.decided else launched_at)
    if s.decided:
        return s
    if launch_rank(schedule, launched_at) < launch_rank(s.schedule, s.scheduled_at):
        return replace(s, schedule=schedule, scheduled_at=launched_at)
    return s


def lost_launch(state: CampaignPartition | None, event: Scheduled) -> tuple[Schedule, int, Schedule] | None:
    """G5: the schedule that loses when `event` meets the state's (the loser, when its launch was made,
    and the schedule the booster keeps), None when they do not conflict. A launch that comes after the
    booster was decided loses whatever its rank."""
    if state is None or state.schedule is None or event.schedule == state.schedule:
        return None
    kept = evolve_campaign_schedule(state, event.schedule, event.at)
    if kept.schedule == event.schedule:
        return state.schedule, -1 if state.scheduled_at is None else state.scheduled_at, event.schedule
    return event.schedule, event.at, state.schedule


def evolve_campaign_cancel(state: CampaignPartition | None, event: BoosterCancelled) -> CampaignPartition:
    s = state or CampaignPartition()
    earliest = event.cancelled_at if s.cancelled_at is None else min(s.cancelled_at, event.cancelled_at)
    return replace(s, cancelled_at=earliest)


def evolve_campaign_seen(state: CampaignPartition | None, at: int) -> CampaignPartition:
    """A message event of the campaign was seen at `at` (its record time): rows exist from then on."""
    s = state or CampaignPartition()
    if s.first_seen_at is not None and s.first_seen_at <= at:
        return s
    return replace(s, first_seen_at=at)


def evolve_campaign_no_booster(state: CampaignPartition | None, at: int) -> CampaignPartition:
    """R1: the campaign has no booster; its later events are dropped until it is forgotten. G5: a
    launch without booster, or whose booster was refused, calls off the booster of another launch of
    the campaign id, in whatever order they come, until that booster is decided: then it is too late
    (one booster, one decision)."""
    if state is not None and state.decided:
        return state
    return replace(evolve_campaign_seen(state, at), no_booster=True)


def called_off_by_launch(before: CampaignPartition | None, after: CampaignPartition) -> Report | None:
    """G5: the CANCELLED report of a scheduled booster that a launch without booster (or with a refused
    one) of the same campaign id calls off; again when the winning schedule changes meanwhile, so the
    last report names the winner. None when nothing changed."""
    if not after.no_booster or after.schedule is None or after.decided:
        return None
    if before is not None and before.no_booster and before.schedule == after.schedule:
        return None
    return launch_report(
        after.schedule,
        "CANCELLED",
        ReasonCode.DUPLICATE_LAUNCH,
        f"campaign {after.schedule.campaign_id} was also launched without a booster, or with one that was "
        "rejected: its booster is not sent",
    )


def evolve_campaign_decided(state: CampaignPartition | None, decision: Decided) -> CampaignPartition:
    """The first decision counts: the deciding partition may send it again (a retried tick), never
    another one. Its schedule, when it carries one, is the one every partition fans out with."""
    s = state or CampaignPartition()
    if s.decision is not None:
        return s
    # the decided schedule is the state's from now on (the decision is kept without it), and no launch
    # is ranked against it any more
    schedule = decision.schedule or s.schedule
    return replace(s, decision=replace(decision, schedule=None), schedule=schedule, scheduled_at=None)


def evolve_campaign_counts(state: CampaignPartition | None, counted: Counted) -> CampaignPartition:
    """The first count of each partition counts (a retried tick sends it again, with the same answer)."""
    s = state or CampaignPartition()
    if counted.partition in s.counts:
        return s
    return replace(s, counts={**s.counts, counted.partition: counted.all_opened})


def evolve_campaign_access(state: CampaignPartition | None, change: ChannelAccess) -> CampaignPartition:
    """Every distinct change is kept, in time order: the latest at or before the deadline counts, in
    whatever order they arrive."""
    s = state or CampaignPartition()
    entry = (change.at, change.enabled, change.account_id or "")
    return s if entry in s.access else replace(s, access=tuple(sorted((*s.access, entry))))


def channel_revoked(state: CampaignPartition) -> bool:
    """R15: the account's access to the booster's channel was revoked at the deadline (the latest change
    at or before it; at a tie, revoked)."""
    schedule = state.schedule
    if schedule is None:
        return False
    # G5: the account of another launch of the same campaign id has its own channels
    mine = [(at, enabled) for at, enabled, account in state.access if account in ("", schedule.account_id)]
    before = [(at, not enabled) for at, enabled in mine if at <= schedule.deadline]
    return bool(before) and max(before)[1]


def decide_booster(state: CampaignPartition, campaign_id: str, now: int) -> Decided:
    """R9, R15, R7 and R13: cancelled when a cancel made before the window expired has arrived; else
    when the account's access to the channel was revoked at the deadline; else when every recipient
    opened the original campaign, whatever the criterion; else sent."""
    schedule = state.schedule
    if (cancelled_at := cancelled_by(state)) is not None:
        return Decided(campaign_id, now, cancelled_at, ReasonCode.CANCEL_REQUESTED, schedule)
    if channel_revoked(state):
        return Decided(campaign_id, now, None, ReasonCode.CHANNEL_REVOKED, schedule)
    if full_open_rate(state.counts.values()):
        return Decided(campaign_id, now, None, ReasonCode.FULL_OPEN_RATE, schedule)
    return Decided(campaign_id, now, None, schedule=schedule)


def evolve_campaign_fired(
    state: CampaignPartition, outcomes: tuple[int | None, int | None] | None = None
) -> CampaignPartition:
    """This partition's fan-out is committed and its rows deleted: later events are dropped (but
    for the engagement its measurement counts). `outcomes`: where its outcomes are in booster.audience."""
    return replace(state, fired=True, outcomes=outcomes)


def evolve_campaign_measured(state: CampaignPartition) -> CampaignPartition:
    return replace(state, measured=True)


def engagement_counts(state: CampaignPartition | None, at: int) -> bool:
    """Whether a person's open or click at `at`, of the campaign's message or its booster's, counts in
    the booster's measurement: a booster measured and not measured yet, and `at` in its window."""
    if state is None or state.schedule is None or not measuring(state):
        return False
    return in_window(at, state.schedule.deadline, state.schedule.measurement_ms)


def measuring(state: CampaignPartition) -> bool:
    """A booster measured whose measurement has not been sent yet."""
    return not state.measured and measures(state)


def measures(state: CampaignPartition) -> bool:
    """Whether this booster's uplift is measured: it was sent (not called off), by a worker that
    schedules measurements (an older one's schedule has no window)."""
    return state.schedule is not None and state.schedule.measurement_ms > 0 and called_off(state) is None


def evolve_campaign(state: CampaignPartition | None, event: CampaignEvent) -> CampaignPartition:
    match event:
        case Scheduled():
            return evolve_campaign_schedule(state, event.schedule, event.at)
        case BoosterCancelled():
            return evolve_campaign_cancel(state, event)
        case NoBoosterFor():
            return evolve_campaign_no_booster(state, event.at)
        case Decided():
            return evolve_campaign_decided(state, event)
        case Counted():
            return evolve_campaign_counts(state, event)
        case ChannelAccess():
            return evolve_campaign_access(state, event)
        case _:
            assert_never(event)


def accepts_events(state: CampaignPartition | None) -> bool:
    """Events of a campaign with no booster, or whose booster fired here, are dropped."""
    return state is None or not (state.no_booster or state.fired)


def refuses_cancel(state: CampaignPartition | None, cancel: BoosterCancelled) -> bool:
    """R13: a cancel that comes after the booster's decision to send it, or one made after its window
    expired, changes nothing, and the account is told. (Known only where the schedule is: a cancel of a
    booster launched later, or forgotten, says nothing.)"""
    if state is None or state.schedule is None or called_off(state) is not None:
        return False  # (a booster called off already is cancelled: nothing to refuse)
    return state.decided or cancel.cancelled_at > state.schedule.deadline


def cancelled_by(state: CampaignPartition) -> int | None:
    """The `cancelled_at` of the cancel that calls the booster off, None when there is none: as
    decided, or before the decision (the preview) as it would be decided now."""
    if state.decision is not None:
        return state.decision.cancelled_at
    return state.cancelled_at if is_cancelled(state) else None


def called_off(state: CampaignPartition) -> ReasonCode | None:
    """Why the booster is not sent, None when it is: as decided, or before the decision, as a cancel
    would decide it (the open rate is known only to the decision)."""
    if state.decision is not None:
        return state.decision.reason
    return ReasonCode.CANCEL_REQUESTED if is_cancelled(state) else None


def is_cancelled(state: CampaignPartition) -> bool:
    """R9: a cancellation counts until the window expires."""
    return (
        state.schedule is not None and state.cancelled_at is not None and state.cancelled_at <= state.schedule.deadline
    )


@dataclass(frozen=True, slots=True)
class Due:
    """What the timer should do for a campaign in a partition at a moment."""

    kind: Literal["count", "decide", "fire", "expire", "forget", "measure"]
    gate_at: int | None  # for count, decide and fire: inputs must be processed past this event time first


def due(state: CampaignPartition, now: int, allowed_lateness_ms: int, *, deciding: bool, partitions: int) -> Due | None:
    """Whether a partition's campaign needs a tick now.

    A scheduled booster, once `now` is past its deadline plus the allowed lateness (the caller then
    checks the lag gate, G1, against `gate_at`): count (every partition, again from time to time
    until the decision arrives: a count or a decision lost on the way is sent again, and the deciding
    partition answers a count with the decision once it has one), then decide (the deciding
    partition, once all `partitions` have counted), then fire (every partition, once the decision has
    arrived). measure (the uplift): a fired booster that was sent, once its measurement window and the
    allowed lateness are past (the caller checks the lag gate against `gate_at` again). expire: rows of
    a campaign that never got a booster, after the longest possible window (R12). forget: the small
    marker kept after a booster fired (and was measured) or a launch said "no booster", or a
    cancellation of a campaign never launched here, once no event of that campaign can matter any more.
    """
    horizon = MAX_DELAY_MS + allowed_lateness_ms
    if state.fired and measuring(state):
        assert state.schedule is not None
        gate_at = state.schedule.deadline + state.schedule.measurement_ms + allowed_lateness_ms
        return Due("measure", gate_at) if now >= gate_at else None
    if state.fired or state.no_booster:
        ref = state.schedule.deadline if state.schedule is not None else state.first_seen_at
        if ref is not None and now >= ref + horizon:
            return Due("forget", None)
        return None
    if state.schedule is not None:
        gate_at = state.schedule.deadline + allowed_lateness_ms
        if now < gate_at:
            return None
        if state.decision is not None:
            return Due("fire", gate_at)
        if deciding and len(state.counts) >= partitions:
            return Due("decide", gate_at)
        return Due("count", gate_at)
    if state.first_seen_at is not None and now >= state.first_seen_at + horizon:
        return Due("expire", None)
    if state.first_seen_at is None and state.cancelled_at is not None and now >= state.cancelled_at + horizon:
        return Due("forget", None)  # only a cancellation: it was kept for ever
    return None


def overdue(state: CampaignPartition, now: int, allowed_lateness_ms: int, after_ms: int) -> bool:
    """A scheduled booster this partition has still not fired (or been called off in) `after_ms` after
    its deadline plus the allowed lateness: its steps take seconds once the inputs are processed, so
    one this late is held by something no retry fixes, unless the inputs are still behind."""
    return (
        state.schedule is not None
        and not state.fired
        and not state.no_booster
        and now >= state.schedule.deadline + allowed_lateness_ms + after_ms
    )


def stuck(overdue_boosters: int, idle_ms: int, overdue_ms: int) -> bool:
    """Whether a worker should be restarted for its overdue boosters: it owns some, and it has done no
    step of any booster (a tick, a count, a decision, a fire, a summary) for `overdue_ms`. A worker
    working through a backlog (after an outage, or a group starting behind) has overdue boosters too,
    and restarting it would only move its partitions and start the backlog again, for ever."""
    return overdue_boosters > 0 and idle_ms >= overdue_ms


@dataclass(frozen=True, slots=True)
class LiveBooster:
    """A scheduled booster as its account's partition remembers it, to tell it when the account's
    access to its channel changes before its deadline (R15)."""

    campaign_id: str
    channel: Channel
    deadline: int


def outlived(boosters: Iterable[LiveBooster], now: int, allowed_lateness_ms: int) -> list[LiveBooster]:
    """An account's boosters no change of its channels can matter to any more, however late it is
    processed: past the longest window after their deadline, when their campaign states are forgotten
    too (`due`). Without this, an account whose channels never change again keeps them for ever."""
    return [b for b in boosters if now >= b.deadline + MAX_DELAY_MS + allowed_lateness_ms]


def access_changes(
    old: AccountChannels | None, new: AccountChannels, live: list[LiveBooster]
) -> tuple[list[ChannelAccess], list[LiveBooster]]:
    """What an account's new channels change for its scheduled boosters, and the boosters no later
    change can matter to any more (their deadline is before the account's latest update: an older
    record never replaces a newer one). `new` is the account after the update (it is `old` when the
    record was older than what was known: then nothing changes)."""
    if new == old:
        return [], []
    changes, done = [], []
    for b in live:
        if b.deadline < new.updated_at:
            done.append(b)
            continue
        before = old is not None and b.channel in old.channels
        now = b.channel in new.channels
        if before != now:
            changes.append(ChannelAccess(b.campaign_id, new.updated_at, now, new.account_id))
    return changes, done


def broadcast_again(
    launch: CampaignLaunched,
    decided: LaunchStatus,
    now: int,
    quiet_hours: QuietHours | None = None,
    frequency_cap: FrequencyCap | None = None,
) -> Scheduled | NoBoosterFor | None:
    """The same launch seen again (a replay after a crash, or a producer's retry): its decision's
    broadcast, to send again, because the decision may have been kept while its broadcast was lost
    (the table and booster.control are not written in one transaction); receivers keep the first.
    None once the partitions may have forgotten the campaign (the longest window after its deadline, or
    after the launch for a campaign without booster): there it would start again. `quiet_hours` and
    `frequency_cap`: the ones the decision's schedule got (kept with it)."""
    if decided == "SCHEDULED" and launch.booster is not None:
        schedule = schedule_of(launch, launch.booster, quiet_hours, frequency_cap)
        return Scheduled(schedule, launch.launched_at) if now < schedule.deadline + MAX_DELAY_MS else None
    if decided != "SCHEDULED" and now < launch.launched_at + MAX_DELAY_MS:
        return NoBoosterFor(launch.campaign_id, launch.launched_at)
    return None
