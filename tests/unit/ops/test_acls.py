"""The least-privilege ACLs, derived from the contract's topic roles."""

from __future__ import annotations

import pytest

from booster.config import Settings
from booster.errors import BrokerError
from booster.ops import acls
from booster.ops.acls import Operation, Pattern, Resource
from booster.schemas.catalog import CATALOG, INPUT_TOPICS

SETTINGS = Settings.from_env({"BOOSTER_TOPIC_PREFIX": "prod.", "BOOSTER_APP_ID": "booster"})


def allowed(entries: list[acls.Acl], resource: Resource, name: str) -> set[Operation]:
    return {a.operation for a in entries if a.resource is resource and a.name == name}


def test_the_worker_reads_inputs_writes_outputs_and_owns_its_group_changelogs_and_fan_out() -> None:
    worker = acls.worker_acls(SETTINGS)
    assert {a.principal for a in worker} == {acls.WORKER}
    for name in INPUT_TOPICS:
        assert Operation.READ in allowed(worker, Resource.TOPIC, f"prod.{name}")
        assert Operation.WRITE not in allowed(worker, Resource.TOPIC, f"prod.{name}")
    outputs = {s.name for s in CATALOG.values() if s.role != "input"}
    for name in outputs:
        assert Operation.WRITE in allowed(worker, Resource.TOPIC, f"prod.{name}")
    assert allowed(worker, Resource.GROUP, "prod.booster") == {Operation.READ, Operation.DESCRIBE}
    fanout = [a for a in worker if a.resource is Resource.TRANSACTIONAL_ID]
    assert {(a.name, a.pattern) for a in fanout} == {
        ("prod.booster-fanout-", Pattern.PREFIXED),
        ("prod.booster-changelog-", Pattern.PREFIXED),
    }
    changelogs = [a for a in worker if a.pattern is Pattern.PREFIXED and a.resource is Resource.TOPIC]
    assert {a.name for a in changelogs} == {"prod.booster-"} and Operation.CREATE in {a.operation for a in changelogs}
    # nothing on every topic, nothing on the cluster but idempotent writes
    assert not [a for a in worker if a.name in ("*", "prod.")]
    assert allowed(worker, Resource.CLUSTER, acls.CLUSTER_NAME) == {Operation.IDEMPOTENT_WRITE}


def test_a_producer_writes_only_the_input_topics_and_an_operator_writes_nothing() -> None:
    producer = acls.producer_acls(SETTINGS, "User:billing")
    topics = {a.name for a in producer if a.resource is Resource.TOPIC}
    assert topics == {f"prod.{name}" for name in INPUT_TOPICS}
    assert {a.operation for a in producer if a.resource is Resource.TOPIC} == {Operation.WRITE, Operation.DESCRIBE}
    operator = acls.operator_acls(SETTINGS)
    assert Operation.WRITE not in {a.operation for a in operator}
    assert allowed(operator, Resource.TOPIC, "prod.booster.reports") >= {Operation.READ}


def test_a_principal_must_be_type_and_name() -> None:
    with pytest.raises(BrokerError, match="TYPE:NAME"):
        acls.worker_acls(SETTINGS, "booster-worker")
    line = acls.producer_acls(SETTINGS)[0].describe()
    assert line.startswith("User:booster-upstream") and "topic prod." in line
