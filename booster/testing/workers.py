"""Worker processes started by the demo, the tests and the benchmark: a real `booster worker` each."""

from __future__ import annotations

import atexit
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from booster.config import Settings
from booster.errors import BoosterError


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (a broker's, its controller's; a cluster's nodes').
    Taken below the kernel's ephemeral range (32768 and up on Linux), where client sockets get their
    ports: a port picked there can be handed to an outgoing connection before the broker binds it
    (seen: a secure broker's controller failed to bind)."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(20_000, 32_000 - count)
        try:
            for candidate in range(port, port + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no {count} consecutive free ports")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a child worker use exactly these settings."""
    env = dict(os.environ)
    env.update(
        {
            "BOOSTER_BROKER": settings.broker,
            "BOOSTER_TOPIC_PREFIX": settings.topic_prefix,
            "BOOSTER_PARTITIONS": str(settings.partitions),
            "BOOSTER_ALLOWED_LATENESS_SECONDS": str(settings.allowed_lateness_ms / 1000),
            "BOOSTER_TICK_INTERVAL_SECONDS": str(settings.tick_interval),
            "BOOSTER_FANOUT_CHUNK": str(settings.fanout_chunk),
            "BOOSTER_SESSION_TIMEOUT_SECONDS": str(settings.session_timeout),
            "BOOSTER_LAUNCH_STALENESS_SECONDS": str(settings.launch_staleness_ms / 1000),
            "BOOSTER_ENGINE_LATENESS_SECONDS": str(settings.engine_lateness_ms / 1000),
            "BOOSTER_OVERDUE_SECONDS": str(settings.overdue_ms / 1000),
            "BOOSTER_RETRY_SECONDS": str(settings.retry_seconds),
            "BOOSTER_REQUEST_TIMEOUT_SECONDS": str(settings.request_timeout),
            "BOOSTER_APP_ID": settings.app_id,
            "BOOSTER_HOME": str(settings.home),
            "BOOSTER_STANDBY_REPLICAS": str(settings.standby_replicas),
            "BOOSTER_REPLICATION_FACTOR": str(settings.replication_factor),
            "BOOSTER_BULK_RESTORE": "on" if settings.bulk_restore else "off",
            "BOOSTER_SCHEMA_REGISTRY_URL": settings.registry.url,
            "BOOSTER_SCHEMA_REGISTRY_USERNAME": settings.registry.username,
            "BOOSTER_SCHEMA_REGISTRY_PASSWORD": settings.registry.password,
            "BOOSTER_SCHEMA_REGISTRY_TOKEN": settings.registry.token,
        }
    )
    for name in ("BOOSTER_SCHEMA_REGISTRY_PASSWORD_FILE", "BOOSTER_SCHEMA_REGISTRY_TOKEN_FILE"):
        env.pop(name, None)  # the secret itself is passed on, above
    env.update(extra)
    return env


def parse_metrics(text: str) -> dict[str, float]:
    """A /metrics page as {series with its labels: value}."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, number = line.rpartition(" ")
            values[series] = float(number)
    return values


_children: set[WorkerProcess] = set()


@atexit.register
def _kill_children() -> None:
    """A test or benchmark that fails half-way must not leave workers consuming behind it."""
    for child in list(_children):
        child.kill()


class WorkerProcess:
    """A `booster worker` child process with its own web port, state directory and log file."""

    READY = "[^Worker]: Ready"

    def __init__(self, settings: Settings, data_dir: Path, name: str = "worker", **env: str) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{name}.log"
        self.port = free_port()
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.started_at = 0.0
        self.ready_at = 0.0

    def start(self, wait_ready: bool = True, timeout: float = 120.0) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        cmd = [sys.executable, "-m", "booster", "worker"]
        cmd += ["--web-port", str(self.port), "--data-dir", str(self.data_dir)]
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            env=worker_env(self.settings, **self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        _children.add(self)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def log_text(self) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from start until Faust says the worker is ready (its service started)."""
        return self._wait("ready", lambda: self.READY in self.log_text(), timeout)

    def wait_recovered(self, timeout: float = 120.0) -> float:
        """Seconds from start until its `/ready` answers 200: every assigned partition's state is
        restored and its agents run."""
        return self._wait("recovered", lambda: self.get("/ready")[0] == 200, timeout)

    def _wait(self, what: str, done: Callable[[], bool], timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise BoosterError(f"worker exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}")
            if done():
                self.ready_at = time.monotonic()
                return self.ready_at - self.started_at
            time.sleep(0.1)
        raise BoosterError(f"worker not {what} within {timeout:.0f} s; see {self.log_path}")

    def get(self, path: str) -> tuple[int, str]:
        """(status, body) of one of its pages; (0, why) when it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def metric(self, name: str) -> float:
        """The sum of a metric's series on its /metrics page."""
        status, text = self.get("/metrics")
        if status != 200:
            raise BoosterError(f"/metrics of {self.log_path.stem} answered {status}: {text[:200]}")
        return sum(value for series, value in parse_metrics(text).items() if series.split("{")[0] == name)

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
            _children.discard(self)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        _children.discard(self)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def peak_rss_bytes(self) -> int:
        """VmHWM of the worker process (peak resident set), while it runs."""
        return self._status_bytes("VmHWM:")

    def rss_bytes(self) -> int:
        """VmRSS of the worker process (resident set now), while it runs."""
        return self._status_bytes("VmRSS:")

    def _status_bytes(self, field: str) -> int:
        if self.proc is None:
            return 0
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        except FileNotFoundError:
            return 0
        return 0
