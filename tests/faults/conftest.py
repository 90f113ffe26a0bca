"""Fixtures of the fault tests."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from booster.broker.local import LocalKafka
from booster.config import Settings


def free_port_pair() -> int:
    """A port whose next one is free too (the broker's controller listens there). Taken below the
    kernel's ephemeral range (32768 and up on Linux), where client sockets get their ports: a port
    picked there can be handed to an outgoing connection before the broker binds it."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 32_000)
        try:
            for candidate in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
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
