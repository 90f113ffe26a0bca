"""Fixtures of the fault tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.testing.workers import free_ports


@pytest.fixture
def own_broker(kafka: LocalKafka, tmp_path: Path) -> Iterator[LocalKafka]:
    """A second local broker (the shared one's jars, linked, not fetched again)."""
    port = free_ports(2)
    home = tmp_path / "home"
    (home / "kafka").mkdir(parents=True)
    (home / "kafka" / "libs").symlink_to(kafka.libs.parent)
    broker = LocalKafka(
        Settings.from_env(
            {"BOOSTER_HOME": str(home), "BOOSTER_KAFKA_PORT": str(port), "BOOSTER_BROKER": f"127.0.0.1:{port}"}
        )
    )
    broker.start(say=lambda _m: None)
    try:
        yield broker
    finally:
        broker.stop(say=lambda _m: None)
