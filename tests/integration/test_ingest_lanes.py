"""Both ways facts reach the ingest agent give the same booster: the batch lane (the default) and
Faust's per-event delivery (`BOOSTER_INGEST_LANE=events`, kept for comparison), each with the exact
audience and report."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from booster.broker.local import LocalKafka
from booster.ops import admin
from booster.testing.scenario import build, launched_for_deadline
from tests.conftest import fresh_settings
from tests.faults.harness import fire_with_a_worker


@pytest.mark.parametrize("lane", ["events", "batch"])
def test_either_ingest_lane_fires_the_exact_audience(kafka: LocalKafka, tmp_path: Path, lane: str) -> None:
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    due = launched_for_deadline(int(time.time() * 1000) - 60_000)  # already due: it fires once caught up
    sc = build(f"lane-{lane}", 400, launched_at=due)
    v = fire_with_a_worker(settings, sc, tmp_path / "w", BOOSTER_INGEST_LANE=lane)
    assert v.ok, v.problems
    assert v.commands == len(sc.expected_audience) > 0
