"""Quiet hours across a daylight-saving change, end to end on the broker: a worker whose clock reads the
night Europe moves to summer time (2027-03-28, 01:00 UTC) fires an SMS booster for recipients in
several time zones; a command issued inside the quiet hours carries their end in the recipient's local
time, after the change where there is one, and the report counts them."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from booster.broker.local import LocalKafka
from booster.ops import admin
from booster.processors.boosters import booster_id_of
from booster.streams.records import WorkerClock
from booster.testing.scenario import HOUR_MS, build
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.helpers import (
    accept_stamps_ahead,
    account_record,
    encoded,
    publish_stamped,
    read_all,
    reports_by_campaign,
    scenario_records,
    wait_for,
)

# Paris goes from 02:00 CET to 03:00 CEST, London from 01:00 GMT to 02:00 BST
CHANGE = datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
# the worker's clock reads this when it starts, and runs twice as fast as the wall's: the booster
# fires within minutes of it, long before the change
START = CHANGE - timedelta(minutes=45)
SPEED = 2
QUIET = {"channel": "SMS", "start": "22:00", "end": "08:00"}
FINAL = {"SENT", "CANCELLED", "REJECTED"}


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


# each zone's end of the quiet hours in UTC, worked out by hand from the zones' rules; None: outside
# them when the booster fires (New York is at about 20:20 EDT, Sydney at about 11:20 AEDT)
EXPECTED_END: dict[str, int | None] = {
    "Europe/Paris": _ms(datetime(2027, 3, 28, 6, 0, tzinfo=UTC)),  # 08:00 CEST; 07:00 UTC had it stayed CET
    "Europe/London": _ms(datetime(2027, 3, 28, 7, 0, tzinfo=UTC)),  # 08:00 BST; 08:00 UTC had it stayed GMT
    "Asia/Kolkata": _ms(datetime(2027, 3, 28, 2, 30, tzinfo=UTC)),  # 08:00 IST, no daylight saving
    "America/New_York": None,
    "Australia/Sydney": None,
}


def test_quiet_hours_end_in_local_time_across_a_daylight_saving_change(kafka: LocalKafka, tmp_path: Path) -> None:
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    # now = anchor + (wall - anchor) * SPEED, so that the worker's clock reads START at the wall's now
    wall = time.time() * 1000
    anchor = int((SPEED * wall - _ms(START)) / (SPEED - 1))
    clock = WorkerClock(SPEED, anchor)
    worker = WorkerProcess(settings, tmp_path / "w", BOOSTER_TEST_CLOCK=f"{SPEED}@{anchor}").start()
    try:
        started = clock.now()
        # due a minute after the worker's start: 2 hours (the shortest delay) after the launch
        sc = build(
            f"dst-{int(wall)}", 50, launched_at=int(started) - 2 * HOUR_MS + 60_000, channel="SMS",
            account_id=f"acct-dst-{int(wall)}", roles=["eligible"],
            time_zones=[None, "Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Sydney"],
        )  # fmt: skip
        sc.quiet_hours = [QUIET]
        sc.time_zone = "Europe/Paris"  # the account's, for the contacts without a fact
        # stamped with the worker's clock, months ahead of the broker's: the rows are dated by them (R12)
        asyncio.run(accept_stamps_ahead(settings))
        records = encoded([account_record(sc), *scenario_records(sc)])
        asyncio.run(publish_stamped(settings, records, clock.now()))

        def final() -> dict[str, object] | None:
            if not worker.alive():
                raise AssertionError("the worker died:\n" + worker.log_text()[-4000:])
            reports = reports_by_campaign(settings).get(sc.campaign_id, [])
            return next((r for r, _ in reversed(reports) if r["status"] in FINAL), None)

        try:
            report = wait_for("the booster's final report", final, 180, 0.5)
        except AssertionError as exc:
            seen = [r["status"] for r, _ in reports_by_campaign(settings).get(sc.campaign_id, [])]
            raise AssertionError(f"{exc}; reports {seen}; the worker's log:\n{worker.log_text()[-6000:]}") from None
        assert report["status"] == "SENT", f"{report}; the worker's log:\n{worker.log_text()[-6000:]}"
    finally:
        worker.stop()
    commands = [
        v for _, v, _ in read_all(settings, "booster.commands") if v["booster_id"] == booster_id_of(sc.campaign_id)
    ]
    assert len(commands) == 50
    for c in commands:
        assert c["issued_at"] < _ms(CHANGE), f"issued after the change, the test proves nothing: {c}"
        zone = sc.time_zones.get(c["contact_id"], sc.time_zone)
        assert c["send_after"] == EXPECTED_END[zone], (zone, c)
    deferred = sum(1 for c in commands if c["send_after"] is not None)
    assert deferred == 30 and report["deferred"] == 30 and report["audience"] == 50
