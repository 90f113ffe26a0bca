"""Test helpers: the CLI as a subprocess, worker processes, reading topics, polling with deadlines."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from booster.clients import read_topic
from booster.config import Settings
from booster.schemas import codec

T = TypeVar("T")


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "BOOSTER_BROKER": settings.broker,
            "BOOSTER_TOPIC_PREFIX": settings.topic_prefix,
            "BOOSTER_PARTITIONS": str(settings.partitions),
            "BOOSTER_ALLOWED_LATENESS_SECONDS": str(settings.allowed_lateness_ms / 1000),
            "BOOSTER_TICK_INTERVAL_SECONDS": str(settings.tick_interval),
            "BOOSTER_FANOUT_CHUNK": str(settings.fanout_chunk),
        }
    )
    env.update(extra)
    return env


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class WorkerProcess:
    """A real `booster worker` process."""

    def __init__(self, settings: Settings, data_dir: Path, name: str = "worker", **env: str) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{name}.log"
        self.port = free_port()
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_ready: bool = True) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "booster", "worker", "--web-port", str(self.port), "--data-dir", str(self.data_dir)],
            env=env_for(self.settings, **self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if wait_ready:
            self.wait_ready()
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[self._log_offset :] if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 90.0) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}")
            return "[^Worker]: Ready" in self.log_text()

        wait_for("the worker to be ready", ready, timeout)

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


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
