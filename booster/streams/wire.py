"""Processor values to and from the Avro records of the contract and the internal topics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from booster.processors.boosters import PartitionSummary, Report, Schedule, Tally
from booster.processors.packing import schedule_from_dict, schedule_to_dict


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
    }


def _schedule_record(s: Schedule) -> dict[str, Any]:
    d = schedule_to_dict(s)
    del d["campaign_id"]
    return d


def control_record(kind: str, campaign_id: str, at: int, schedule: Schedule | None = None) -> dict[str, Any]:
    return {
        "kind": kind,
        "campaign_id": campaign_id,
        "at": at,
        "schedule": None if schedule is None else _schedule_record(schedule),
    }


def schedule_of(campaign_id: str, record: Mapping[str, Any]) -> Schedule:
    return schedule_from_dict({"campaign_id": campaign_id, **record})


def summary_record(s: PartitionSummary) -> dict[str, Any]:
    return {
        "campaign_id": s.campaign_id,
        "partition": s.partition,
        "partitions": s.partitions,
        "schedule": _schedule_record(s.schedule),
        "cancelled_at": s.cancelled_at,
        "audience": s.tally.audience,
        "excluded": dict(s.tally.excluded),
    }


def summary_of(r: Mapping[str, Any]) -> PartitionSummary:
    return PartitionSummary(
        campaign_id=r["campaign_id"],
        partition=r["partition"],
        partitions=r["partitions"],
        schedule=schedule_of(r["campaign_id"], r["schedule"]),
        cancelled_at=r["cancelled_at"],
        tally=Tally(r["audience"], dict(r["excluded"])),
    )


def progress_record(campaign_id: str, partition: int, last_key: str | None, done: bool, tally: Tally) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "partition": partition,
        "last_key": last_key,
        "done": done,
        "audience": tally.audience,
        "excluded": dict(tally.excluded),
    }
