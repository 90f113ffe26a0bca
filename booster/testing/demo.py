"""`booster demo`: topics, a worker, a campaign whose booster fires within a minute, the result."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from booster.config import Settings
from booster.ops import admin
from booster.ops.clients import latest_reports, publish_lines, read_topic
from booster.ops.jsonio import record_to_json
from booster.processors.boosters import booster_id_of
from booster.schemas import codec
from booster.testing.scenario import HOUR_MS, Scenario, build
from booster.testing.workers import WorkerProcess

DEMO_LEAD_SECONDS = 40  # the booster's deadline is this far in the future when the demo publishes


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _lines(records: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(r) for r in records]


async def publish_scenario(settings: Settings, sc: Scenario, *, launch: bool = True) -> int:
    """Publish the account's channels, every message and contact fact, then the launch."""
    sent = 0
    sent += await publish_lines(settings, "account.channels", _lines([sc.account_channels()]))
    for topic, records in sc.records.items():
        sent += await publish_lines(settings, topic, _lines(records))
    if launch:
        sent += await publish_lines(settings, "campaign.launched", _lines([sc.launch_record()]))
    return sent


async def wait_for_report(
    settings: Settings, campaign_id: str, statuses: set[str], timeout: float, progress: bool = False
) -> dict[str, Any] | None:
    """The latest report of a campaign once its status is one of `statuses`, polling the topic."""
    deadline = time.monotonic() + timeout
    next_note = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = (await latest_reports(settings)).get(campaign_id)
        latest = None if found is None else found[0]
        if latest is not None and latest["status"] in statuses:
            return latest
        if progress and time.monotonic() >= next_note:
            state = latest["status"] if latest else "no report yet"
            say(f"  ... waiting for the booster ({state}, {deadline - time.monotonic():.0f} s left)")
            next_note = time.monotonic() + 10
        await asyncio.sleep(1.0)
    return None


async def records_where(settings: Settings, topic: str, field: str, value: str) -> list[dict[str, Any]]:
    """Every committed record of a contract topic whose `field` is `value`, decoded."""
    out = []
    async for msg in read_topic(settings, topic, until_end=True):
        record = codec().decode(topic, msg.value)
        if record[field] == value:
            out.append(record)
    return out


async def notices_for(settings: Settings, campaign_id: str, timeout: float) -> list[dict[str, Any]]:
    """The notices of a campaign on booster.notices, polling until there is one or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        mine = await records_where(settings, "booster.notices", "campaign_id", campaign_id)
        if mine or time.monotonic() >= deadline:
            return mine
        await asyncio.sleep(1.0)


async def commands_for(settings: Settings, booster_id: str) -> list[dict[str, Any]]:
    """Every committed command of a booster (read once its final report exists: they are all in)."""
    return await records_where(settings, "booster.commands", "booster_id", booster_id)


def run_demo(settings: Settings, *, recipients: int = 300, wait_seconds: float = 180.0) -> int:
    say("creating topics ...")
    created = asyncio.run(admin.create(settings))
    say(f"  {len(created)} created")
    worker = WorkerProcess(settings, settings.home / "demo" / "worker-state", name="worker")
    log_path = worker.log_path
    say(f"starting a worker (log: {log_path}) ...")
    worker.start()
    try:
        now = int(time.time() * 1000)
        campaign_id = f"demo-{now}"
        # the booster's delay must be at least 2 hours (R2): the campaign was "launched" 2 hours ago
        sc = build(
            campaign_id,
            recipients,
            launched_at=now - 2 * HOUR_MS + DEMO_LEAD_SECONDS * 1000,
            name="Spring sale",
        )
        say(f"publishing campaign {campaign_id}: {recipients} recipients, {sc.event_count} events ...")
        asyncio.run(publish_scenario(settings, sc))
        # and one whose booster asks for a 1-hour delay: REJECTED at once (R2), and the account is told (R14)
        too_soon = build(f"{campaign_id}-too-soon", 3, launched_at=now, delay_seconds=3600, name="Flash sale")
        say(f"publishing campaign {too_soon.campaign_id}, whose booster is set 1 hour after it ...")
        asyncio.run(publish_scenario(settings, too_soon))
        wait = DEMO_LEAD_SECONDS + settings.allowed_lateness_ms / 1000
        say(
            f"the booster's deadline is in {DEMO_LEAD_SECONDS} s "
            f"(+{settings.allowed_lateness_ms / 1000:.0f} s allowed lateness); waiting ..."
        )
        report = asyncio.run(
            wait_for_report(settings, campaign_id, {"SENT", "CANCELLED"}, wait + wait_seconds, progress=True)
        )
        if report is None:
            say(f"no final report within {wait + wait_seconds:.0f} s; see {log_path}")
            return 1
        commands = asyncio.run(commands_for(settings, booster_id_of(campaign_id)))
        got = {c["contact_id"] for c in commands}
        print(f"commands sent: {len(commands)} (expected {len(sc.expected_audience)})")
        print("final report:")
        print(json.dumps(record_to_json("booster.reports", report), indent=2))
        notices = asyncio.run(notices_for(settings, too_soon.campaign_id, wait_seconds))
        print(f"notice to account {too_soon.account_id} (booster.notices):")
        for notice in notices:
            print(json.dumps(record_to_json("booster.notices", notice), indent=2))
        ok = got == sc.expected_audience and len(commands) == len(got) and report["status"] == "SENT"
        told = [n["reason_code"] for n in notices] == ["DELAY_OUT_OF_RANGE"]
        if not ok:
            print("demo FAILED: the audience differs from the expected one")
        elif not told:
            print("demo FAILED: the rejected booster's account was not told exactly once")
        else:
            print("demo OK")
        return 0 if ok and told else 1
    finally:
        worker.stop()
