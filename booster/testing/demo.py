"""`booster demo`: topics, a worker, a campaign whose booster fires within a minute, the result; then
simulated engagement during the booster's measurement window, and what the booster earned."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from booster.config import Settings
from booster.ops import admin
from booster.ops.clients import booster_results, latest_reports, publish_lines, read_topic
from booster.ops.jsonio import record_to_json
from booster.ops.views import render_results
from booster.processors.boosters import booster_id_of
from booster.schemas import codec
from booster.streams.records import WorkerClock
from booster.testing.scenario import HOUR_MS, Scenario, build
from booster.testing.workers import WorkerProcess

DEMO_LEAD_SECONDS = 40  # the booster's deadline is this far in the future (wall seconds) when the demo publishes
# the demo worker's clock runs this many times the wall's (BOOSTER_TEST_CLOCK), so that the booster's
# measurement window, an hour at the least, ends within a minute
DEMO_SPEED = 120
DEMO_HOLDOUT_PERCENT = 20
# the simulated people: this share of the boosted open the booster, this share of the held out the original
BOOSTED_ENGAGE_EVERY, HELD_OUT_ENGAGE_EVERY = 5, 10


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
    anchor = int(time.time() * 1000)
    clock = WorkerClock(DEMO_SPEED, anchor)
    worker = WorkerProcess(
        settings,
        # per consumer group: a worker's state belongs to its topics (another prefix's would not match them)
        settings.home / "demo" / settings.group_id / "worker-state",
        name="worker",
        BOOSTER_TEST_CLOCK=f"{DEMO_SPEED}@{anchor}",
    )
    log_path = worker.log_path
    say(f"starting a worker whose clock runs {DEMO_SPEED} times the wall's (log: {log_path}) ...")
    worker.start()
    try:
        now = int(clock.now())
        campaign_id = f"demo-{now}"
        # the booster's delay must be at least 2 hours (R2): the campaign was "launched" 2 hours ago; 20 %
        # of its audience is held out, and engagement is measured for an hour after the deadline
        sc = build(
            campaign_id,
            recipients,
            launched_at=now - 2 * HOUR_MS + DEMO_LEAD_SECONDS * 1000 * DEMO_SPEED,
            name="Spring sale",
            holdout_percent=DEMO_HOLDOUT_PERCENT,
        )
        sc.measurement_hours = 1
        say(f"publishing campaign {campaign_id}: {recipients} recipients, {sc.event_count} events ...")
        asyncio.run(publish_scenario(settings, sc))
        # and one whose booster asks for a 1-hour delay: REJECTED at once (R2), and the account is told (R14)
        too_soon = build(f"{campaign_id}-too-soon", 3, launched_at=now, delay_seconds=3600, name="Flash sale")
        say(f"publishing campaign {too_soon.campaign_id}, whose booster is set 1 hour after it ...")
        asyncio.run(publish_scenario(settings, too_soon))
        wait = DEMO_LEAD_SECONDS + settings.allowed_lateness_ms / 1000 / DEMO_SPEED
        say(f"the booster's deadline is in {DEMO_LEAD_SECONDS} s (+ the allowed lateness); waiting ...")
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
        measured = ok and _measure(settings, sc, clock, wait_seconds)
        if not ok:
            print("demo FAILED: the audience differs from the expected one")
        elif not told:
            print("demo FAILED: the rejected booster's account was not told exactly once")
        elif not measured:
            print(f"demo FAILED: the booster's results are missing or wrong; see {log_path}")
        else:
            print("demo OK")
        return 0 if ok and told and measured else 1
    finally:
        worker.stop()


def _measure(settings: Settings, sc: Scenario, clock: WorkerClock, wait_seconds: float) -> bool:
    """Simulated people engage during the measurement window: one in BOOSTED_ENGAGE_EVERY of the boosted
    open the booster's message, one in HELD_OUT_ENGAGE_EVERY of the held out open the original; the
    booster's results must count exactly them."""
    booster_id = booster_id_of(sc.campaign_id)
    boosted = sorted(sc.expected_audience)
    held_out = sorted(c for c, outcome in sc.expected_outcome.items() if outcome == "HOLDOUT")
    engaged_boosted, engaged_held = boosted[::BOOSTED_ENGAGE_EVERY], held_out[::HELD_OUT_ENGAGE_EVERY]
    at = sc.deadline + 10 * 60_000  # ten minutes into the window
    opens = [
        {"campaign_id": campaign, "contact_id": c, "message_id": f"{campaign}-{c}", "opened_at": at}
        for campaign, contacts in ((booster_id, engaged_boosted), (sc.campaign_id, engaged_held))
        for c in contacts
    ]
    say(
        f"simulating engagement in the hour after the deadline: {len(engaged_boosted)} of {len(boosted)} boosted "
        f"open the booster, {len(engaged_held)} of {len(held_out)} held out open the original ..."
    )
    asyncio.run(publish_lines(settings, "message.opened", _lines(opens)))
    left = (sc.deadline + HOUR_MS - clock.now()) / DEMO_SPEED / 1000
    say(f"the measurement window ends in {max(0.0, left):.0f} s; waiting for the booster's results ...")
    results = asyncio.run(wait_for_results(settings, sc.campaign_id, max(0.0, left) + wait_seconds))
    if results is None:
        return False
    print("results (booster.results):")
    print(render_results(results))
    counts = (results["boosted"], results["boosted_engaged"], results["held_out"], results["held_out_engaged"])
    return counts == (len(boosted), len(engaged_boosted), len(held_out), len(engaged_held))


async def wait_for_results(settings: Settings, campaign_id: str, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := await booster_results(settings, campaign_id)) is not None:
            return found
        await asyncio.sleep(1.0)
    return None
