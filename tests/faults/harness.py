"""What the fault tests share: the commands' uncommitted end, and the verifier of one booster's
commands and report against its known audience (G2)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from booster.config import Settings
from booster.ops import clients
from booster.processors.boosters import booster_id_of, command_id_of
from booster.testing.demo import commands_for
from booster.testing.scenario import Scenario
from booster.testing.workers import WorkerProcess


def uncommitted_high_watermark(settings: Settings, topic: str = "booster.commands") -> int:
    """Records written to a topic so far, committed or not (fan-out progress shows here first)."""

    async def go() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.broker, isolation_level="read_uncommitted")
        await consumer.start()
        try:
            tps = [TopicPartition(settings.topic(topic), p) for p in range(settings.partitions)]
            return sum((await consumer.end_offsets(tps)).values())
        finally:
            await consumer.stop()

    return asyncio.run(go())


async def final_report_async(settings: Settings, campaign_id: str) -> dict[str, Any] | None:
    found = await clients.final_report(settings, campaign_id)
    return None if found is None else found[0]


def final_report(settings: Settings, campaign_id: str) -> dict[str, Any] | None:
    return asyncio.run(final_report_async(settings, campaign_id))


@dataclass
class Verification:
    commands: int
    distinct_ids: int
    duplicates: list[str] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)
    unexpected: set[str] = field(default_factory=set)
    wrong_ids: int = 0
    report: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(settings: Settings, sc: Scenario, report: dict[str, Any] | None = None) -> Verification:
    """Read committed commands and reports; check G2 for one booster against its expected audience.
    `report` is the booster's final report when the caller has just read it."""

    # the report first: every command of a booster is committed before its final report exists
    if report is None:
        report = final_report(settings, sc.campaign_id)
    got = asyncio.run(commands_for(settings, booster_id_of(sc.campaign_id)))
    ids = Counter(c["command_id"] for c in got)
    contacts = {c["contact_id"] for c in got}
    booster_id = booster_id_of(sc.campaign_id)
    v = Verification(commands=len(got), distinct_ids=len(ids))
    v.duplicates = [i for i, n in ids.items() if n > 1]
    v.missing = sc.expected_audience - contacts
    v.unexpected = contacts - sc.expected_audience
    v.wrong_ids = sum(1 for c in got if c["command_id"] != command_id_of(booster_id, c["contact_id"]))
    v.report = report
    if v.duplicates:
        v.problems.append(f"{len(v.duplicates)} command_id(s) seen more than once")
    if v.missing:
        v.problems.append(f"{len(v.missing)} eligible recipient(s) got no command")
    if v.unexpected:
        v.problems.append(f"{len(v.unexpected)} command(s) to excluded or unknown recipients")
    if v.wrong_ids:
        v.problems.append(f"{v.wrong_ids} command_id(s) not derived from booster and contact")
    if v.report is None or v.report["status"] != "SENT":
        v.problems.append(f"final report is {v.report}")
    elif v.report["audience"] != len(sc.expected_audience):
        v.problems.append(f"report audience {v.report['audience']} != {len(sc.expected_audience)}")
    elif any(v.report["excluded"].get(k, 0) != n for k, n in sc.expected_excluded.items()):
        v.problems.append(f"report exclusions {v.report['excluded']} != {dict(sc.expected_excluded)}")
    elif v.report["boosted_despite_machine_open"] != sc.expected_machine_opened:
        got = v.report["boosted_despite_machine_open"]
        v.problems.append(f"report boosted despite a machine open {got} != {sc.expected_machine_opened}")
    elif v.report["boosted_despite_scanner_click"] != sc.expected_scanner_clicked:
        got = v.report["boosted_despite_scanner_click"]
        v.problems.append(f"report boosted despite a scanner's click {got} != {sc.expected_scanner_clicked}")
    return v


def fired(settings: Settings, sc: Scenario) -> Verification | None:
    """The verification of a booster once its final report exists, else None (for wait_for): the
    commands are read only then."""
    report = final_report(settings, sc.campaign_id)
    return None if report is None else verify(settings, sc, report)


def fire_with_a_worker(
    settings: Settings, sc: Scenario, data_dir: Path, timeout: float = 90, **env: str
) -> Verification:
    """A worker (with these BOOSTER_* settings), the scenario's account, facts and launch, and the
    verification once its booster has a final report."""
    from tests.helpers import account_record, publish_records, scenario_records, wait_for

    worker = WorkerProcess(settings, data_dir, **env).start()
    try:
        publish_records(settings, [account_record(sc), *scenario_records(sc)])
        return wait_for("the booster to fire", lambda: fired(settings, sc), timeout, 0.5)
    finally:
        worker.stop()
