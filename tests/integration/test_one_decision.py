"""R13, one booster, one decision: every partition of a booster fires, or none does, whichever
partition a cancel reached first; the final report agrees with the commands; a cancel that comes after
the decision is refused with a notice. R7: a campaign everyone opened gets no booster, whatever its
criterion. G5: conflicting launches of one campaign id give the same booster in any order."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.ops import admin
from booster.ops.clients import producer
from booster.processors.boosters import booster_id_of
from booster.processors.campaigns import DECIDING_PARTITION
from booster.processors.events import BoosterCancelled
from booster.schemas import codec
from booster.streams.wire import control_record
from booster.testing.demo import commands_for
from booster.testing.scenario import Scenario, build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.harness import final_report, verify
from tests.helpers import account_record, publish_records, read_all, reports_by_campaign, scenario_records, wait_for

OTHER_PARTITION = 1


async def _cancel_reaches_one_partition(settings: Settings, cancel: BoosterCancelled, partition: int) -> None:
    """A cancel as the launches agent broadcasts it, but so far in one partition only: the others are
    behind, as a lagging partition is when a cancel comes late."""
    prod = producer(settings)
    await prod.start()
    try:
        value = codec().encode("booster.control", control_record(cancel))
        await prod.send_and_wait(
            settings.topic("booster.control"), value=value, key=cancel.campaign_id.encode(), partition=partition
        )
    finally:
        await prod.stop()


def test_a_cancel_seen_by_one_partition_cancels_every_partition_or_none(kafka: LocalKafka, tmp_path: Path) -> None:
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    tag = uuid.uuid4().hex[:6]
    due = launched_for_deadline(int(time.time() * 1000) - 60_000)
    # A's cancel reached only a partition that does not decide; B's only the deciding partition
    sent = build(f"a-{tag}", 40, launched_at=due)
    cancelled = build(f"b-{tag}", 40, launched_at=due)
    # C: every recipient opened the original; the criterion alone would send to all of them
    everyone_opened = build(f"c-{tag}", 40, launched_at=due, criterion="NOT_CLICKED", roles=["opened"])
    for sc, p in ((sent, OTHER_PARTITION), (cancelled, DECIDING_PARTITION)):
        asyncio.run(_cancel_reaches_one_partition(settings, BoosterCancelled(sc.campaign_id, sc.deadline - 1000), p))
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        publish_records(
            settings,
            [
                account_record(sent),
                *scenario_records(sent),
                *scenario_records(cancelled),
                *scenario_records(everyone_opened),
            ],
        )
        a = wait_for("A's final report", lambda: final_report(settings, sent.campaign_id), 60, 0.5)
        b = wait_for("B's final report", lambda: final_report(settings, cancelled.campaign_id), 60, 0.5)
        c = wait_for("C's final report", lambda: final_report(settings, everyone_opened.campaign_id), 60, 0.5)
        # a cancel made in time that arrives after A's decision: refused, and the account is told
        late = ("campaign.booster-cancelled", {"campaign_id": sent.campaign_id, "cancelled_at": sent.deadline - 500})
        publish_records(settings, [late])
        [(_, notice, _)] = wait_for(
            "the refusal's notice",
            lambda: [n for n in read_all(settings, "booster.notices") if n[1]["kind"] == "CANCEL_REFUSED"],
            60,
            0.5,
        )
        told = {n["campaign_id"]: n["reason_code"] for _, n, _ in read_all(settings, "booster.notices")}
    finally:
        worker.stop()
    v = verify(settings, sent, a)
    assert v.ok, v.problems  # every partition sent: commands = audience = billable
    assert a["billable"] == a["audience"] == v.commands == len(sent.expected_audience) > 0
    assert (b["status"], b["reason_code"], b["audience"], b["billable"]) == ("CANCELLED", "CANCEL_REQUESTED", 0, 0)
    assert asyncio.run(commands_for(settings, booster_id_of(cancelled.campaign_id))) == []
    assert (c["status"], c["reason_code"], c["audience"], c["billable"]) == ("CANCELLED", "FULL_OPEN_RATE", 0, 0)
    assert asyncio.run(commands_for(settings, booster_id_of(everyone_opened.campaign_id))) == []
    assert told[everyone_opened.campaign_id] == "FULL_OPEN_RATE"  # and the account is told
    assert (notice["campaign_id"], notice["reason_code"]) == (sent.campaign_id, "CANCEL_TOO_LATE")
    assert final_report(settings, sent.campaign_id) == a  # still SENT


def test_a_channel_revoked_before_the_deadline_cancels_the_booster(kafka: LocalKafka, tmp_path: Path) -> None:
    """R15: the account loses the booster's channel between the launch and the deadline."""
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    tag = uuid.uuid4().hex[:6]
    lead_ms = 12_000  # the revocation is published before the deadline: the test waits this long
    worker = WorkerProcess(settings, tmp_path / "w").start()  # first: its start is not the lead's to spend
    try:
        revoked = build(f"r-{tag}", 40, launched_at=launched_for_deadline(int(time.time() * 1000) + lead_ms))
        publish_records(settings, [account_record(revoked), *scenario_records(revoked)])
        wait_for("the SCHEDULED report", lambda: reports_by_campaign(settings).get(revoked.campaign_id), 30, 0.2)
        now = int(time.time() * 1000)
        assert now < revoked.deadline, "the launch took longer than the lead; raise lead_ms"
        sms_only = {**account_record(revoked)[1], "channels": ["SMS"], "updated_at": now}
        publish_records(settings, [("account.channels", sms_only)])
        report = wait_for("the final report", lambda: final_report(settings, revoked.campaign_id), 60, 0.5)
        told = wait_for(
            "the notice",
            lambda: [n for _, n, _ in read_all(settings, "booster.notices") if n["campaign_id"] == revoked.campaign_id],
            30,
            0.5,
        )
    finally:
        worker.stop()
    assert (report["status"], report["reason_code"], report["billable"]) == ("CANCELLED", "CHANNEL_REVOKED", 0)
    assert asyncio.run(commands_for(settings, booster_id_of(revoked.campaign_id))) == []
    assert [(n["kind"], n["reason_code"]) for n in told] == [("BOOSTER_CANCELLED", "CHANNEL_REVOKED")]


def wait_for_final_report(settings: Settings, campaign_id: str) -> dict[str, Any]:
    return wait_for(f"{campaign_id}'s final report", lambda: final_report(settings, campaign_id), 60, 0.5)


def test_g5_conflicting_launches_from_two_accounts_send_the_earliest_in_either_order(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    """One campaign id launched by two accounts (whose launches are decided in different partitions),
    a second apart, published in both orders for two campaigns: each booster is the earliest launch's
    in every partition, and the other account is told once that its launch lost. The losing account
    then loses the booster's channel before the deadline: not the booster's account, so it is sent."""
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    tag = uuid.uuid4().hex[:6]
    lead_ms = 20_000  # both launches, and then the loser's change of channels, come before the deadline
    worker = WorkerProcess(settings, tmp_path / "w").start()  # first: its start is not the lead's to spend
    at = launched_for_deadline(int(time.time() * 1000) + lead_ms)
    first_then_second = build(f"x-{tag}", 40, launched_at=at, account_id=f"first-{tag}")
    second_then_first = build(f"y-{tag}", 40, launched_at=at, account_id=f"first-{tag}")
    loser_account = f"second-{tag}"

    def second_launch(sc: Scenario) -> dict[str, Any]:
        first = sc.launch_record()
        booster = {**first["booster"], "content_ref": "content/second"}
        return {**first, "account_id": loser_account, "launched_at": at + 1000, "booster": booster}

    accounts = [
        account_record(first_then_second),
        ("account.channels", {**first_then_second.account_channels(), "account_id": loser_account}),
    ]
    x, y = first_then_second, second_then_first
    try:
        publish_records(
            settings,
            [
                *accounts,
                *scenario_records(x, launch=False),
                *scenario_records(y, launch=False),
                ("campaign.launched", x.launch_record()),
                ("campaign.launched", second_launch(x)),
                ("campaign.launched", second_launch(y)),
                ("campaign.launched", y.launch_record()),
            ],
        )

        def losers_told() -> list[dict[str, Any]] | None:
            # notices are written at least once: a record written again (a launch decided again after a
            # rebalance) has the same notice_id, by which the account's systems keep one
            notices = [n for _, n, _ in read_all(settings, "booster.notices") if n["account_id"] == loser_account]
            once = list({n["notice_id"]: n for n in notices}.values())
            return once if len(once) >= 2 else None

        told = wait_for("the losing launches' notices", losers_told, 30, 0.5)
        now = int(time.time() * 1000)
        assert now < x.deadline - 5000, "the launches took longer than the lead"
        revoked = {"account_id": loser_account, "channels": ["SMS"], "updated_at": now}
        publish_records(settings, [("account.channels", revoked)])
        reports = {sc.campaign_id: wait_for_final_report(settings, sc.campaign_id) for sc in (x, y)}
    finally:
        worker.stop()
    for sc in (x, y):
        report = reports[sc.campaign_id]
        v = verify(settings, sc, report)
        assert v.ok, v.problems
        assert report["account_id"] == x.account_id and report["deadline"] == sc.deadline
        commands = asyncio.run(commands_for(settings, booster_id_of(sc.campaign_id)))
        assert {c["content_ref"] for c in commands} == {f"content/{sc.campaign_id}/booster"}
    assert sorted((n["campaign_id"], n["kind"]) for n in told) == [
        (x.campaign_id, "LAUNCH_DUPLICATE"),
        (y.campaign_id, "LAUNCH_DUPLICATE"),
    ]
