"""Broker faults are not bad input, during launch handling: the broker killed for
longer than the worker's client timeouts and retries while launches are re-keyed, decided and
broadcast. It runs its own broker (tests/faults/outage.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.ops import admin
from booster.processors.boosters import booster_id_of, command_id_of
from booster.testing.scenario import Scenario, build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.harness import uncommitted_high_watermark
from tests.faults.outage import committed, gives_up, kill
from tests.helpers import account_record, publish_records, read_all, reports_by_campaign, scenario_records, wait_for


def test_a_broker_down_while_launches_are_handled_loses_no_booster_and_sends_none_twice(
    own_broker: LocalKafka, tmp_path: Path
) -> None:
    """Launches re-keyed, decided and broadcast, reports and notices written, when the broker goes: the
    worker exits without acknowledging them, and its restart decides each launch once more (a decision
    kept before the crash makes the replay a duplicate whose broadcast is sent again)."""
    settings = fresh_settings(
        2,
        BOOSTER_BROKER=own_broker.bootstrap,
        BOOSTER_REQUEST_TIMEOUT_SECONDS="2",
        BOOSTER_RETRY_SECONDS="3",
        BOOSTER_SESSION_TIMEOUT_SECONDS="6",
    )
    asyncio.run(admin.create(settings))
    due = launched_for_deadline(int(time.time() * 1000) - 60_000)
    tag = uuid.uuid4().hex[:4]
    boosters = [
        build(f"launch-{tag}-{i:03d}", 6, launched_at=due, account_id="acct-outage", roles=["eligible", "clicked"])
        for i in range(LAUNCHES)
    ]
    facts = [f for sc in boosters for f in scenario_records(sc, launch=False)]
    publish_records(settings, [account_record(boosters[0]), *facts])
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        wait_for("the facts processed", lambda: committed(settings) >= len(facts), 120, 0.2)
        publish_records(settings, [("campaign.launched", sc.launch_record()) for sc in boosters])

        def reports() -> int:  # each launch's first report is written when it is decided
            return uncommitted_high_watermark(settings, "booster.reports")

        decided_before = wait_for("launches being decided", lambda: _at_least(reports(), LAUNCHES // 10), 120, 0.02)
        killed_at = kill(own_broker)
        gives_up(worker)
        down_for = time.monotonic() - killed_at
        own_broker.start(say=lambda _m: None)
        worker.start()
        final = wait_for("every booster's final report", lambda: _all_sent(settings, boosters), 300, 1.0)
    finally:
        worker.stop()
    assert down_for > settings.request_timeout  # the clients gave up for real
    assert decided_before < LAUNCHES, "every launch was decided before the broker went: the kill came too late"
    commands = Counter(value["command_id"] for _k, value, _ts in read_all(settings, "booster.commands"))
    assert [i for i, n in commands.items() if n > 1] == []
    for sc in boosters:
        assert final[sc.campaign_id]["audience"] == len(sc.expected_audience), sc.campaign_id
        expected = {command_id_of(booster_id_of(sc.campaign_id), c) for c in sc.expected_audience}
        assert expected <= set(commands), sc.campaign_id
    assert sum(commands.values()) == sum(len(sc.expected_audience) for sc in boosters)
    assert read_all(settings, "booster.dead-letter") == []


LAUNCHES = 60


def _at_least(n: int, least: int) -> int | None:
    return n if n >= least else None


def _all_sent(settings: Settings, boosters: list[Scenario]) -> dict[str, dict[str, Any]] | None:
    latest = {c: reports[-1][0] for c, reports in reports_by_campaign(settings).items()}
    sent = {c: r for c, r in latest.items() if r["status"] == "SENT"}
    others = [r for c, r in latest.items() if r["status"] not in ("SENT", "SCHEDULED")]
    assert others == [], others  # nothing rejected, cancelled or pending on the way
    return sent if all(sc.campaign_id in sent for sc in boosters) else None
