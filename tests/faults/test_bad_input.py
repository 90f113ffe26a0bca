"""G4: malformed records on every input topic never stop a partition and are never silently dropped."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import struct
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from fastavro import parse_schema, schemaless_writer

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.schemas import CATALOG, codec, spec_for
from booster.schemas.catalog import INPUT_TOPICS
from booster.schemas.codec import strip_logical_types
from booster.testing.scenario import HOUR_MS, build
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.harness import account_record, fired, scenario_records
from tests.helpers import booster, read_all, wait_for
from tests.samples import SAMPLES

Raw = tuple[str, bytes | None, bytes | None]  # topic, key, value


def _key_of(topic: str, record: dict[str, Any]) -> bytes:
    return str(record[spec_for(topic).key_field or "contact_id"]).encode()


def _encode_with(schema: dict[str, Any], value: dict[str, Any], schema_id: int) -> bytes:
    import io

    out = io.BytesIO()
    out.write(b"\x00" + struct.pack(">I", schema_id))
    schemaless_writer(out, parse_schema(schema), value)
    return out.getvalue()


def bad_records(topic: str, rng: random.Random) -> list[Raw]:
    """One record of every kind of G4's list for a topic."""
    sample = SAMPLES[topic]
    key = _key_of(topic, sample)
    good = codec().encode(topic, sample)
    spec = CATALOG[topic]
    schema = strip_logical_types(codec().raw_schemas[topic])
    out: list[Raw] = [
        (topic, key, bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 40)))),  # not Avro at all
        (topic, key, b""),
        (topic, key, b"\x00" + struct.pack(">I", 700 + rng.randrange(100)) + good[5:]),  # unknown schema id
        (topic, key, codec().encode("booster.reports", SAMPLES["booster.reports"])),  # another topic's schema
        (topic, key, good[: rng.randrange(6, len(good) - 1)]),  # truncated Avro
        (topic, b"", good),  # empty key
    ]
    if not spec.compacted:  # a compacted topic's broker refuses a record without a key itself
        out.append((topic, None, good))
    # a required field missing: written by a producer with an older, shorter schema
    shorter = copy.deepcopy(schema)
    shorter["fields"] = shorter["fields"][:-1]
    out.append(
        (
            topic,
            key,
            _encode_with(
                shorter, {k: v for k, v in sample.items() if k != schema["fields"][-1]["name"]}, spec.schema_id
            ),
        )
    )
    # an enum symbol this schema does not have, written by a producer with a newer schema
    enum_fields = [f["name"] for f in schema["fields"] if _is_enum(f["type"])]
    if enum_fields:
        newer = copy.deepcopy(schema)
        _add_symbol(newer, "CARRIER_PIGEON")
        value = dict(sample)
        field = enum_fields[0]
        value[field] = ["CARRIER_PIGEON"] if isinstance(sample[field], list) else "CARRIER_PIGEON"
        out.append((topic, key, _encode_with(newer, value, spec.schema_id)))
    else:
        out.append((topic, key, good + b"\x02\x00"))  # trailing bytes
    # absurd timestamps: year 9999 and negative
    ts_field = next(f["name"] for f in codec().raw_schemas[topic]["fields"] if "_at" in f["name"])
    out.append((topic, key, codec().encode(topic, {**sample, ts_field: 253402300800000})))
    out.append((topic, key, codec().encode(topic, {**sample, ts_field: -rng.randrange(1, 10**9)})))
    return out


def _is_enum(t: Any) -> bool:
    if isinstance(t, dict):
        return t.get("type") == "enum" or (t.get("type") == "array" and _is_enum(t["items"]))
    if isinstance(t, list):
        return any(_is_enum(x) for x in t)
    return False


def _add_symbol(node: Any, symbol: str) -> None:
    if isinstance(node, dict):
        if node.get("type") == "enum" and symbol not in node["symbols"]:
            node["symbols"].append(symbol)
        for v in node.values():
            _add_symbol(v, symbol)
    elif isinstance(node, list):
        for v in node:
            _add_symbol(v, symbol)


async def produce_ordered(settings: Settings, records: list[Raw]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(settings.topic(t), value=v, key=k) for t, k, v in records]
        await producer.flush()
        for f in futures:
            await f
    finally:
        await producer.stop()


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, number = line.rpartition(" ")
            values[name] = float(number)
    return values


def test_bad_records_go_to_the_dead_letter_topic_and_the_worker_goes_on(kafka: LocalKafka, tmp_path: Path) -> None:
    settings = fresh_settings()
    rng = random.Random(4)
    sc = build("g4", 300, launched_at=int(__import__("time").time() * 1000) - 2 * HOUR_MS + 20_000)
    good: list[Raw] = [(t, _key_of(t, r), codec().encode(t, r)) for t, r in [account_record(sc), *scenario_records(sc)]]
    bad: list[Raw] = []
    while len(bad) < 1000:
        for topic in INPUT_TOPICS:
            bad += bad_records(topic, rng)
    assert {t for t, _, _ in bad} == set(INPUT_TOPICS)
    mixed = good + bad
    rng.shuffle(mixed)
    asyncio.run(__import__("booster.ops.admin", fromlist=["create"]).create(settings))
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        asyncio.run(produce_ordered(settings, mixed))
        wait_for(
            "the dead letters", lambda: len(read_all(settings, "booster.dead-letter", idle=1.0)) >= len(bad), 120, 1.0
        )
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 120, 1.0)
        assert worker.alive()
        assert v.ok, v.problems  # every good record counted: the audience and the report are exact

        letters = read_all(settings, "booster.dead-letter", idle=1.0)
        got = Counter((d["source_topic"], d["key"], d["value"]) for _, d, _ in letters)
        assert got == Counter(bad), "dead letters differ from the bad records"
        assert all(d["error"] and d["kind"] for _, d, _ in letters)
        kinds = Counter(d["kind"] for _, d, _ in letters)
        assert {"not_wire_format", "unknown_schema", "wrong_schema", "corrupt", "bad_timestamp", "bad_key"} <= set(
            kinds
        )
        # each dead letter points at its original record
        originals: dict[tuple[str, int, int], bytes | None] = {}
        for topic in INPUT_TOPICS:
            for msg in _raw_topic(settings, topic):
                originals[(topic, msg.partition, msg.offset)] = msg.value
        assert all(originals[(d["source_topic"], d["partition"], d["offset"])] == d["value"] for _, d, _ in letters)

        metrics = scrape(worker.port)
        dead = sum(v for k, v in metrics.items() if k.startswith("booster_dead_letters_total{"))
        assert dead == len(bad)
        good_per_topic = Counter(t for t, _, _ in good)
        for topic, n in good_per_topic.items():
            assert metrics[f'booster_events_total{{topic="{topic}"}}'] == n, topic
    finally:
        worker.stop()

    # the operator's view and a replay of chosen dead letters
    listed = booster(settings, "dead-letter", "list", "--json")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == len(bad)
    summary = booster(settings, "dead-letter", "list")
    assert json.loads(summary.stderr.splitlines()[-1])["total"] == len(bad)
    chosen = [b for b in bad if b[0] == "contact.deleted"]
    replayed = booster(settings, "dead-letter", "replay", "--source-topic", "contact.deleted")
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {len(chosen)} dead letter(s)" in replayed.stderr
    after = [(m.key, m.value) for m in _raw_topic(settings, "contact.deleted")]
    assert Counter(after[-len(chosen) :]) == Counter((k, v) for _, k, v in chosen)
    refused = booster(settings, "dead-letter", "replay")
    assert refused.returncode == 1 and "choose what to replay" in refused.stderr


def _raw_topic(settings: Settings, topic: str) -> list[Any]:
    from booster.ops.clients import read_topic

    async def go() -> list[Any]:
        out = []
        async for msg in read_topic(settings, topic, from_beginning=True, idle_timeout=1.0):
            out.append(msg)
        return sorted(out, key=lambda m: (m.timestamp, m.partition, m.offset))

    return asyncio.run(go())
