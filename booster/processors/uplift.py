"""The booster's uplift, measured: a holdout group that gets no booster, and what each
group's engagement after the deadline says the booster earned.

The holdout is a deterministic, uniform selection of the eligible recipients: a stable hash of the
booster and the contact, so that every worker, and a fan-out resumed after a crash, holds out the same
contacts, and a held-out contact of one booster is not more likely to be held out of the next.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

from booster.processors.events import MessageClicked, MessageEvent, MessageOpened

BOOSTER_SUFFIX = ":booster"  # of a booster_id (`boosters.booster_id_of`)
_BUCKETS = 10_000  # a percent is 100 buckets


def holdout_of(booster_id: str, percent: int) -> Callable[[str], bool]:
    """Whether a contact eligible for this booster is held out: sha1("booster.holdout/<booster>/<contact>"),
    its first 8 bytes as a number, falls in the first `percent` of 100 equal ranges (a remainder of
    10,000; the bias of 2^64 over 10,000 is below 1e-15)."""
    head = hashlib.sha1(f"booster.holdout/{booster_id}/".encode())
    below = percent * (_BUCKETS // 100)

    def held_out(contact_id: str) -> bool:
        sha = head.copy()
        sha.update(contact_id.encode())
        return int.from_bytes(sha.digest()[:8], "big") % _BUCKETS < below

    return held_out


# -- engagement after the deadline ---------------------------------------------------------------

Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile: a two-sided 95 % interval
Z_80_POWER = 0.8416212335729143  # its 80th percentile: the power of the detectable difference


def engaged_at(event: MessageEvent) -> int | None:
    """When a message event says the person engaged: an open not made by a machine (a privacy
    proxy), or a click the sender did not flag as a link scanner's; None for any other event."""
    match event:
        case MessageOpened(machine=False):
            return event.opened_at
        case MessageClicked(bot=False):
            return event.clicked_at
    return None


def original_campaign(campaign_id: str) -> tuple[str, bool]:
    """The campaign a message event is about, and whether the message was the booster's own: the
    senders give a booster's messages its booster_id (`<campaign_id>:booster`) as their campaign_id."""
    if campaign_id.endswith(BOOSTER_SUFFIX):
        return campaign_id[: -len(BOOSTER_SUFFIX)], True
    return campaign_id, False


def in_window(at: int, deadline: int, measurement_ms: int) -> bool:
    """Whether an engagement at `at` counts: at or after the deadline, before the window ends."""
    return deadline <= at < deadline + measurement_ms


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """The two groups of a booster (one partition's, or merged): their sizes and how many engaged."""

    boosted: int = 0
    boosted_engaged: int = 0
    held_out: int = 0
    held_out_engaged: int = 0

    def merge(self, other: GroupCounts) -> GroupCounts:
        return GroupCounts(
            self.boosted + other.boosted,
            self.boosted_engaged + other.boosted_engaged,
            self.held_out + other.held_out,
            self.held_out_engaged + other.held_out_engaged,
        )


@dataclass(frozen=True, slots=True)
class Uplift:
    """What the booster earned: the groups' engagement rates, their difference with its two-sided 95 %
    confidence interval (Wald's, unpooled), and the engagements the booster added to its boosted group,
    with the same interval. None where a group is empty. `detectable`: the smallest difference these
    group sizes detect with 80 % power at the 5 % level, at the held-out group's rate."""

    counts: GroupCounts
    boosted_rate: float | None
    held_out_rate: float | None
    difference: float | None
    difference_low: float | None
    difference_high: float | None
    extra_engagements: float | None
    extra_low: float | None
    extra_high: float | None
    detectable: float | None


def uplift(counts: GroupCounts) -> Uplift:
    nb, nh = counts.boosted, counts.held_out
    rb = counts.boosted_engaged / nb if nb else None
    rh = counts.held_out_engaged / nh if nh else None
    if rb is None or rh is None:
        return Uplift(counts, rb, rh, None, None, None, None, None, None, None)
    difference = rb - rh
    margin = Z_95 * math.sqrt(rb * (1 - rb) / nb + rh * (1 - rh) / nh)
    low, high = max(-1.0, difference - margin), min(1.0, difference + margin)
    # at the held-out rate in both groups: the difference whose z statistic clears the 5 % level 80 % of the time
    spread = math.sqrt(rh * (1 - rh) * (1 / nb + 1 / nh))
    detectable = (Z_95 + Z_80_POWER) * spread
    return Uplift(counts, rb, rh, difference, low, high, difference * nb, low * nb, high * nb, detectable)


def group_size_for(base_rate: float, difference: float) -> int:
    """How many recipients each group needs for a difference in engagement rate to show (80 % power,
    two-sided 5 % level), at a base rate of the held-out group's: the operators' rule of thumb."""
    p1, p2 = base_rate + difference, base_rate
    variance = p1 * (1 - p1) + p2 * (1 - p2)
    return math.ceil((Z_95 + Z_80_POWER) ** 2 * variance / difference**2)


# -- one booster's measurement, from its partitions' ---------------------------------------------


@dataclass(frozen=True, slots=True)
class PartitionMeasurement:
    """One partition's share of a booster's measurement (booster.measurements)."""

    campaign_id: str
    partition: int
    partitions: int
    booster_id: str
    booster_name: str
    account_id: str
    deadline: int
    measurement_ms: int
    holdout_percent: int
    counts: GroupCounts
    measured_at: int


@dataclass(frozen=True, slots=True)
class Results:
    """What the booster earned (booster.results)."""

    booster_id: str
    booster_name: str
    campaign_id: str
    account_id: str
    deadline: int
    measured_until: int
    holdout_percent: int
    uplift: Uplift
    measured_at: int


@dataclass(frozen=True, slots=True)
class Measuring:
    """The partitions' measurements of a booster received so far; `done` once its results were made
    (the parts are dropped then, and a later duplicate changes nothing). `deadline` dates the done
    marker for its retention."""

    parts: tuple[PartitionMeasurement, ...] = ()
    done: bool = False
    deadline: int | None = None


def evolve_measuring(state: Measuring | None, part: PartitionMeasurement) -> tuple[Measuring, Results | None]:
    """The state with one more partition's measurement, and the booster's results once it completes
    them. The first measurement of a partition counts; a duplicate (one sent again after a crash)
    is ignored."""
    s = state or Measuring()
    if s.done or any(p.partition == part.partition for p in s.parts):
        return s, None
    parts = (*s.parts, part)
    if len({p.partition for p in parts}) < part.partitions:
        return Measuring(parts), None
    counts = GroupCounts()
    for p in parts:
        counts = counts.merge(p.counts)
    results = Results(
        booster_id=part.booster_id,
        booster_name=part.booster_name,
        campaign_id=part.campaign_id,
        account_id=part.account_id,
        deadline=part.deadline,
        measured_until=part.deadline + part.measurement_ms,
        holdout_percent=part.holdout_percent,
        uplift=uplift(counts),
        measured_at=max(p.measured_at for p in parts),
    )
    return Measuring(done=True, deadline=part.deadline), results
