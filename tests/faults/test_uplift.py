"""The uplift measurement end to end on the broker, with a known answer: a booster with a 30 % holdout fires, people
engage with the original or the booster during its measurement window (and machines, link scanners
and latecomers do not count), the worker is killed with kill -9 in the middle of the window and two
fresh ones share its partitions, restored from the changelogs, and booster.results says exactly what
was engaged, by group.
The workers' clock runs SPEED times the wall's, so the shortest window (an hour) passes in 90 s."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from booster.broker.local import LocalKafka
from booster.ops import admin
from booster.processors.boosters import booster_id_of
from booster.processors.uplift import GroupCounts, holdout_of, uplift
from booster.schemas.catalog import CONTACT_INPUT_TOPICS
from booster.streams.records import WorkerClock
from booster.streams.store import recipient_prefix
from booster.testing.scenario import HOUR_MS, build
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.test_kill9 import SHORTEST_SESSION_TIMEOUT
from tests.helpers import (
    Record,
    accept_stamps_ahead,
    account_record,
    booster,
    changelog_latest,
    decisions,
    encoded,
    group_lag,
    publish_stamped,
    read_all,
    reports_by_campaign,
    scenario_records,
    wait_for,
)

SPEED = 40
MINUTE_MS = 60_000


def test_the_results_count_exactly_who_engaged_in_each_group_through_a_kill_9(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    settings = fresh_settings(BOOSTER_SESSION_TIMEOUT_SECONDS=SHORTEST_SESSION_TIMEOUT)
    asyncio.run(admin.create(settings))
    asyncio.run(accept_stamps_ahead(settings))  # the facts carry the worker's clock, ahead of the wall's
    anchor = int(time.time() * 1000)
    clock = WorkerClock(SPEED, anchor)
    env = {"BOOSTER_TEST_CLOCK": f"{SPEED}@{anchor}"}
    worker = WorkerProcess(settings, tmp_path / "w1", **env).start()
    tag = f"uplift-{anchor}"
    sc = build(
        tag, 300, launched_at=int(clock.now()) - 2 * HOUR_MS + 2 * MINUTE_MS, account_id=f"acct-{tag}",
        roles=["eligible", "eligible", "eligible", "opened"], holdout_percent=30,
    )  # fmt: skip
    launch = sc.launch_record()
    launch["booster"]["measurement_hours"] = 1
    records = [account_record(sc), *scenario_records(sc, launch=False), ("campaign.launched", launch)]
    asyncio.run(publish_stamped(settings, encoded(records), int(clock.now())))

    def final() -> dict[str, object] | None:
        if not worker.alive():
            raise AssertionError("the worker died:\n" + worker.log_text()[-4000:])
        reports = reports_by_campaign(settings).get(sc.campaign_id, [])
        return next((r for r, _ in reversed(reports) if r["status"] in ("SENT", "CANCELLED")), None)

    report = wait_for("the booster's final report", final, 120, 0.5)
    assert report["status"] == "SENT", report

    booster_id = booster_id_of(sc.campaign_id)
    held_out = holdout_of(booster_id, 30)
    boosted = sorted(c for c in sc.expected_audience)
    held = sorted(c for c, outcome in sc.expected_outcome.items() if outcome == "HOLDOUT")
    assert boosted and held and all(held_out(c) for c in held)
    opened_before = sorted(c for c, outcome in sc.expected_outcome.items() if outcome == "OPENED")
    deadline, window_end = sc.deadline, sc.deadline + HOUR_MS

    def opened(contact: str, at: int, campaign: str, machine: bool = False) -> Record:
        value = {"campaign_id": campaign, "contact_id": contact, "message_id": f"{campaign}-m", "opened_at": at,
                 "machine_open": machine}  # fmt: skip
        return ("message.opened", value)

    def clicked(contact: str, at: int, campaign: str, bot: bool = False) -> Record:
        value = {"campaign_id": campaign, "contact_id": contact, "message_id": f"{campaign}-m", "clicked_at": at,
                 "url": "https://example.com/offer", "bot": bot}  # fmt: skip
        return ("message.clicked", value)

    # who engaged: every other boosted contact with the booster (some twice), every fourth held-out one
    # with the original; and what does not count
    engaged_boosted, engaged_held = boosted[::2], held[::4]
    engagement = [
        *(opened(c, deadline + 10 * MINUTE_MS, booster_id) for c in engaged_boosted),
        *(clicked(c, deadline + 12 * MINUTE_MS, booster_id) for c in engaged_boosted[::3]),
        *(clicked(c, deadline + 20 * MINUTE_MS, sc.campaign_id) for c in engaged_held),
        *(opened(c, deadline + 5 * MINUTE_MS, booster_id, machine=True) for c in boosted[1::2]),  # a proxy
        *(clicked(c, deadline + 5 * MINUTE_MS, sc.campaign_id, bot=True) for c in held[1::4]),  # a scanner
        *(opened(c, window_end + MINUTE_MS, sc.campaign_id) for c in held[2::4]),  # after the window
        *(opened(c, deadline + 15 * MINUTE_MS, sc.campaign_id) for c in opened_before),  # in neither group
    ]
    asyncio.run(publish_stamped(settings, encoded(engagement), int(clock.now())))
    wait_for("the engagement to be ingested", lambda: group_lag(settings, CONTACT_INPUT_TOPICS) == 0, 60, 0.2)
    assert clock.now() < window_end, "the window ended before the kill: the test proves nothing"
    # kill -9 in the window; two fresh workers, on empty data directories, restore the partitions from
    # the changelogs between them, and each measures its own
    worker.kill()
    workers = [WorkerProcess(settings, tmp_path / name, name=name, **env).start(False) for name in ("w2", "w3")]
    for w in workers:
        w.wait_ready()

    def results() -> dict[str, object] | None:
        for w in workers:
            if not w.alive():
                raise AssertionError("a worker died:\n" + w.log_text()[-4000:])
        found = [v for _, v, _ in read_all(settings, "booster.results") if v["campaign_id"] == sc.campaign_id]
        return found[-1] if found else None

    try:
        got = wait_for("the booster's results", results, 180, 1.0)
        prefix = recipient_prefix(sc.campaign_id)
        rows = [
            k for k, v in changelog_latest(settings, "engagement").items() if k.startswith(prefix) and v is not None
        ]
    finally:
        logs = [w.log_text() for w in workers]
        log = "\n".join(text[-2000:] for text in logs)
        for w in workers:
            w.stop()
    measured_by = [
        sum(1 for d in decisions(text) if d["event"] == "measured-partition" and d["campaign_id"] == sc.campaign_id)
        for text in logs
    ]
    assert sum(measured_by) >= 4 and all(measured_by), f"each worker measures its own partitions: {measured_by}"
    expected = uplift(GroupCounts(len(boosted), len(engaged_boosted), len(held), len(engaged_held)))
    assert (got["boosted"], got["boosted_engaged"]) == (len(boosted), len(engaged_boosted)), log[-3000:]
    assert (got["held_out"], got["held_out_engaged"]) == (len(held), len(engaged_held))
    assert got["difference"] == expected.difference
    assert (got["difference_low"], got["difference_high"]) == (expected.difference_low, expected.difference_high)
    assert got["extra_engagements"] == expected.extra_engagements
    assert (got["deadline"], got["measured_until"], got["holdout_percent"]) == (deadline, window_end, 30)
    assert len(read_all(settings, "booster.results")) == 1  # one record per booster
    assert rows == [], "the window's engagement rows are still in the changelog"
    # the operators' view of it
    shown = booster(settings, "results", sc.campaign_id)
    assert shown.returncode == 0 and "held out" in shown.stdout and "difference" in shown.stdout, shown
    as_json = json.loads(booster(settings, "results", sc.campaign_id, "--json").stdout)
    assert as_json["held_out_engaged"] == len(engaged_held)
