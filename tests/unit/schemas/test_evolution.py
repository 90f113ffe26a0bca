"""Schema evolution, guarded: every version of a topic's schema reads the records of the versions
before it (Avro schema resolution, as the workers decode them), and a schema id never changes its
schema nor is used again (fingerprints of every id's schema, kept in schema_fingerprints.json)."""

from __future__ import annotations

import hashlib
import io
import json
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.utils import generate_many

from booster.schemas.catalog import BY_ID, TopicSpec
from booster.schemas.codec import strip_logical_types, without_attribute

FINGERPRINTS = Path(__file__).with_name("schema_fingerprints.json")
RECORDS = 40  # random records of each older version


def schema_of(spec: TopicSpec) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(spec.schema_path.read_text())
    return loaded


def version_pairs() -> list[tuple[int, int]]:
    by_topic: dict[str, list[TopicSpec]] = {}
    for spec in BY_ID.values():
        by_topic.setdefault(spec.name, []).append(spec)
    pairs = []
    for specs in by_topic.values():
        ordered = sorted(specs, key=lambda s: s.version)
        pairs += [(old.schema_id, new.schema_id) for old, new in combinations(ordered, 2)]
    return sorted(pairs)


@pytest.mark.parametrize(("older", "newer"), version_pairs(), ids=lambda i: str(i))
def test_a_newer_version_reads_every_record_of_an_older_one(older: int, newer: int) -> None:
    old_schema, new_schema = schema_of(BY_ID[older]), schema_of(BY_ID[newer])
    writer = parse_schema(strip_logical_types(old_schema))
    reader = parse_schema(strip_logical_types(new_schema))
    old_fields = {f["name"]: f for f in old_schema["fields"]}
    for written in generate_many(writer, RECORDS):
        out = io.BytesIO()
        schemaless_writer(out, writer, written)
        out.seek(0)
        read: Any = schemaless_reader(out, writer, reader)
        for field in new_schema["fields"]:
            name = field["name"]
            if name not in old_fields:
                assert read[name] == field["default"], (name, "a field added without a default cannot be read")
            elif old_fields[name]["type"] == field["type"]:
                assert read[name] == written[name], name


def test_every_topic_with_several_versions_is_covered() -> None:
    covered = {BY_ID[new].name for _, new in version_pairs()}
    several = {spec.name for spec in BY_ID.values() if spec.version > 1}
    assert covered == several and len(version_pairs()) >= len(several)


def schema_fingerprint(schema: Any) -> str:
    """SHA-256 of the schema as JSON with sorted keys and without its docs: any change a reader or
    writer sees (a type, a name, a default, an enum symbol's place) moves it; formatting and docs do not.
    (Avro's Parsing Canonical Form drops defaults, which resolution reads, so it is not enough.)"""
    text = json.dumps(without_attribute(schema, "doc"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def current_fingerprints() -> dict[str, str]:
    return {str(schema_id): schema_fingerprint(schema_of(spec)) for schema_id, spec in sorted(BY_ID.items())}


def test_a_schema_id_keeps_its_schema_for_ever_and_is_never_used_again() -> None:
    kept: dict[str, str] = json.loads(FINGERPRINTS.read_text())
    now = current_fingerprints()
    changed = sorted(int(i) for i in kept if i in now and now[i] != kept[i])
    gone = sorted(int(i) for i in kept if i not in now)
    assert not changed, f"schema ids {changed} changed their schema: add a new version with a new id instead"
    assert not gone, f"schema ids {gone} were removed: old records carry them, and an id is never reused"
    new = sorted(int(i) for i in now if i not in kept)
    assert not new, (
        f"new schema ids {new}: add their fingerprints to {FINGERPRINTS.name} "
        "(python -m tests.unit.schemas.test_evolution) once the version is final"
    )


def test_the_fingerprint_sees_a_changed_default_and_not_a_doc() -> None:
    schema = schema_of(BY_ID[44])  # campaign.launched v4
    before = schema_fingerprint(schema)
    documented = json.loads(json.dumps(schema))
    documented["doc"] = "a note for people"
    assert schema_fingerprint(documented) == before
    with_defaults = [f for f in schema["fields"] if "default" in f] or pytest.fail("no field with a default")
    with_defaults[0]["default"] = "changed"
    assert schema_fingerprint(schema) != before


if __name__ == "__main__":  # adds the fingerprints of new ids; an existing id's never moves
    kept = json.loads(FINGERPRINTS.read_text()) if FINGERPRINTS.exists() else {}
    merged = {**current_fingerprints(), **kept}
    FINGERPRINTS.write_text(json.dumps(dict(sorted(merged.items(), key=lambda kv: int(kv[0]))), indent=2) + "\n")
