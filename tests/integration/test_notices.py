"""Notices through the contract topics (R14): every REJECTED and CANCELLED booster, a launch that waits
for its account, a launch that lost to an earlier one and a cancel that came too late are each one
record on booster.notices, keyed by account, with a reason code; a booster that was sent says nothing.
A launch whose account's channels never come is PENDING, then REJECTED once its deadline and the
allowed lateness are past (R15)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from booster.broker.local import LocalKafka
from booster.ops import admin
from booster.ops.views import CONSUMED
from booster.testing.scenario import build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.helpers import (
    account_record,
    group_lag,
    publish_records,
    read_all,
    reports_by_campaign,
    scenario_records,
    wait_for,
)


def test_every_thing_an_account_must_be_told_is_one_notice(kafka: LocalKafka, tmp_path: Path) -> None:
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    tag = uuid.uuid4().hex[:6]
    due = launched_for_deadline(int(time.time() * 1000) - 60_000)  # deadlines already due: they fire at once
    sent = build(f"sent-{tag}", 12, launched_at=due)
    rejected = build(f"rejected-{tag}", 6, launched_at=due, booster_channel="SMS", account_id=f"emails-{tag}")
    cancelled = build(f"cancelled-{tag}", 6, launched_at=due)
    pending = build(f"pending-{tag}", 6, launched_at=due, account_id=f"unknown-{tag}")
    emails_only = ("account.channels", {**account_record(rejected)[1], "channels": ["EMAIL"]})
    cancel = ("campaign.booster-cancelled", {"campaign_id": cancelled.campaign_id, "cancelled_at": due + 1000})
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        publish_records(
            settings,
            [
                account_record(sent),
                emails_only,
                *scenario_records(sent),
                *scenario_records(rejected),
                cancel,
                *scenario_records(cancelled),
                *scenario_records(pending),
                ("campaign.launched", pending.launch_record()),  # a retry while it waits: told once
            ],
        )
        wait_for("the sent booster's report", lambda: _final(settings, sent.campaign_id), 60, 0.5)
        # after it fired: a cancel made too late, the same launch again (a retry), and another launch of it
        relaunch = {**sent.launch_record(), "name": "relaunched", "launched_at": sent.launched_at + 5000}
        publish_records(
            settings,
            [
                ("campaign.booster-cancelled", {"campaign_id": sent.campaign_id, "cancelled_at": sent.deadline + 10}),
                ("campaign.launched", sent.launch_record()),
                ("campaign.launched", relaunch),
            ],
        )

        wait_for("the cancelled booster's report", lambda: _final(settings, cancelled.campaign_id), 60, 0.5)
        wait_for("the pending launch's rejection", lambda: _final(settings, pending.campaign_id), 60, 0.5)
        # every record that could make a notice is processed (a retry that wrongly made one would be in)
        wait_for("the decisions", lambda: group_lag(settings, CONSUMED) == 0, 60, 0.2)
        notices = wait_for("six notices", lambda: _at_least(read_all(settings, "booster.notices"), 6), 60, 0.5)
    finally:
        worker.stop()
    told = {(n["campaign_id"], n["kind"], n["reason_code"]) for _, n, _ in notices}
    assert told == {
        (rejected.campaign_id, "BOOSTER_REJECTED", "CHANNEL_NOT_ENABLED"),
        (cancelled.campaign_id, "BOOSTER_CANCELLED", "CANCEL_REQUESTED"),
        (pending.campaign_id, "LAUNCH_PENDING", "ACCOUNT_PENDING"),
        (pending.campaign_id, "BOOSTER_REJECTED", "ACCOUNT_UNKNOWN"),  # its deadline passed
        (sent.campaign_id, "CANCEL_REFUSED", "CANCEL_TOO_LATE"),
        (sent.campaign_id, "LAUNCH_DUPLICATE", "DUPLICATE_LAUNCH"),
    }, notices
    # written once: no notice id twice, and one record per thing told
    ids = Counter(n["notice_id"] for _, n, _ in notices)
    assert max(ids.values()) == 1 and len(notices) == len(told)
    for key, n, _ in notices:
        assert key == n["account_id"].encode()  # keyed by account
        assert n["booster_id"] == f"{n['campaign_id']}:booster" and n["text"]
    by_campaign = {n["campaign_id"]: n for _, n, _ in notices if n["kind"].startswith("BOOSTER_")}
    assert by_campaign[rejected.campaign_id]["account_id"] == rejected.account_id
    # the reports carry the same codes
    assert _final(settings, rejected.campaign_id) == ("REJECTED", "CHANNEL_NOT_ENABLED")
    assert _final(settings, cancelled.campaign_id) == ("CANCELLED", "CANCEL_REQUESTED")
    assert _final(settings, sent.campaign_id) == ("SENT", None)
    assert _final(settings, pending.campaign_id) == ("REJECTED", "ACCOUNT_UNKNOWN")
    assert [r["status"] for r, _ in reports_by_campaign(settings)[pending.campaign_id]] == ["PENDING", "REJECTED"]


def _at_least(records: list[Any], n: int) -> list[Any] | None:
    return records if len(records) >= n else None


def _final(settings: Any, campaign_id: str) -> tuple[str, str | None] | None:
    """The booster's final report's (status, reason_code), None while it is only PENDING, SCHEDULED or
    absent."""
    reports = [
        r for r, _ in reports_by_campaign(settings).get(campaign_id, []) if r["status"] not in ("PENDING", "SCHEDULED")
    ]
    return (reports[-1]["status"], reports[-1]["reason_code"]) if reports else None
