"""Boosters: validating a launch (R1-R3, R7), the schedule, per-partition campaign state,
command identity, tallies and the booster's reports (R7, R8, R11).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from booster.processors.events import (
    AccountChannels,
    BoosterCancelled,
    CampaignLaunched,
    Channel,
    Criterion,
)
from booster.processors.recipients import EXCLUSION_ORDER, Exclusion

MIN_DELAY_SECONDS = 2 * 3600
MAX_DELAY_SECONDS = 7 * 24 * 3600
MAX_DELAY_MS = MAX_DELAY_SECONDS * 1000

Status = Literal["SCHEDULED", "REJECTED", "CANCELLED", "SENT"]

# command_ids are uuid5 in this namespace: the same booster and contact always give the same id.
COMMAND_NAMESPACE = uuid.UUID("6f1c4c36-1f0e-5c55-9d55-0b0057e40001")
_NAMESPACE_BYTES = COMMAND_NAMESPACE.bytes


def booster_id_of(campaign_id: str) -> str:
    """A campaign has at most one booster; its id is derived so every worker agrees on it."""
    return f"{campaign_id}:booster"


def booster_name_of(campaign_name: str) -> str:
    return f"Booster for {campaign_name}"  # R8


def command_id_of(booster_id: str, contact_id: str) -> str:
    """uuid5(COMMAND_NAMESPACE, "<booster>/<contact>"), computed without the UUID object: a fan-out
    makes millions of them."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{booster_id}/{contact_id}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def default_criterion(campaign_channel: Channel) -> Criterion:
    """Engagement is judged on the original message: SMS has no opens to count."""
    return "NOT_CLICKED" if campaign_channel == "SMS" else "NOT_OPENED"


@dataclass(frozen=True, slots=True)
class Schedule:
    """An accepted booster: who it is for and when it fires."""

    campaign_id: str
    booster_id: str
    booster_name: str
    account_id: str
    channel: Channel  # the booster's channel
    criterion: Criterion
    content_ref: str
    deadline: int


@dataclass(frozen=True, slots=True)
class Report:
    booster_id: str
    booster_name: str
    campaign_id: str
    account_id: str
    status: Status
    reason: str | None
    deadline: int | None
    audience: int = 0
    excluded: Mapping[str, int] = field(default_factory=dict)
    billable: int = 0


@dataclass(frozen=True, slots=True)
class Accepted:
    schedule: Schedule
    report: Report  # SCHEDULED


@dataclass(frozen=True, slots=True)
class Refused:
    report: Report  # REJECTED or CANCELLED, final at once


@dataclass(frozen=True, slots=True)
class NoBooster:
    campaign_id: str


LaunchDecision = Accepted | Refused | NoBooster


def _human_delay(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


def decide_launch(launch: CampaignLaunched, account: AccountChannels | None) -> LaunchDecision:
    """R1: no settings, no booster. R2: delay in [2h, 7d]. R3: booster channel enabled. R7: empty group."""
    b = launch.booster
    if b is None:
        return NoBooster(launch.campaign_id)
    channel: Channel = b.channel or launch.channel
    booster_id = booster_id_of(launch.campaign_id)
    name = booster_name_of(launch.name)
    deadline = launch.launched_at + b.delay_seconds * 1000

    def report(status: Status, reason: str | None) -> Report:
        return Report(booster_id, name, launch.campaign_id, launch.account_id, status, reason, deadline)

    if not MIN_DELAY_SECONDS <= b.delay_seconds <= MAX_DELAY_SECONDS:
        return Refused(
            report(
                "REJECTED",
                f"delay {_human_delay(b.delay_seconds)} ({b.delay_seconds} s) is outside "
                "the allowed window of 2 hours to 7 days",
            )
        )
    if account is None or channel not in account.channels:
        return Refused(report("REJECTED", f"channel not enabled for this account ({channel})"))
    if launch.group_size <= 0:
        return Refused(report("CANCELLED", "the campaign's group has 0 contacts"))
    schedule = Schedule(
        campaign_id=launch.campaign_id,
        booster_id=booster_id,
        booster_name=name,
        account_id=launch.account_id,
        channel=channel,
        criterion=b.criterion or default_criterion(launch.channel),
        content_ref=b.content_ref,
        deadline=deadline,
    )
    return Accepted(schedule, report("SCHEDULED", None))


def evolve_account(state: AccountChannels | None, event: AccountChannels) -> AccountChannels:
    """account.channels is compacted, latest wins: by updated_at, then by content for a tie."""
    if state is None:
        return event
    if (event.updated_at, sorted(event.channels)) > (state.updated_at, sorted(state.channels)):
        return event
    return state


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
    s = state or CampaignPartition()
    if s.first_seen_at is not None and s.first_seen_at <= at:
        return s
    return replace(s, first_seen_at=at)


def accepts_events(state: CampaignPartition | None) -> bool:
    """Events of a campaign with no booster, or whose booster fired here, are dropped."""
    return state is None or not (state.no_booster or state.fired)


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
    fired or a launch said "no booster", once no event of that campaign can matter any more.
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
    return None


@dataclass(frozen=True, slots=True)
class Tally:
    """Audience and exclusions counted so far by one partition's fan-out."""

    audience: int = 0
    excluded: Mapping[str, int] = field(default_factory=dict)

    def add(self, reason: Exclusion | None, count: int = 1) -> Tally:
        if reason is None:
            return Tally(self.audience + count, self.excluded)
        excluded = dict(self.excluded)
        excluded[reason.value] = excluded.get(reason.value, 0) + count
        return Tally(self.audience, excluded)

    def merge(self, other: Tally) -> Tally:
        excluded = dict(self.excluded)
        for k, v in other.excluded.items():
            excluded[k] = excluded.get(k, 0) + v
        return Tally(self.audience + other.audience, excluded)


def full_exclusions(excluded: Mapping[str, int]) -> dict[str, int]:
    """Every reason of R11, zero where none, in R11's order."""
    return {reason.value: int(excluded.get(reason.value, 0)) for reason in EXCLUSION_ORDER}


@dataclass(frozen=True, slots=True)
class PartitionSummary:
    campaign_id: str
    partition: int
    partitions: int
    schedule: Schedule
    cancelled_at: int | None
    tally: Tally


def final_report(summaries: Iterable[PartitionSummary]) -> Report | None:
    """The booster's final report once every partition has reported, else None.

    Duplicated summaries of a partition count once. R9 cancelled, R7 empty audience, else SENT (R8).
    """
    by_partition: dict[int, PartitionSummary] = {}
    for s in summaries:
        by_partition.setdefault(s.partition, s)
    if not by_partition:
        return None
    first = next(iter(by_partition.values()))
    if len(by_partition) < first.partitions:
        return None
    total = Tally()
    for s in by_partition.values():
        total = total.merge(s.tally)
    cancelled = [s.cancelled_at for s in by_partition.values() if s.cancelled_at is not None]
    sch = first.schedule

    def report(status: Status, reason: str | None, audience: int, billable: int) -> Report:
        return Report(
            sch.booster_id,
            sch.booster_name,
            sch.campaign_id,
            sch.account_id,
            status,
            reason,
            sch.deadline,
            audience,
            full_exclusions(total.excluded),
            billable,
        )

    if cancelled:
        return report("CANCELLED", "cancelled before its window expired", 0, 0)
    if total.audience == 0:
        return report(
            "CANCELLED",
            "the audience came out empty: every recipient engaged or was excluded",
            0,
            0,
        )
    return report("SENT", None, total.audience, total.audience)
