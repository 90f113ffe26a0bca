"""What one partition knows about one campaign's booster, folded from the control topic, and what
the deadline timer should do with it.

A campaign's schedule, cancellation and "no booster" are broadcast to every partition; each partition
folds them into its own `CampaignPartition`, fires its share of the booster once, and forgets the
campaign when no event of it can matter any more (R12, G8).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal, assert_never

from booster.processors.boosters import MAX_DELAY_MS, Schedule
from booster.processors.events import BoosterCancelled


class ControlKind(StrEnum):
    """The kinds of record on booster.control (the Avro enum ControlKind)."""

    SCHEDULE = "SCHEDULE"
    CANCEL = "CANCEL"
    NO_BOOSTER = "NO_BOOSTER"
    TICK = "TICK"


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


CampaignEvent = Scheduled | BoosterCancelled | NoBoosterFor
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
        case _:
            assert_never(event)


def campaign_of(event: ControlEvent) -> str:
    return event.schedule.campaign_id if isinstance(event, Scheduled) else event.campaign_id


@dataclass(frozen=True, slots=True)
class CampaignPartition:
    """What one partition knows about one campaign's booster.

    Broadcast facts (schedule, cancellation, no booster) arrive in every partition; `fired` is set
    once this partition's fan-out is complete and its rows are gone; `first_seen_at` ages out the
    rows of campaigns whose launch never says they have a booster (R12).
    """

    schedule: Schedule | None = None
    cancelled_at: int | None = None
    no_booster: bool = False
    fired: bool = False
    first_seen_at: int | None = None


def evolve_campaign_schedule(state: CampaignPartition | None, schedule: Schedule) -> CampaignPartition:
    s = state or CampaignPartition()
    return s if s.schedule is not None else replace(s, schedule=schedule)


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
    """R1: the campaign has no booster; its later events are dropped until it is forgotten."""
    return replace(evolve_campaign_seen(state, at), no_booster=True)


def evolve_campaign_fired(state: CampaignPartition) -> CampaignPartition:
    """This partition's fan-out is committed and its rows deleted: later events are dropped."""
    return replace(state, fired=True)


def evolve_campaign(state: CampaignPartition | None, event: CampaignEvent) -> CampaignPartition:
    match event:
        case Scheduled():
            return evolve_campaign_schedule(state, event.schedule)
        case BoosterCancelled():
            return evolve_campaign_cancel(state, event)
        case NoBoosterFor():
            return evolve_campaign_no_booster(state, event.at)
        case _:
            assert_never(event)


def accepts_events(state: CampaignPartition | None) -> bool:
    """Events of a campaign with no booster, or whose booster fired here, are dropped."""
    return state is None or not (state.no_booster or state.fired)


def refuses_cancel(state: CampaignPartition | None, cancel: BoosterCancelled) -> bool:
    """R13: a cancel of a booster that fired here, or one made after its window expired, changes
    nothing, and the account is told. (Known only where the schedule is: a cancel of a booster
    launched later, or forgotten, says nothing.)"""
    if state is None or state.schedule is None:
        return False
    return state.fired or cancel.cancelled_at > state.schedule.deadline


def is_cancelled(state: CampaignPartition) -> bool:
    """R9: a cancellation counts until the window expires."""
    return (
        state.schedule is not None and state.cancelled_at is not None and state.cancelled_at <= state.schedule.deadline
    )


@dataclass(frozen=True, slots=True)
class Due:
    """What the timer should do for a campaign in a partition at a moment."""

    kind: Literal["fire", "expire", "forget"]
    gate_at: int | None  # for "fire": inputs must be processed past this event time first


def due(state: CampaignPartition, now: int, allowed_lateness_ms: int) -> Due | None:
    """Whether a partition's campaign needs a tick now.

    fire: a scheduled booster, once `now` is past its deadline plus the allowed lateness (the caller
    then checks the lag gate, G1, against `gate_at`). expire: rows of a campaign that never got a
    booster, after the longest possible window (R12). forget: the small marker kept after a booster
    fired or a launch said "no booster", or a cancellation of a campaign never launched here, once no
    event of that campaign can matter any more.
    """
    horizon = MAX_DELAY_MS + allowed_lateness_ms
    if state.fired or state.no_booster:
        ref = state.schedule.deadline if state.schedule is not None else state.first_seen_at
        if ref is not None and now >= ref + horizon:
            return Due("forget", None)
        return None
    if state.schedule is not None:
        gate_at = state.schedule.deadline + allowed_lateness_ms
        return Due("fire", gate_at) if now >= gate_at else None
    if state.first_seen_at is not None and now >= state.first_seen_at + horizon:
        return Due("expire", None)
    if state.first_seen_at is None and state.cancelled_at is not None and now >= state.cancelled_at + horizon:
        return Due("forget", None)  # only a cancellation: it was kept for ever
    return None
