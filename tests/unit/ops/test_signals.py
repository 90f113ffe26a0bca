"""A worker keeps SIGPIPE ignored: one died of it (exit -13) when the broker was killed under it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from booster.testing.workers import free_port

SIGPIPE_BIT = 1 << (signal.SIGPIPE - 1)


def ignored_signals(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("SigIgn:"):
                return int(line.split()[1], 16)
    raise AssertionError("no SigIgn line")


def test_a_worker_ignores_sigpipe_while_the_tools_do_not() -> None:
    env = {**os.environ, "BOOSTER_BROKER": f"127.0.0.1:{free_port()}", "BOOSTER_RETRY_SECONDS": "60"}
    worker = subprocess.Popen([sys.executable, "-m", "booster", "worker"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stderr is not None
        deadline = time.monotonic() + 60
        line = ""
        while "waiting for the broker" not in line:  # past the CLI's set-up, where the handler is set
            assert time.monotonic() < deadline, "the worker never said it waits for the broker"
            line = worker.stderr.readline()
            assert line or worker.poll() is None, f"the worker exited with {worker.returncode}"
        assert ignored_signals(worker.pid) & SIGPIPE_BIT
    finally:
        worker.kill()
        worker.wait()
    # a tool writing to a pipe whose reader is gone ends quietly, by the signal's default action
    tool = subprocess.run(
        f"{sys.executable} -m booster config | head -c 1 > /dev/null", shell=True, capture_output=True, text=True
    )
    assert "BrokenPipeError" not in tool.stderr
