"""Every command that talks to Kafka, run as a new user would with no broker there: one line that names
the address and what to do, exit 1, no traceback and no unclosed client (no broker needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from booster.testing.workers import free_port

SENT = '{"campaign_id":"c1","contact_id":"k1","channel":"EMAIL","sent_at":"2026-01-01T00:00:00Z"}\n'
COMMANDS = [
    ("publish", "message.sent"),
    ("tail", "message.sent"),
    ("boosters",),
    ("topics", "create"),
    ("topics", "describe"),
    ("lag",),
    ("dead-letter", "list"),
    ("audience", "c1"),
    ("results", "c1"),
]


def run(args: tuple[str, ...], port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOOSTER_BROKER": f"127.0.0.1:{port}", "BOOSTER_HOME": "/nonexistent/booster-home"}
    return subprocess.run(
        [sys.executable, "-m", "booster", *args],
        input=SENT,
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )


def test_every_kafka_command_says_in_one_line_which_address_it_could_not_reach() -> None:
    port = free_port()  # nothing listens there
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda args: run(args, port), COMMANDS))
    for args, result in zip(COMMANDS, results, strict=True):
        said = result.stderr.strip()
        assert result.returncode == 1, (args, result.returncode, said)
        assert len(said.splitlines()) == 1, (args, said)
        assert f"127.0.0.1:{port}" in said and "booster kafka start" in said and "BOOSTER_BROKER" in said, (args, said)
        assert "Traceback" not in said and "Unclosed" not in said, (args, said)


def test_a_worker_waits_for_an_unreachable_broker_then_exits_75_to_be_started_again_later() -> None:
    """Exit 75, not 1: a broker that is away may come back, and the worker's supervisor should try
    again (exit 1 is for what a restart cannot fix)."""
    port = free_port()
    env = {
        **os.environ,
        "BOOSTER_BROKER": f"127.0.0.1:{port}",
        "BOOSTER_HOME": "/nonexistent/booster-home",
        "BOOSTER_RETRY_SECONDS": "8",
    }
    result = subprocess.run(
        [sys.executable, "-m", "booster", "worker"], capture_output=True, text=True, timeout=90, env=env
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 75, (result.returncode, result.stderr)
    waits = [line for line in lines if "waiting for the broker" in line]
    assert len(waits) >= 2 and all(f"127.0.0.1:{port}" in line for line in waits), lines  # backoff: 1 s, 2 s
    assert "exiting with 75" in lines[-1] and "BOOSTER_RETRY_SECONDS=8" in lines[-1], lines
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BOOSTER_SECURITY_PROTOCOL": "SASL_TLS"}, "BOOSTER_SECURITY_PROTOCOL"),
        ({"BOOSTER_SECURITY_PROTOCOL": "SASL_SSL", "BOOSTER_SASL_USERNAME": "w"}, "BOOSTER_SASL_PASSWORD"),
        ({"BOOSTER_SSL_CA_FILE": "/nonexistent/ca.pem", "BOOSTER_SECURITY_PROTOCOL": "SSL"}, "BOOSTER_SSL_CA_FILE"),
        ({"BOOSTER_WEB_BIND": "0.0.0.0"}, "BOOSTER_WEB_TOKEN"),
    ],
)
def test_a_wrong_security_setting_is_named_before_anything_connects(env: dict[str, str], named: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "booster", "boosters"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "BOOSTER_BROKER": "127.0.0.1:1", **env},
    )
    assert result.returncode == 1
    assert named in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
