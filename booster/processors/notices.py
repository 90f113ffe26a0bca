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

from booster.processors.boosters import LaunchStatus, ReasonCode, Report, booster_id_of
from booster.processors.campaigns import CampaignPartition, refuses_cancel
from booster.processors.events import BoosterCancelled, CampaignLaunched
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


def duplicate_notice(
    launch: CampaignLaunched, fingerprint: str, decided: LaunchStatus, decided_fingerprint: str | None
) -> Notice | None:
    """G5: another launch of a campaign whose launch was decided already changes nothing; its sender is
    told when it asked for a booster. The same launch sent again (a producer's retry: the same
    fingerprint) says nothing new; a decision kept without its launch's fingerprint (by an older
    worker) counts as the same launch."""
    if launch.booster is None or decided_fingerprint in (None, fingerprint):
        return None
    booster_id = booster_id_of(launch.campaign_id)
    outcome = "no booster" if decided == "NONE" else f"its booster {decided.lower()}"
    return Notice(
        notice_id_of(booster_id, NoticeKind.LAUNCH_DUPLICATE, fingerprint),
        launch.account_id,
        launch.campaign_id,
        booster_id,
        NoticeKind.LAUNCH_DUPLICATE,
        ReasonCode.DUPLICATE_LAUNCH,
        f"a second launch of campaign {launch.campaign_id} (launched at {format_timestamp(launch.launched_at)}) "
        f"was ignored: the campaign was launched before, with {outcome}",
        launch.launched_at,
    )


def cancel_refused_notice(state: CampaignPartition | None, cancel: BoosterCancelled) -> Notice | None:
    """R13: the notice of a cancel that came after the booster's window expired or after it started
    firing; None for a cancel that counts (or of a booster this state does not know)."""
    if state is None or state.schedule is None or not refuses_cancel(state, cancel):
        return None
    schedule = state.schedule
    sending = state.decision is not None or state.fired
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
