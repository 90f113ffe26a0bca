"""What the broker-outage tests share besides their broker (the `own_broker` fixture, in conftest.py):
killing it, and waiting for the worker to give up as it must."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.streams.records import EXIT_RETRY_LATER
from booster.testing.workers import WorkerProcess
from tests.faults.chaos import Watch
from tests.helpers import wait_for


def committed(settings: Settings) -> int:
    """Facts of the contact-keyed topics the worker's group has committed (the chaos run's measure)."""

    async def go() -> int:
        async with Watch(settings) as watch:
            return await watch.processed()

    return asyncio.run(go())


def kill(broker: LocalKafka, node: int = 1) -> float:
    pid = broker.pid(node)
    assert pid is not None, f"node {node} is not running"
    os.killpg(pid, signal.SIGKILL)  # at once, in the middle of whatever the worker writes
    return time.monotonic()


def gives_up(worker: WorkerProcess) -> None:
    wait_for("the worker to give up", lambda: not worker.alive(), 60, 0.2)
    assert worker.proc is not None and worker.proc.returncode == EXIT_RETRY_LATER, worker.log_text()[-3000:]
    assert "exiting with 75 without acknowledging it" in worker.log_text()
