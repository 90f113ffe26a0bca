"""Upstream services with a real schema registry (Apicurio Registry, its Confluent-compatible API) and
their own serializers: confluent-kafka's AvroSerializer with each team's own copy of the contract (one
with a field of its own, one an older version), next to `booster publish`; downstream consumers with
AvroDeserializer; the registry's compatibility rules; a schema Booster cannot read; the registry away.
G9 (any serializer, a registry outage is infrastructure: G7)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from booster.broker.local import LocalKafka
from booster.broker.registry import LocalRegistry
from booster.config import Settings
from booster.ops import admin
from booster.ops.clients import produce_raw
from booster.processors.boosters import booster_id_of
from booster.schemas import codec
from booster.schemas.catalog import BY_ID, CATALOG
from booster.schemas.registry import (
    INPUT_COMPATIBILITY,
    OUTPUT_COMPATIBILITY,
    RegistryClient,
    contract_subjects,
    use_registry,
)
from booster.testing.scenario import Scenario, build, launched_for_deadline
from booster.testing.workers import WorkerProcess, free_ports, worker_env
from tests.conftest import fresh_settings
from tests.faults.harness import final_report, fired
from tests.helpers import Record, account_record, booster, encoded, key_of, read_all, wait_for

# the serializers' own copies: delivery reports and opens with a field of their own, in another order;
# clicks in the contract's first version (before `bot`)
WITH_LOCALE = ("message.delivered", "message.opened")
OLDER = {"message.clicked": 7}  # the catalog's id of that older version


@pytest.fixture(scope="module")
def registry(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    port = free_ports(2)  # its HTTP port and its management port
    local = LocalRegistry(
        Settings.from_env({**os.environ, "BOOSTER_REGISTRY_PORT": str(port)}), home=tmp_path_factory.mktemp("registry")
    )
    local.start(say=print)
    yield local
    local.stop(say=print)


@pytest.fixture(autouse=True)
def contract_ids_afterwards() -> Iterator[None]:
    """This test process's codec goes back to the contract's own ids for the files after this one."""
    yield
    codec().use_catalog()


def registry_settings(registry: LocalRegistry) -> Settings:
    settings = fresh_settings(BOOSTER_SCHEMA_REGISTRY_URL=registry.url)
    asyncio.run(admin.create(settings))
    created = booster(settings, "topics", "create")
    assert created.returncode == 0, created.stderr
    assert f"{len(contract_subjects(settings))} contract schema(s) registered" in created.stderr, created.stderr
    use_registry(settings, every_topic=True)  # this process reads what the worker writes, registry away or not
    return settings


def their_copy(topic: str) -> dict[str, Any]:
    """An upstream team's own copy of the contract's schema for `topic`."""
    if topic in OLDER:
        older: dict[str, Any] = json.loads(BY_ID[OLDER[topic]].schema_path.read_text())
        return older
    schema: dict[str, Any] = json.loads(CATALOG[topic].schema_path.read_text())
    if topic in WITH_LOCALE:
        fields = [*reversed(schema["fields"]), {"name": "locale", "type": ["null", "string"], "default": None}]
        schema = {**schema, "fields": fields}
    return schema


def serializer(registry: LocalRegistry, schema: dict[str, Any], **conf: Any) -> AvroSerializer:
    client = SchemaRegistryClient({"url": registry.url})
    made: AvroSerializer = AvroSerializer(client, json.dumps(schema), conf={"auto.register.schemas": True, **conf})
    return made


def serialized(settings: Settings, registry: LocalRegistry, records: list[Record]) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of each record, written by the upstream team's serializer of its topic."""
    serializers: dict[str, AvroSerializer] = {}
    out = []
    for topic, value in records:
        schema = their_copy(topic)
        if topic not in serializers:
            serializers[topic] = serializer(registry, schema)
        names = {f["name"] for f in schema["fields"]}
        theirs = {k: v for k, v in value.items() if k in names}
        if "locale" in names:
            theirs["locale"] = "fr-FR"
        data = serializers[topic](theirs, SerializationContext(settings.topic(topic), MessageField.VALUE))
        assert data is not None
        out.append((topic, key_of(topic, value), data))
    return out


def produce(settings: Settings, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": settings.broker, "partitioner": "murmur2_random"})
    for topic, key, value in records:
        producer.produce(settings.topic(topic), value=value, key=key)
    assert producer.flush(30) == 0


def publish(settings: Settings, records: list[Record]) -> None:
    """`booster publish`, one topic at a time, in the order given."""
    for topic in dict.fromkeys(t for t, _ in records):
        lines = "\n".join(json.dumps(v) for t, v in records if t == topic)
        done = booster(settings, "publish", topic, input=lines + "\n")
        assert done.returncode == 0, done.stderr


def scenario(tag: str, recipients: int) -> Scenario:
    return build(
        f"{tag}-{uuid.uuid4().hex[:6]}", recipients, launched_at=launched_for_deadline(int(time.time() * 1000))
    )


def facts_of(sc: Scenario) -> tuple[list[Record], list[Record]]:
    """The scenario's facts for the upstream serializers, and for `booster publish`."""
    facts = [(topic, r) for topic, records in sc.records.items() for r in records]
    upstream = [(t, r) for t, r in facts if t in WITH_LOCALE or t in OLDER]
    return upstream, [account_record(sc)] + [(t, r) for t, r in facts if (t, r) not in upstream]


def downstream(settings: Settings, registry: LocalRegistry, topic: str, count: int) -> list[dict[str, Any]]:
    """`count` records of an output topic, read by a downstream service's AvroDeserializer."""
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry.url}))
    consumer = Consumer(
        {
            "bootstrap.servers": settings.broker,
            "group.id": f"downstream-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([settings.topic(topic)])
    out: list[dict[str, Any]] = []
    give_up_at = time.monotonic() + 60
    try:
        while len(out) < count and time.monotonic() < give_up_at:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            out.append(deserializer(msg.value(), SerializationContext(settings.topic(topic), MessageField.VALUE)))
    finally:
        consumer.close()
    return out


def test_upstream_serializers_feed_the_worker_and_downstream_deserializers_read_what_it_writes(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    settings = registry_settings(registry)
    sc = scenario("reg", 300)
    upstream, published = facts_of(sc)
    # a click whose writer schema Booster cannot read (contact_id a number), under a subject of its own
    # so that the registry's rules do not refuse it: the record is dead-lettered with the reason
    unreadable = their_copy("message.sent")
    unreadable["fields"] = [f if f["name"] != "contact_id" else {**f, "type": "long"} for f in unreadable["fields"]]
    stranger = serializer(registry, unreadable, **{"subject.name.strategy": lambda _ctx, _name: "strangers-value"})
    bad = stranger(
        {**sc.records["message.sent"][0], "contact_id": 42},
        SerializationContext(settings.topic("message.sent"), MessageField.VALUE),
    )
    assert bad is not None
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        publish(settings, published)
        produce(settings, [*serialized(settings, registry, upstream), ("message.sent", b"42", bad)])
        publish(settings, [("campaign.launched", sc.launch_record())])
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 90, 0.5)
        letters = wait_for("the dead letter", lambda: read_all(settings, "booster.dead-letter"), 30, 0.5)
    finally:
        worker.stop()
    assert v.ok, v.problems
    assert [(d["kind"], d["source_topic"]) for _, d, _ in letters] == [("unresolvable_schema", "message.sent")]
    assert "cannot be read as message.sent" in letters[0][1]["error"]
    commands = downstream(settings, registry, "booster.commands", len(sc.expected_audience))
    assert {c["contact_id"] for c in commands} == sc.expected_audience
    assert {c["booster_id"] for c in commands} == {booster_id_of(sc.campaign_id)}
    reports = downstream(settings, registry, "booster.reports", 1)
    assert reports and reports[0]["campaign_id"] == sc.campaign_id
    tailed = booster(settings, "tail", "booster.reports", "--from-beginning", "--until-end")
    assert tailed.returncode == 0, tailed.stderr
    assert [json.loads(line)["value"]["status"] for line in tailed.stdout.splitlines()][-1] == "SENT"


def test_the_registry_refuses_an_input_schema_booster_could_not_read(registry: LocalRegistry) -> None:
    settings = registry_settings(registry)
    ours = RegistryClient(settings.registry)
    subject = f"{settings.topic('message.sent')}-value"
    assert ours.compatibility(subject) == INPUT_COMPATIBILITY
    assert ours.compatibility(f"{settings.topic('booster.commands')}-value") == OUTPUT_COMPATIBILITY
    client = SchemaRegistryClient({"url": registry.url})
    without_contact = their_copy("message.sent")
    without_contact["fields"] = [f for f in without_contact["fields"] if f["name"] != "contact_id"]
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(json.dumps(without_contact), "AVRO"))
    assert refused.value.http_status_code == 409
    with_locale = their_copy("message.delivered")  # a field of their own, with a default: taken
    assert client.register_schema(
        f"{settings.topic('message.delivered')}-value", Schema(json.dumps(with_locale), "AVRO")
    )


@pytest.mark.parametrize("away", ["stopped", "frozen"])
def test_a_registry_away_during_ingestion_loses_nothing_and_dead_letters_nothing(
    registry: LocalRegistry, tmp_path: Path, away: str
) -> None:
    """The registry stops (refusing connections) or freezes (answering nothing) while the worker meets
    writer ids it has not seen: it waits for the registry, as for a broker away, and the booster's
    audience is exact once the registry is back."""
    settings = registry_settings(registry)
    sc = scenario("away", 200)
    upstream, published = facts_of(sc)
    new_ids = serialized(settings, registry, upstream)  # registered now, before the worker has seen them
    launch = encoded([("campaign.launched", sc.launch_record())])  # the registry's id of our schema
    pid = registry.pid()
    assert pid is not None
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        publish(settings, published)
        if away == "stopped":
            registry.stop(say=print)
        else:
            os.killpg(pid, signal.SIGSTOP)
        try:
            asyncio.run(produce_raw(settings, [*new_ids, *launch]))
            wait_for(
                "the worker to wait for the registry",
                lambda: "asking the schema registry for schema id" in worker.log_text(),
                60,
                0.5,
            )
            assert final_report(settings, sc.campaign_id) is None  # nothing decided without those facts
        finally:
            if away == "stopped":
                registry.start(say=print)  # its database kept what was registered
            else:
                os.killpg(pid, signal.SIGCONT)
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 120, 0.5)
    finally:
        worker.stop()
    assert v.ok, v.problems
    assert read_all(settings, "booster.dead-letter") == []


def test_the_upstream_example_in_the_docs_writes_records_booster_reads(registry: LocalRegistry) -> None:
    settings = registry_settings(registry)
    example = Path(__file__).parents[2] / "docs" / "examples" / "upstream_registry.py"
    contacts = [f"k{i}" for i in range(5)]
    done = subprocess.run(
        [sys.executable, str(example), "c-example", *contacts],
        capture_output=True,
        text=True,
        timeout=120,
        env=worker_env(settings),
    )
    assert done.returncode == 0, done.stderr
    got = read_all(settings, "message.delivered")  # by the registry's id of the example's own schema
    assert sorted((v["contact_id"], v["status"]) for _, v, _ in got) == [(c, "DELIVERED") for c in contacts]
    assert all(key == v["contact_id"].encode() for key, v, _ in got)
