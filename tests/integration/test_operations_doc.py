"""docs/operations.md: every command of its `sh` blocks runs as written against a real worker."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from booster.broker.local import LocalKafka
from booster.ops import admin
from booster.testing.demo import publish_scenario
from booster.testing.scenario import HOUR_MS, build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.helpers import env_for, reports_by_campaign, wait_for

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def doc_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_guide_has_commands() -> None:
    commands = doc_commands()
    assert len(commands) >= 10
    assert any("kcat" in c for c in commands)
    assert any("ConsumerGroupCommand" in c for c in commands)


def test_every_command_of_the_guide_runs(kafka: LocalKafka, tmp_path: Path) -> None:
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    tag = uuid.uuid4().hex[:6]
    sc = build(f"doc-{tag}", 60, launched_at=int(time.time() * 1000) - HOUR_MS)
    sent = build(f"doc-sent-{tag}", 40, launched_at=launched_for_deadline(int(time.time() * 1000) - 60_000))
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        asyncio.run(publish_scenario(settings, sc))
        asyncio.run(publish_scenario(settings, sent))
        # one dead letter, so that `dead-letter replay --dry-run` has something to choose
        from booster.ops.clients import produce_raw

        asyncio.run(produce_raw(settings, [("contact.deleted", b"k", b"not avro")]))
        wait_for("the booster to be scheduled", lambda: reports_by_campaign(settings).get(sc.campaign_id), 60)
        wait_for("the other to be sent", lambda: _sent(reports_by_campaign(settings).get(sent.campaign_id, [])), 90)
        bindir = str(Path(sys.executable).parent)
        env = env_for(
            settings,
            KAFKA_LIBS=str(kafka.libs),
            WORKER=f"http://127.0.0.1:{worker.port}",
            CAMPAIGN=sc.campaign_id,
            CONTACT=sorted(sc.expected_audience)[0],
            SENT_CAMPAIGN=sent.campaign_id,
            SENT_CONTACT=sorted(sent.expected_audience)[0],
            PATH=f"{bindir}:{os.environ.get('PATH', '')}",
        )
        outputs = {}
        for command in doc_commands():
            result = subprocess.run(
                ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
            )
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
            outputs[command] = result.stdout
    finally:
        worker.stop()
    by_tool = {
        c.split()[0] + (" " + c.split()[1] if c.startswith("booster") else ""): out for c, out in outputs.items()
    }
    assert "Kafka" in by_tool["booster kafka"]
    assert sc.campaign_id in by_tool["booster boosters"]
    assert (
        "would reach" in outputs[next(c for c in outputs if c.startswith("booster audience") and "--contact" not in c)]
    )
    assert "eligible" in outputs[next(c for c in outputs if "--contact" in c)]
    assert "INCLUDED" in outputs[next(c for c in outputs if "--contact" in c and "SENT_CAMPAIGN" in c)]
    assert len((tmp_path / "audience.csv").read_text().splitlines()) == len(sent.roles) + 1
    kcat_out = outputs[next(c for c in outputs if c.startswith("kcat"))]
    assert f"campaign {sc.campaign_id}" in kcat_out
    consumer_groups = outputs[next(c for c in outputs if "ConsumerGroupCommand" in c)]
    assert "message.sent" in consumer_groups and "LAG" in consumer_groups
    assert "booster_events_total" in outputs[next(c for c in outputs if c.startswith("curl"))]


def _sent(reports: list[tuple[dict[str, object], int]]) -> bool:
    return any(r["status"] == "SENT" for r, _ in reports)


@pytest.mark.parametrize("name", ["kcat", "curl", "java"])
def test_the_tools_the_guide_uses_are_installed(name: str) -> None:
    assert subprocess.run(["which", name], capture_output=True).returncode == 0, f"{name} is not installed"
