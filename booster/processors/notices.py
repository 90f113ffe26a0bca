"""Notices (R14): what an account's users must be told about a booster, one record each on
booster.notices, keyed by account, for the notification service.

A notice's id is derived from what it is about, never from when it was made: a worker that restarts
before its input is committed makes the same notice again with the same id, and the notification
service keeps the first of each id.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from enum import StrEnum

from booster.processors.boosters import ReasonCode, Report
from booster.processors.campaigns import CampaignPartition, Scheduled, launch_rank, lost_launch, refuses_cancel
from booster.processors.events import BoosterCancelled
from booster.processors.text import format_timestamp

# notice ids are uuid5 in this namespace
NOTICE_NAMESPACE = uuid.UUID("6f1c4c36-1f0e-5c55-9d55-0b0057e40002")


class NoticeKind(StrEnum):
    """What a notice is about (the Avro enum NoticeKind of booster.notices)."""

    BOOSTER_REJECTED = "BOOSTER_REJECTED"
    BOOSTER_CANCELLED = "BOOSTER_CANCELLED"
    CANCEL_REFUSED = "CANCEL_REFUSED"
    LAUNCH_PENDING = "LAUNCH_PENDING"
    LAUNCH_DUPLICATE = "LAUNCH_DUPLICATE"
    OTHER = "OTHER"  # what a reader gets for a kind newer than its schema


@dataclass(frozen=True, slots=True)
class Notice:
    notice_id: str
    account_id: str
    campaign_id: str
    booster_id: str
    kind: NoticeKind
    reason_code: ReasonCode
    text: str  # for people: the notification service may show it as it is
    at: int  # when the thing the notice is about happened (epoch ms)


def notice_id_of(booster_id: str, kind: NoticeKind, detail: str = "") -> str:
    """The same booster, kind and detail always give the same id."""
    return str(uuid.uuid5(NOTICE_NAMESPACE, f"{booster_id}/{kind.value}/{detail}"))


def launch_fingerprint(value: bytes) -> str:
    """A launch record's identity: the same bytes are the same launch sent again (Avro's binary encoding
    of a record without maps is canonical), other bytes are another launch of the campaign."""
    return hashlib.sha1(value).hexdigest()[:16]


def report_notice(report: Report, at: int) -> Notice | None:
    """The notice of a REJECTED, CANCELLED or PENDING report (R14, R15); None for SCHEDULED and SENT.
    A booster has one final outcome and waits for its account at most once, so the id is the
    booster's and the kind's."""
    if report.status == "REJECTED":
        kind = NoticeKind.BOOSTER_REJECTED
    elif report.status == "CANCELLED":
        kind = NoticeKind.BOOSTER_CANCELLED
    elif report.status == "PENDING":
        kind = NoticeKind.LAUNCH_PENDING
    else:
        return None
    if kind is NoticeKind.LAUNCH_PENDING:
        text = f"{report.booster_name} {report.reason}, which are not known yet: it is decided as soon as they are"
    else:
        text = f"{report.booster_name} was {report.status.lower()}: {report.reason or 'no reason given'}"
    return Notice(
        notice_id_of(report.booster_id, kind),
        report.account_id,
        report.campaign_id,
        report.booster_id,
        kind,
        report.reason_code or ReasonCode.OTHER,
        text,
        at,
    )


def cancel_refused_notice(state: CampaignPartition | None, cancel: BoosterCancelled) -> Notice | None:
    """R13: the notice of a cancel that came after the booster's window expired or after it started
    firing; None for a cancel that counts (or of a booster this state does not know)."""
    if state is None or state.schedule is None or not refuses_cancel(state, cancel):
        return None
    schedule = state.schedule
    sending = state.decided
    when = "after the booster started sending" if sending else "after its window expired"
    return Notice(
        notice_id_of(schedule.booster_id, NoticeKind.CANCEL_REFUSED, str(cancel.cancelled_at)),
        schedule.account_id,
        schedule.campaign_id,
        schedule.booster_id,
        NoticeKind.CANCEL_REFUSED,
        ReasonCode.CANCEL_TOO_LATE,
        f"the cancel of {schedule.booster_name} (cancelled at {format_timestamp(cancel.cancelled_at)}) came {when} "
        f"(deadline {format_timestamp(schedule.deadline)}): the booster is sent",
        cancel.cancelled_at,
    )


def lost_launch_notice(state: CampaignPartition | None, event: Scheduled) -> Notice | None:
    """G5: the notice to the account of a launch whose booster lost to another launch of the same
    campaign id (`launch_rank`), or came after the booster was decided; None when they do not conflict.
    Its id is the losing launch's, so it is the same whatever order the launches came in."""
    lost = lost_launch(state, event)
    if lost is None:
        return None
    loser, launched_at, kept = lost
    detail = hashlib.sha1(repr(launch_rank(loser, launched_at)).encode()).hexdigest()[:16]
    decided = state is not None and state.decided
    why = "came after the booster was decided" if decided else "lost to another launch of it"
    made = "" if launched_at < 0 else f" (launched at {format_timestamp(launched_at)})"
    return Notice(
        notice_id_of(loser.booster_id, NoticeKind.LAUNCH_DUPLICATE, detail),
        loser.account_id,
        loser.campaign_id,
        loser.booster_id,
        NoticeKind.LAUNCH_DUPLICATE,
        ReasonCode.DUPLICATE_LAUNCH,
        f"a launch of campaign {loser.campaign_id}{made} {why}: its booster {loser.booster_name} is not sent; "
        f"the booster is the one of account {kept.account_id}, due {format_timestamp(kept.deadline)}",
        max(launched_at, 0),
    )
