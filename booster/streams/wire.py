"""Processor values to and from the Avro records of the output and internal topics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, assert_never

from booster.errors import DecodeError
from booster.processors.audience import Mark, Tally
from booster.processors.boosters import Report, reason_code_of
from booster.processors.campaigns import (
    ChannelAccess,
    ControlEvent,
    ControlKind,
    Counted,
    Decided,
    NoBoosterFor,
    Scheduled,
    Tick,
    control_kind,
)
from booster.processors.events import BoosterCancelled
from booster.processors.notices import Notice
from booster.processors.packing import schedule_from_dict, schedule_record
from booster.processors.uplift import GroupCounts, PartitionMeasurement, Results


def report_record(r: Report) -> dict[str, Any]:
    return {
        "booster_id": r.booster_id,
        "booster_name": r.booster_name,
        "campaign_id": r.campaign_id,
        "account_id": r.account_id,
        "status": r.status,
        "reason": r.reason,
        "deadline": r.deadline,
        "audience": r.audience,
        "excluded": dict(r.excluded),
        "billable": r.billable,
        "reason_code": None if r.reason_code is None else r.reason_code.value,
        "boosted_despite_machine_open": r.boosted_despite_machine_open,
        "boosted_despite_scanner_click": r.boosted_despite_scanner_click,
        "deferred": r.deferred,
    }


def notice_record(n: Notice) -> dict[str, Any]:
    return {
        "notice_id": n.notice_id,
        "account_id": n.account_id,
        "campaign_id": n.campaign_id,
        "booster_id": n.booster_id,
        "kind": n.kind.value,
        "reason_code": n.reason_code.value,
        "text": n.text,
        "at": n.at,
    }


def control_record(event: ControlEvent) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schedule": None,
        "cancelled_at": None,
        "reason": None,
        "from_partition": None,
        "all_opened": None,
        "enabled": None,
        "account_id": None,
    }
    match event:
        case Scheduled():
            campaign_id, at = event.schedule.campaign_id, event.at
            record["schedule"] = schedule_record(event.schedule)
        case BoosterCancelled():
            campaign_id, at = event.campaign_id, event.cancelled_at
        case NoBoosterFor() | Tick():
            campaign_id, at = event.campaign_id, event.at
        case Decided():
            campaign_id, at = event.campaign_id, event.at
            record["cancelled_at"] = event.cancelled_at
            record["reason"] = None if event.reason is None else event.reason.value
            record["schedule"] = None if event.schedule is None else schedule_record(event.schedule)
        case Counted():
            campaign_id, at = event.campaign_id, event.at
            record["from_partition"], record["all_opened"] = event.partition, event.all_opened
        case ChannelAccess():
            campaign_id, at = event.campaign_id, event.at
            record["enabled"], record["account_id"] = event.enabled, event.account_id
        case _:
            assert_never(event)
    return {"kind": control_kind(event).value, "campaign_id": campaign_id, "at": at, **record}


def control_event(record: Mapping[str, Any]) -> ControlEvent:
    """The event a decoded booster.control record carries; DecodeError for one that makes no sense."""
    campaign_id, at = record["campaign_id"], record["at"]
    kind = ControlKind(record["kind"])
    match kind:
        case ControlKind.SCHEDULE:
            if record["schedule"] is None:
                raise DecodeError("a SCHEDULE control record without its schedule", kind="corrupt")
            return Scheduled(schedule_from_dict({"campaign_id": campaign_id, **record["schedule"]}), at)
        case ControlKind.CANCEL:
            return BoosterCancelled(campaign_id, at)
        case ControlKind.NO_BOOSTER:
            return NoBoosterFor(campaign_id, at)
        case ControlKind.TICK:
            return Tick(campaign_id, at)
        case ControlKind.DECIDED:
            schedule = record["schedule"]
            return Decided(
                campaign_id,
                at,
                record["cancelled_at"],
                reason_code_of(record["reason"]),
                None if schedule is None else schedule_from_dict({"campaign_id": campaign_id, **schedule}),
            )
        case ControlKind.COUNTED:
            if record["from_partition"] is None:
                raise DecodeError("a COUNTED control record without its partition", kind="corrupt")
            return Counted(campaign_id, at, record["from_partition"], record["all_opened"])
        case ControlKind.CHANNEL:
            if record["enabled"] is None:
                raise DecodeError("a CHANNEL control record without `enabled`", kind="corrupt")
            return ChannelAccess(campaign_id, at, record["enabled"], record["account_id"])
        case _:
            assert_never(kind)


def progress_record(
    campaign_id: str, partition: int, last_key: str | None, done: bool, tally: Tally, outcomes_from: int | None = None
) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "partition": partition,
        "last_key": last_key,
        "done": done,
        "audience": tally.audience,
        "excluded": dict(tally.excluded),
        "marks": dict(tally.marks),
        "machine_opened": tally.marked(Mark.MACHINE_OPEN),  # as older workers read it
        "outcomes_from": outcomes_from,
    }


def measurement_record(m: PartitionMeasurement) -> dict[str, Any]:
    c = m.counts
    return {
        "campaign_id": m.campaign_id,
        "partition": m.partition,
        "partitions": m.partitions,
        "booster_id": m.booster_id,
        "booster_name": m.booster_name,
        "account_id": m.account_id,
        "deadline": m.deadline,
        "measurement_ms": m.measurement_ms,
        "holdout_percent": m.holdout_percent,
        "boosted": c.boosted,
        "boosted_engaged": c.boosted_engaged,
        "held_out": c.held_out,
        "held_out_engaged": c.held_out_engaged,
        "measured_at": m.measured_at,
    }


def measurement_of(r: Mapping[str, Any]) -> PartitionMeasurement:
    counts = GroupCounts(r["boosted"], r["boosted_engaged"], r["held_out"], r["held_out_engaged"])
    return PartitionMeasurement(
        r["campaign_id"], r["partition"], r["partitions"], r["booster_id"], r["booster_name"], r["account_id"],
        r["deadline"], r["measurement_ms"], r["holdout_percent"], counts, r["measured_at"],
    )  # fmt: skip


def results_record(r: Results) -> dict[str, Any]:
    u, c = r.uplift, r.uplift.counts
    return {
        "booster_id": r.booster_id,
        "booster_name": r.booster_name,
        "campaign_id": r.campaign_id,
        "account_id": r.account_id,
        "deadline": r.deadline,
        "measured_until": r.measured_until,
        "holdout_percent": r.holdout_percent,
        "boosted": c.boosted,
        "boosted_engaged": c.boosted_engaged,
        "held_out": c.held_out,
        "held_out_engaged": c.held_out_engaged,
        "boosted_rate": u.boosted_rate,
        "held_out_rate": u.held_out_rate,
        "difference": u.difference,
        "difference_low": u.difference_low,
        "difference_high": u.difference_high,
        "extra_engagements": u.extra_engagements,
        "extra_engagements_low": u.extra_low,
        "extra_engagements_high": u.extra_high,
        "detectable_difference": u.detectable,
        "measured_at": r.measured_at,
    }
