"""Fixtures of the fault tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from booster.broker.local import LocalKafka
from booster.config import Settings


def free_port_pair() -> int:
    """A port whose next one is free too (the broker's controller listens there)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture
def own_broker(kafka: LocalKafka, tmp_path: Path) -> Iterator[LocalKafka]:
    """A second local broker (the shared one's jars, linked, not fetched again)."""
    port = free_port_pair()
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
