"""R6 through the contract topics: each message's status is its latest delivery report at or before the
deadline, and several messages of one recipient combine as the README says."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from booster.broker.local import LocalKafka
from booster.ops import admin
from booster.testing.scenario import build, launched_for_deadline
from tests.conftest import fresh_settings
from tests.faults.harness import fire_with_a_worker

MINUTE_MS = 60_000


def test_the_latest_report_of_each_message_decides_and_messages_combine(kafka: LocalKafka, tmp_path: Path) -> None:
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    sc = build(
        f"r6-{uuid.uuid4().hex[:6]}", 8, launched_at=launched_for_deadline(int(time.time() * 1000)), roles=["eligible"]
    )
    contacts = sorted(sc.roles)  # each sent at t, DELIVERED at t + 1 minute (the scenario's own facts)
    t = sc.launched_at

    def reports(contact: str, *statuses: str, message: str | None = None, first_minute: int = 2) -> None:
        i = int(contact.rsplit("c", 1)[1])
        message_id = message or f"{sc.campaign_id}-m{i}"
        for n, status in enumerate(statuses):
            at = t + i + (first_minute + n) * MINUTE_MS
            record = {"campaign_id": sc.campaign_id, "contact_id": contact, "message_id": message_id}
            sc.add("message.delivered", {**record, "status": status, "reported_at": at})

    def excluded_for_error(contact: str) -> None:
        sc.expected_audience.discard(contact)
        sc.expected_excluded["ERROR"] += 1

    reports(contacts[0], "ERROR", "DELIVERED")  # DELIVERED, ERROR, DELIVERED: delivered
    reports(contacts[1], "ERROR")  # DELIVERED, ERROR: Error
    excluded_for_error(contacts[1])
    reports(contacts[2], "ERROR", "DELIVERED", "ERROR")  # ends in ERROR
    excluded_for_error(contacts[2])
    # a second part of the message (multipart SMS), sent and failed: the first part was delivered
    part = f"{sc.campaign_id}-part2"
    sc.add("message.sent", {"campaign_id": sc.campaign_id, "contact_id": contacts[3], "message_id": part,
                            "channel": "EMAIL", "sent_at": t + 5})  # fmt: skip
    reports(contacts[3], "ERROR", message=part)
    # a report after the deadline does not count: the ERROR before it decides
    reports(contacts[4], "ERROR")
    sc.add("message.delivered", {"campaign_id": sc.campaign_id, "contact_id": contacts[4], "status": "DELIVERED",
                                 "message_id": f"{sc.campaign_id}-m4", "reported_at": sc.deadline + 1})  # fmt: skip
    excluded_for_error(contacts[4])

    v = fire_with_a_worker(settings, sc, tmp_path / "w")
    assert v.ok, v.problems
    assert {contacts[0], contacts[3]} <= sc.expected_audience and v.commands == len(sc.expected_audience) == 5
