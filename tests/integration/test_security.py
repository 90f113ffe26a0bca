"""Against the secured broker (`booster kafka start --secure`: SASL_SSL, SCRAM users, the standard
authorizer): a worker with only its ACLs runs a booster end to end; a producer allowed one topic is
refused another; a wrong password and an untrusted CA fail fast in one line; a principal without the
transactional-id ACL cannot fence the fan-out; the preview beyond loopback needs the bearer token."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import TransactionalIdAuthorizationFailed

from booster.broker.local import LocalKafka
from booster.broker.secure import USERS
from booster.config import Settings
from booster.errors import BrokerError
from booster.ops import acls
from booster.ops.acls import Acl, Operation, Resource
from booster.streams.connect import client_options, connected
from booster.testing.scenario import build, launched_for_deadline
from booster.testing.workers import WorkerProcess, free_port, free_ports
from tests.conftest import fresh_settings
from tests.faults.harness import final_report
from tests.helpers import account_record, booster, publish_records, read_all, scenario_records, wait_for
from tests.samples import SAMPLES

CLICKS_ONLY = "clicks-only"  # may write message.clicked and nothing else
NO_TXN = "no-txn"  # the worker's topic ACLs, without its transactional ids
TOKEN = "a-web-token-of-32-characters-xx"


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory, kafka: LocalKafka) -> Iterator[LocalKafka]:
    """A secured broker of its own (the session's plain one stays for the other tests)."""
    env = {**os.environ, "BOOSTER_KAFKA_PORT": str(free_ports(2))}
    broker = LocalKafka(
        Settings.from_env(env), secure=True, users=(*USERS, CLICKS_ONLY, NO_TXN), home=tmp_path_factory.mktemp("secure")
    )
    broker.start(say=print)
    try:
        yield broker
    finally:
        broker.stop(say=print)


def as_user(broker: LocalKafka, settings: Settings, user: str) -> Settings:
    """The test's settings (topic prefix, partitions), connecting as `user`."""
    env = {"BOOSTER_TOPIC_PREFIX": settings.topic_prefix, "BOOSTER_PARTITIONS": str(settings.partitions)}
    return broker.client_settings(user, **env)


def cli(
    broker: LocalKafka, user: str, *args: str, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    # failing fast: a hang fails the test
    return booster(
        broker.client_settings(user), *args, input=input, timeout=60, **{**broker.secrets.client_env(user), **env}
    )


def test_a_worker_with_only_its_acls_runs_a_booster_and_no_one_else_can_fence_it(
    secure: LocalKafka, tmp_path: Path
) -> None:
    base = fresh_settings()
    prefix = {"BOOSTER_TOPIC_PREFIX": base.topic_prefix}
    made = cli(secure, "admin", "topics", "create", "--acls", **prefix)
    assert made.returncode == 0, made.stderr
    worker_env = {
        **secure.secrets.client_env("booster-worker"),
        "BOOSTER_WEB_BIND": "0.0.0.0",
        "BOOSTER_WEB_TOKEN": TOKEN,
        "BOOSTER_METRICS_AUTH": "token",
    }
    upstream = as_user(secure, base, "booster-upstream")
    operator = as_user(secure, base, "booster-operator")
    worker_settings = as_user(secure, base, "booster-worker")
    tag = uuid.uuid4().hex[:6]
    due = launched_for_deadline(int(time.time() * 1000) - 60_000)
    first = build(f"secure-{tag}", 40, launched_at=due)
    worker = WorkerProcess(worker_settings, tmp_path / "w", **worker_env).start()
    try:
        publish_records(upstream, [account_record(first), *scenario_records(first)])
        report = wait_for("the booster's report", lambda: final_report(operator, first.campaign_id), 90, 0.5)
        assert report["status"] == "SENT" and report["audience"] == len(first.expected_audience)
        commands = [
            v for _, v, _ in read_all(operator, "booster.commands") if v["campaign_id"].startswith(first.campaign_id)
        ]
        assert sorted(c["contact_id"] for c in commands) == sorted(first.expected_audience)

        # another principal with the worker's topic ACLs but not its transactional ids cannot take over
        # (fence) a fan-out: init_transactions is refused, in one line through `connected`
        _grant_topics_only(secure, base)
        intruder = as_user(secure, base, NO_TXN)
        with pytest.raises(BrokerError, match="transactional id"):
            asyncio.run(_start_transactional(intruder, f"{base.group_id}-fanout-0"))
        # and a worker run by it stops before it joins the group, saying which ACL is missing
        refused = cli(
            secure, NO_TXN, "worker", "--web-port", str(free_port()), "--data-dir", str(tmp_path / "intruder"),
            BOOSTER_TOPIC_PREFIX=base.topic_prefix,
        )  # fmt: skip
        said = refused.stderr.strip()
        assert refused.returncode == 1 and len(said.splitlines()) == 1 and "transactional id" in said, said

        # the web pages beyond loopback: refused without the token, served with it
        url = f"http://127.0.0.1:{worker.port}"
        for page in (f"/booster/audience/{first.campaign_id}/", "/metrics"):
            assert _status(url + page) == 401
            assert _status(url + page, TOKEN) == 200
        assert _status(url + "/metrics", "wrong-token-wrong-token") == 401

        # the worker's fan-out was not fenced: a second booster fires with its whole audience
        second = build(f"secure2-{tag}", 30, launched_at=due)
        publish_records(upstream, scenario_records(second))
        report = wait_for("the second booster's report", lambda: final_report(operator, second.campaign_id), 90, 0.5)
        assert report["status"] == "SENT" and report["audience"] == len(second.expected_audience)
    finally:
        worker.stop()
    assert "Traceback" not in worker.log_path.read_text()


def test_a_producer_allowed_one_topic_is_refused_on_another(secure: LocalKafka) -> None:
    base = fresh_settings()
    assert cli(secure, "admin", "topics", "create", BOOSTER_TOPIC_PREFIX=base.topic_prefix).returncode == 0
    grants = [
        Acl(f"User:{CLICKS_ONLY}", Resource.TOPIC, base.topic("message.clicked"), op)
        for op in (Operation.WRITE, Operation.DESCRIBE)
    ]
    asyncio.run(acls.write(as_user(secure, base, "admin"), grants))
    click, sent = json.dumps(SAMPLES["message.clicked"]), json.dumps(SAMPLES["message.sent"])
    prefix = {"BOOSTER_TOPIC_PREFIX": base.topic_prefix}
    allowed = cli(secure, CLICKS_ONLY, "publish", "message.clicked", input=click, **prefix)
    assert allowed.returncode == 0, allowed.stderr
    refused = cli(secure, CLICKS_ONLY, "publish", "message.sent", input=sent, **prefix)
    said = refused.stderr.strip()
    assert refused.returncode == 1 and len(said.splitlines()) == 1, said
    assert f"User:{CLICKS_ONLY}" in said and "docs/operations.md" in said, said
    assert len(read_all(as_user(secure, base, "admin"), "message.clicked")) == 1
    assert read_all(as_user(secure, base, "admin"), "message.sent") == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"BOOSTER_SASL_PASSWORD_FILE": "", "BOOSTER_SASL_PASSWORD": "not-the-password"}, "authentication failed"),
        ({"BOOSTER_SSL_CA_FILE": ""}, "certificate is not trusted"),
        (
            {"BOOSTER_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "BOOSTER_SSL_CA_FILE": ""},
            "BOOSTER_SECURITY_PROTOCOL is the one",
        ),
    ],
)
def test_a_wrong_credential_fails_fast_in_one_line(secure: LocalKafka, change: dict[str, str], expected: str) -> None:
    result = cli(secure, "booster-operator", "boosters", **change)
    said = result.stderr.strip()
    assert result.returncode == 1 and len(said.splitlines()) == 1, said
    assert expected in said and secure.bootstrap in said, said
    assert secure.secrets.password("booster-operator") not in said + result.stdout
    assert "not-the-password" not in said


def test_booster_config_never_prints_a_secret(secure: LocalKafka) -> None:
    password = secure.secrets.password("booster-worker")
    shown = cli(
        secure, "booster-worker", "config", BOOSTER_SASL_PASSWORD_FILE="", BOOSTER_SASL_PASSWORD=password,
        BOOSTER_WEB_TOKEN=TOKEN,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert password not in shown.stdout and TOKEN not in shown.stdout
    assert "BOOSTER_SASL_PASSWORD=(set, hidden)" in shown.stdout


def _grant_topics_only(broker: LocalKafka, base: Settings) -> None:
    wanted = [
        Acl(f"User:{NO_TXN}", a.resource, a.name, a.operation, a.pattern)
        for a in acls.worker_acls(base)
        if a.resource is not Resource.TRANSACTIONAL_ID
    ]
    asyncio.run(acls.write(as_user(broker, base, "admin"), wanted))


async def _start_transactional(settings: Settings, transactional_id: str) -> None:
    producer = AIOKafkaProducer(**client_options(settings), transactional_id=transactional_id, enable_idempotence=True)
    try:
        async with connected(settings, producer):
            pass
    except TransactionalIdAuthorizationFailed:  # pragma: no cover - `connected` turns it into one line
        raise AssertionError("the refusal was not said in one line") from None


def _status(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
