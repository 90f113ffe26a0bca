"""kill -9 chaos run (G2, G3): workers killed during ingestion and during a large fan-out, restarted,
then a verifier reads the committed commands.

CI runs a short version from tests/faults/test_kill9.py. For a longer manual run, with the broker up:

    python -m tests.faults.chaos --recipients 90000 --ingest-kills 5 --fanout-kills 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from booster.config import Settings
from booster.ops import admin
from booster.ops.clients import produce_raw
from booster.schemas.catalog import CONTACT_INPUT_TOPICS
from booster.testing.scenario import Scenario, build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.faults.harness import final_report_async, verify
from tests.helpers import account_record, encoded, scenario_records

# two thirds of the recipients are eligible, so N recipients give about 2N/3 commands
CHAOS_ROLES = [
    "eligible",
    "machine_open",
    "clicked",
    "scanner_click",
    "eligible",
    "opened",
    "eligible",
    "eligible",
    "deleted",
]


@dataclass
class ChaosResult:
    recipients: int
    events: int
    expected_commands: int
    kills_during_ingestion: int = 0
    kills_during_fanout: int = 0
    restarts: int = 0
    commands_verified: int = 0
    duplicate_command_ids: int = 0
    missing: int = 0
    unexpected: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    recovery_seconds: list[float] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return self.kills_during_ingestion + self.kills_during_fanout


class Watch:
    """Committed input offsets of the worker's group and the commands topic's uncommitted end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.group = settings.group_id
        self.inputs = [
            TopicPartition(settings.topic(t), p) for t in CONTACT_INPUT_TOPICS for p in range(settings.partitions)
        ]
        self.commands = [TopicPartition(settings.topic("booster.commands"), p) for p in range(settings.partitions)]

    async def __aenter__(self) -> Watch:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.broker)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.broker, isolation_level="read_uncommitted")
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def processed(self) -> int:
        committed = await self.admin.list_consumer_group_offsets(self.group, partitions=self.inputs)
        return sum(max(0, m.offset) for m in committed.values())

    async def commands_written(self) -> int:
        return sum((await self.consumer.end_offsets(self.commands)).values())


def say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def restart(worker: WorkerProcess, result: ChaosResult) -> None:
    worker.kill()
    started = time.monotonic()
    worker.start()
    result.restarts += 1
    result.recovery_seconds.append(round(time.monotonic() - started, 2))


async def chaos(
    settings: Settings, workdir: Path, *, recipients: int, ingest_kills: int, fanout_kills: int, timeout: float = 600
) -> ChaosResult:
    began = time.monotonic()
    await admin.create(settings)
    # the deadline is already due: the facts are published (with kills), then the launch, and the lag
    # gate makes every fact published before the launch count; the fan-out starts at once
    due = launched_for_deadline(int(time.time() * 1000) - 60_000)
    sc: Scenario = build(f"chaos-{uuid.uuid4().hex[:6]}", recipients, launched_at=due, roles=CHAOS_ROLES)
    records = scenario_records(sc, launch=False)
    result = ChaosResult(recipients, len(records), len(sc.expected_audience))
    worker = WorkerProcess(settings, workdir / "chaos-worker", name="chaos-worker").start()
    try:
        await produce_raw(settings, encoded([account_record(sc)]))
        publisher = threading.Thread(target=lambda: asyncio.run(produce_raw(settings, encoded(records))), daemon=True)
        publisher.start()
        say(f"publishing {len(records)} events of {recipients} recipients; {len(sc.expected_audience)} eligible")
        async with Watch(settings) as watch:
            for i in range(ingest_kills):
                target = len(records) * (i + 1) // (ingest_kills + 1)
                while await watch.processed() < target:
                    await asyncio.sleep(0.2)
                say(f"kill -9 during ingestion ({await watch.processed()}/{len(records)} processed)")
                restart(worker, result)
                result.kills_during_ingestion += 1
            publisher.join()
            await produce_raw(settings, encoded([("campaign.launched", sc.launch_record())]))
            written_at_kill = 0
            for _ in range(fanout_kills):
                deadline = time.monotonic() + timeout
                polls = 0
                while time.monotonic() < deadline:
                    # the fan-out of a restarted worker takes a second or two: poll the end offsets
                    # tightly, the (slower) reports topic now and then
                    if await watch.commands_written() > written_at_kill:
                        break
                    polls += 1
                    if polls % 20 == 0 and await final_report_async(settings, sc.campaign_id) is not None:
                        break
                    await asyncio.sleep(0.05)
                if await final_report_async(settings, sc.campaign_id) is not None:
                    say("the fan-out finished before the next kill")
                    break
                written_at_kill = await watch.commands_written()
                say(f"kill -9 during the fan-out ({written_at_kill} command records written, committed or not)")
                restart(worker, result)
                result.kills_during_fanout += 1
        deadline = time.monotonic() + timeout
        while await final_report_async(settings, sc.campaign_id) is None:
            if time.monotonic() > deadline:
                result.problems.append(f"no final report within {timeout:.0f} s")
                break
            if not worker.alive():
                result.problems.append("the worker died:\n" + worker.log_text()[-3000:])
                break
            await asyncio.sleep(1.0)
    finally:
        worker.stop()
    v = await asyncio.to_thread(verify, settings, sc)
    result.commands_verified = v.commands
    result.duplicate_command_ids = len(v.duplicates)
    result.missing = len(v.missing)
    result.unexpected = len(v.unexpected)
    result.problems += v.problems
    if v.missing or v.unexpected:  # which roles: the first thing to look at
        roles = Counter(sc.roles.get(c, "unknown") for c in (*v.missing, *v.unexpected))
        result.problems.append(f"roles of the missing and unexpected recipients: {dict(roles)}")
    result.seconds = round(time.monotonic() - began, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=60_000)
    parser.add_argument("--ingest-kills", type=int, default=3)
    parser.add_argument("--fanout-kills", type=int, default=6)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=100, help="commands per fan-out transaction")
    args = parser.parse_args(argv)
    from tests.conftest import fresh_settings

    settings = fresh_settings(args.partitions, BOOSTER_FANOUT_CHUNK=str(args.chunk))
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(
            chaos(
                settings,
                Path(tmp),
                recipients=args.recipients,
                ingest_kills=args.ingest_kills,
                fanout_kills=args.fanout_kills,
            )
        )
    print(json.dumps({**asdict(result), "kills": result.kills}, indent=2))
    return 0 if not result.problems else 1


if __name__ == "__main__":
    sys.exit(main())
