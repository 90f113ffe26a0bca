"""Shared fixtures: the real local broker for the session, fresh topics per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.ops import admin


@pytest.fixture(scope="session")
def kafka() -> Iterator[LocalKafka]:
    """The project's local Kafka; started here unless already running (then left running)."""
    broker = LocalKafka(Settings.from_env())
    started = broker.start(say=print)
    yield broker
    if started:
        broker.stop(say=print)


def fresh_settings(partitions: int = 4, **env: str) -> Settings:
    """Settings with a topic prefix no other test uses, so tests never see each other's records."""
    values = {
        **os.environ,
        "BOOSTER_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}.",
        "BOOSTER_PARTITIONS": str(partitions),
        "BOOSTER_ALLOWED_LATENESS_SECONDS": "2",
        "BOOSTER_TICK_INTERVAL_SECONDS": "0.5",
        **env,
    }
    return Settings.from_env(values)


@pytest.fixture
def settings(kafka: LocalKafka) -> Settings:
    s = fresh_settings()
    asyncio.run(admin.create(s))
    return s
