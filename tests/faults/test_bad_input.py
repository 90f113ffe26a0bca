"""G4: malformed records on every input topic never stop a partition and are never silently dropped."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import struct
import time
from collections import Counter
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_writer

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.ops import admin
from booster.ops.clients import produce_raw, read_topic
from booster.schemas import CATALOG, codec
from booster.schemas.catalog import INPUT_TOPICS
from booster.schemas.codec import strip_logical_types
from booster.testing.scenario import build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.faults.harness import fired
from tests.helpers import (
    account_record,
    booster,
    encoded,
    key_of,
    read_all,
    scenario_records,
    scrape_metrics,
    wait_for,
)
from tests.samples import SAMPLES

Raw = tuple[str, bytes | None, bytes | None]  # topic, key, value


def _encode_with(schema: dict[str, Any], value: dict[str, Any], schema_id: int) -> bytes:
    import io

    out = io.BytesIO()
    out.write(b"\x00" + struct.pack(">I", schema_id))
    schemaless_writer(out, parse_schema(schema), value)
    return out.getvalue()


def bad_records(topic: str, rng: random.Random) -> list[Raw]:
    """One record of every kind of G4's list for a topic."""
    sample = SAMPLES[topic]
    key = key_of(topic, sample)
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


def test_bad_records_go_to_the_dead_letter_topic_and_the_worker_goes_on(kafka: LocalKafka, tmp_path: Path) -> None:
    settings = fresh_settings()
    rng = random.Random(4)
    # not about timing: the deadline is already due, and the launch comes after every fact
    sc = build("g4", 300, launched_at=launched_for_deadline(int(time.time() * 1000) - 60_000))
    good: list[Raw] = encoded([account_record(sc), *scenario_records(sc, launch=False)])
    bad: list[Raw] = []
    while len(bad) < 1000:
        for topic in INPUT_TOPICS:
            bad += bad_records(topic, rng)
    assert {t for t, _, _ in bad} == set(INPUT_TOPICS)
    mixed = good + bad
    rng.shuffle(mixed)
    launch = encoded([("campaign.launched", sc.launch_record())])
    asyncio.run(admin.create(settings))
    worker = WorkerProcess(settings, tmp_path / "w").start()
    try:
        asyncio.run(produce_raw(settings, [*mixed, *launch]))
        wait_for("the dead letters", lambda: len(read_all(settings, "booster.dead-letter")) >= len(bad), 120, 0.5)
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 120, 0.5)
        assert worker.alive()
        assert v.ok, v.problems  # every good record counted: the audience and the report are exact

        letters = read_all(settings, "booster.dead-letter")
        got = Counter((d["source_topic"], d["key"], d["value"]) for _, d, _ in letters)
        assert got == Counter(bad), "dead letters differ from the bad records"
        assert letters and all(d["error"] and d["kind"] for _, d, _ in letters)
        kinds = Counter(d["kind"] for _, d, _ in letters)
        assert {"not_wire_format", "unknown_schema", "wrong_schema", "corrupt", "bad_timestamp", "bad_key"} <= set(
            kinds
        )
        # each dead letter points at its original record
        originals: dict[tuple[str, int, int], bytes | None] = {}
        for topic in INPUT_TOPICS:
            for msg in _raw_topic(settings, topic):
                originals[(topic, msg.partition, msg.offset)] = msg.value
        assert [originals[(d["source_topic"], d["partition"], d["offset"])] for _, d, _ in letters] == [
            d["value"] for _, d, _ in letters
        ]

        metrics = scrape_metrics(worker.port)
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
    """Every record of a topic, in the order it was produced (by timestamp, then where it landed)."""

    async def go() -> list[Any]:
        out = [msg async for msg in read_topic(settings, topic, until_end=True)]
        return sorted(out, key=lambda m: (m.timestamp, m.partition, m.offset))

    return asyncio.run(go())


def test_a_giant_record_is_refused_cut_short_and_its_partition_goes_on(kafka: LocalKafka, tmp_path: Path) -> None:
    """Over BOOSTER_MAX_RECORD_BYTES: `booster publish` refuses the line; a record another producer sent
    goes to the dead-letter topic with the start of its value, and the facts behind it still count."""
    limit = 64 * 1024
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    giant_line = json.dumps({**SAMPLES["message.sent"], "message_id": "m" * (limit + 1)})
    published = booster(
        settings, "publish", "message.sent", input=giant_line + "\n", BOOSTER_MAX_RECORD_BYTES=str(limit)
    )
    assert published.returncode == 1 and "over BOOSTER_MAX_RECORD_BYTES" in published.stderr, published.stderr
    assert read_all(settings, "message.sent") == []

    sc = build("giant", 40, launched_at=launched_for_deadline(int(time.time() * 1000) - 60_000))
    giant = codec().encode("message.sent", {**SAMPLES["message.sent"], "contact_id": "k", "message_id": "m" * 900_000})
    worker = WorkerProcess(settings, tmp_path / "w", BOOSTER_MAX_RECORD_BYTES=str(limit)).start()
    try:
        records = encoded([account_record(sc), *scenario_records(sc, launch=False)])
        asyncio.run(produce_raw(settings, [("message.sent", b"k", giant), *records]))
        asyncio.run(produce_raw(settings, encoded([("campaign.launched", sc.launch_record())])))
        v = wait_for("the booster to fire", lambda: fired(settings, sc), 120, 0.5)
        assert v.ok, v.problems
        letters = wait_for("the dead letter", lambda: read_all(settings, "booster.dead-letter"), 60, 0.5)
        assert worker.alive()
    finally:
        worker.stop()
    [(_, letter, _)] = letters
    assert letter["kind"] == "too_large" and letter["source_topic"] == "message.sent"
    assert letter["value"] == giant[:1024] and str(len(giant) + 1) in letter["error"]
    replay = booster(settings, "dead-letter", "replay", "--kind", "too_large")
    assert replay.returncode == 1 and "cannot be replayed" in replay.stderr, replay.stderr
