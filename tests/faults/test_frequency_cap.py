"""The frequency cap through kill -9 and a move of every partition: a booster of a capped account is
killed in its fan-out, then its partitions move to a worker with an empty state directory, which caps
the account's next booster exactly: nobody gets both, nobody the cap did not stop is left out."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from booster.broker.local import LocalKafka
from booster.ops import admin
from booster.testing.scenario import Scenario, build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.chaos import Watch
from tests.faults.harness import fired, verify
from tests.faults.test_kill9 import SHORTEST_SESSION_TIMEOUT
from tests.helpers import account_record, publish_records, scenario_records, wait_for

RECIPIENTS = 4000  # in chunks of 50: the first booster's fan-out lasts long enough to be killed in


def capped(tag: str, short: str, roles: list[str]) -> Scenario:
    due = launched_for_deadline(int(time.time() * 1000) - 60_000)
    sc = build(
        f"{tag}-{short}", RECIPIENTS, launched_at=due, account_id=f"acct-{tag}", roles=roles, contact_prefix=f"{tag}-c"
    )
    sc.frequency_cap = {"max_boosters": 1, "window_hours": 24}
    return sc


def test_a_frequency_cap_holds_through_kill9_in_the_fanout_and_a_move_to_an_empty_worker(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    settings = fresh_settings(BOOSTER_FANOUT_CHUNK="50", BOOSTER_SESSION_TIMEOUT_SECONDS=SHORTEST_SESSION_TIMEOUT)
    asyncio.run(admin.create(settings))
    tag = f"cap-{uuid.uuid4().hex[:6]}"
    first = capped(tag, "first", ["eligible", "opened"])  # reaches half the contacts
    second = capped(tag, "second", ["eligible"])  # would reach all of them
    records = [account_record(first), *scenario_records(first), *scenario_records(second, launch=False)]
    worker = WorkerProcess(settings, tmp_path / "w1", name="w1").start()
    mover = WorkerProcess(settings, tmp_path / "w2", name="w2")
    kills = 0
    try:
        publish_records(settings, records)

        async def kill_during_the_fanout() -> None:
            nonlocal kills
            async with Watch(settings) as watch:
                written = 0
                while kills < 2 and time.monotonic() < started + 180:
                    now_written = await watch.commands_written()
                    if now_written > written + 200:
                        worker.kill()
                        worker.start()
                        kills += 1
                        written = await watch.commands_written()
                    await asyncio.sleep(0.05)

        started = time.monotonic()
        asyncio.run(kill_during_the_fanout())
        v_first = wait_for("the first booster to fire", lambda: fired(settings, first), 240, 0.5)
        # every partition to a worker with no state of its own: it restores the tables and reads the
        # rest of the history from booster.audience
        mover.start()
        worker.kill()
        publish_records(settings, [("campaign.launched", second.launch_record())])
        second_fired = wait_for("the second booster to fire", lambda: fired(settings, second), 240, 0.5)
    finally:
        worker.stop()
        mover.stop()
    assert kills == 2, "the first fan-out finished before it was killed twice"
    assert v_first.ok, v_first.problems
    # the second booster goes exactly to those the first did not reach (they opened its campaign)
    openers = {c for c, role in first.roles.items() if role == "opened"}
    second.expected_audience = openers
    second.expected_excluded.clear()
    second.expected_excluded["FREQUENCY_CAP"] = RECIPIENTS - len(openers)
    v_second = verify(settings, second, second_fired.report)
    assert v_second.ok, v_second.problems
    assert v_second.report is not None and v_second.report["excluded"]["FREQUENCY_CAP"] == RECIPIENTS // 2
