"""The codec speaking a schema registry's ids, without a registry: the writer schemas it would hand
out are a dict here (the real registry is tested in tests/integration/test_registry.py)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from booster.errors import DecodeError, RegistryUnavailable
from booster.schemas.catalog import BY_ID, CATALOG
from booster.schemas.codec import HEADER, MAGIC, Codec
from tests.samples import SAMPLES

OURS = {topic: 1000 + i for i, topic in enumerate(sorted(t for t, s in CATALOG.items() if s.role != "internal"))}


class Registry:
    """Schemas by id, as a registry hands them out; `away`: it does not answer."""

    def __init__(self, schemas: dict[int, Any]) -> None:
        self.schemas = {i: json.dumps(s) for i, s in schemas.items()}
        self.asked: list[int] = []
        self.looked_up: list[str] = []
        self.away = False

    def schema(self, schema_id: int) -> str | None:
        self.asked.append(schema_id)
        if self.away:
            raise RegistryUnavailable("the schema registry did not answer")
        return self.schemas.get(schema_id)

    def id_of(self, topic: str) -> int:
        self.looked_up.append(topic)
        return OURS[topic]


def registry_codec(schemas: dict[int, Any]) -> tuple[Codec, Registry]:
    registry = Registry(schemas)
    c = Codec()
    c.use_registry(registry, {"campaign.launched": OURS["campaign.launched"]})
    return c, registry


def written(schema_id: int, schema: Any, value: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    out.write(HEADER.pack(MAGIC, schema_id))
    schemaless_writer(out, parse_schema(schema), value)
    return out.getvalue()


def sent_schema(**changes: Any) -> dict[str, Any]:
    schema = json.loads(CATALOG["message.sent"].schema_path.read_text())
    return {**schema, **changes}


def test_our_outputs_carry_the_registrys_ids_and_internal_topics_the_contracts() -> None:
    c, registry = registry_codec({})
    for topic in ("booster.commands", "booster.reports", "booster.dead-letter", "campaign.launched"):
        data = c.encode(topic, SAMPLES[topic])
        assert HEADER.unpack_from(data)[1] == OURS[topic]
        assert c.decode(topic, data) == SAMPLES[topic]  # read back without asking the registry
    assert registry.asked == []
    # the ids of our schemas asked for once each, when a topic is first written; the one given, never
    assert registry.looked_up == ["booster.commands", "booster.reports", "booster.dead-letter"]
    c.encode("booster.commands", SAMPLES["booster.commands"])
    assert len(registry.looked_up) == 3
    control = c.encode("booster.control", SAMPLES["booster.control"])
    assert HEADER.unpack_from(control)[1] == CATALOG["booster.control"].schema_id
    copy = c.encode("campaign.launched", SAMPLES["campaign.launched"], internal=True)  # a re-keyed launch
    assert HEADER.unpack_from(copy)[1] == CATALOG["campaign.launched"].schema_id
    assert c.decode("campaign.launched", copy, internal=True) == c.decode(
        "campaign.launched", c.encode("campaign.launched", SAMPLES["campaign.launched"])
    )


def test_an_upstream_copy_with_an_extra_optional_field_and_fields_reordered_reads() -> None:
    theirs = sent_schema()
    fields = [*reversed(theirs["fields"]), {"name": "locale", "type": ["null", "string"], "default": None}]
    c, registry = registry_codec({7: {**theirs, "fields": fields}})
    value = {**SAMPLES["message.sent"], "locale": "fr-FR"}
    got = c.decode("message.sent", written(7, {**theirs, "fields": fields}, value))
    assert got == SAMPLES["message.sent"]
    c.decode("message.sent", written(7, {**theirs, "fields": fields}, value))
    assert registry.asked == [7]  # once per id, not per record


def test_an_older_version_of_the_topic_reads_into_the_latest_shape() -> None:
    old = json.loads(BY_ID[1].schema_path.read_text())  # campaign.launched v1
    oldest_sample = {k: v for k, v in SAMPLES["campaign.launched"].items() if k in {f["name"] for f in old["fields"]}}
    booster = SAMPLES["campaign.launched"]["booster"]
    booster_fields = next(f for f in old["fields"] if f["name"] == "booster")["type"]
    record_type = next(t for t in booster_fields if isinstance(t, dict))
    oldest_sample["booster"] = {f["name"]: booster[f["name"]] for f in record_type["fields"]}
    c, _ = registry_codec({3: old})
    got = c.decode("campaign.launched", written(3, old, oldest_sample))
    assert got["campaign_id"] == oldest_sample["campaign_id"]
    assert got["booster"]["count_machine_opens"] is False  # the default of a field added later


def test_a_writer_schema_ours_cannot_read_is_a_decode_error_with_its_reason() -> None:
    theirs = sent_schema()
    fields = [f for f in theirs["fields"] if f["name"] != "contact_id"] + [{"name": "contact_id", "type": "long"}]
    c, _ = registry_codec({9: {**theirs, "fields": fields}})
    data = written(9, {**theirs, "fields": fields}, {**SAMPLES["message.sent"], "contact_id": 42})
    with pytest.raises(DecodeError) as caught:
        c.decode("message.sent", data)
    assert caught.value.kind == "unresolvable_schema" and "id 9" in caught.value.reason


def test_an_id_the_registry_does_not_have_is_a_decode_error() -> None:
    c, _ = registry_codec({})
    with pytest.raises(DecodeError) as caught:
        c.decode("message.sent", written(77, sent_schema(), SAMPLES["message.sent"]))
    assert caught.value.kind == "unknown_schema"


def test_a_registry_that_does_not_answer_is_not_the_records_fault() -> None:
    c, registry = registry_codec({7: sent_schema()})
    data = written(7, sent_schema(), SAMPLES["message.sent"])
    assert c.unknown_ids("message.sent", [data, data, None]) == {7}
    registry.away = True
    with pytest.raises(RegistryUnavailable):
        c.decode("message.sent", data)
    registry.away = False
    assert c.decode("message.sent", data) == SAMPLES["message.sent"]
    assert c.unknown_ids("message.sent", [data]) == set()


def test_without_a_registry_nothing_changes() -> None:
    c = Codec()
    data = c.encode("message.sent", SAMPLES["message.sent"])
    assert HEADER.unpack_from(data)[1] == CATALOG["message.sent"].schema_id
    assert c.unknown_ids("message.sent", [data]) == set()
