"""Test helpers: the CLI as a subprocess, worker processes, reading topics, polling with deadlines."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from booster.config import Settings
from booster.ops.clients import read_topic
from booster.schemas import codec
from booster.testing.workers import worker_env

T = TypeVar("T")


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    return worker_env(settings, **extra)


def booster(
    settings: Settings, *args: str, input: str | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "booster", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env_for(settings, **env),
    )


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.5) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def read_all(settings: Settings, topic: str, idle: float = 1.5) -> list[tuple[bytes | None, dict[str, Any], int]]:
    """Every committed record of a contract topic: (key, decoded value, record timestamp)."""

    async def go() -> list[tuple[bytes | None, dict[str, Any], int]]:
        out = []
        async for msg in read_topic(settings, topic, from_beginning=True, idle_timeout=idle):
            out.append((msg.key, codec().decode(topic, msg.value), msg.timestamp))
        return out

    return asyncio.run(go())


def reports_by_campaign(settings: Settings) -> dict[str, list[tuple[dict[str, Any], int]]]:
    out: dict[str, list[tuple[dict[str, Any], int]]] = {}
    for _key, value, ts in read_all(settings, "booster.reports", idle=1.0):
        out.setdefault(value["campaign_id"], []).append((value, ts))
    return out
