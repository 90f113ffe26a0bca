"""The Avro contract and the wire-format codec, without a broker."""

from __future__ import annotations

import contextlib
import io
import json
import struct
from datetime import UTC, datetime
from typing import Any

import avro.io
import avro.schema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booster.errors import DecodeError
from booster.schemas import CATALOG, codec
from booster.schemas.catalog import BY_ID
from tests.samples import SAMPLES


def test_every_topic_has_a_schema_and_a_sample() -> None:
    assert set(SAMPLES) == set(CATALOG)
    for spec in CATALOG.values():
        json.loads(spec.schema_path.read_text())  # parses as JSON
        avro.schema.parse(spec.schema_path.read_text())  # and as Avro, by Apache's implementation


def test_schema_ids_are_unique_and_stable() -> None:
    assert len(BY_ID) == len(CATALOG)
    # ids are on the wire: changing one breaks every reader of old records
    assert {n: s.schema_id for n, s in CATALOG.items()} == {
        "campaign.launched": 1, "campaign.booster-cancelled": 2, "account.channels": 3, "message.sent": 4,
        "message.delivered": 5, "message.opened": 6, "message.clicked": 7, "contact.unsubscribed": 8,
        "contact.deleted": 9, "contact.blocked": 10, "booster.commands": 11, "booster.reports": 12,
        "booster.dead-letter": 13, "booster.control": 14, "booster.summaries": 15, "booster.fanout-progress": 16,
    }  # fmt: skip


@pytest.mark.parametrize("topic", sorted(SAMPLES))
def test_round_trip(topic: str) -> None:
    data = codec().encode(topic, SAMPLES[topic])
    assert data[0] == 0
    assert struct.unpack(">I", data[1:5])[0] == CATALOG[topic].schema_id
    assert codec().decode(topic, data) == SAMPLES[topic]


def test_exact_bytes_of_a_known_record() -> None:
    data = codec().encode("message.sent", SAMPLES["message.sent"])
    expected = (
        b"\x00" + b"\x00\x00\x00\x04"  # magic, schema id 4
        + b"\x04c1"  # campaign_id: zigzag length 2
        + b"\x02k" + b"\x02m"  # contact_id, message_id
        + b"\x02"  # channel: enum index 1 (SMS), zigzag
        + b"\x80\xa0\xd5\xed\xee\x66"  # sent_at 1767225600000 as a zigzag varint
    )  # fmt: skip
    assert data == expected


def _to_millis(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.astimezone(UTC).timestamp() * 1000)
    if isinstance(value, dict):
        return {k: _to_millis(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_millis(v) for v in value]
    return value


@pytest.mark.parametrize("topic", sorted(SAMPLES))
def test_apache_avro_reads_what_we_write(topic: str) -> None:
    schema = avro.schema.parse(CATALOG[topic].schema_path.read_text())
    data = codec().encode(topic, SAMPLES[topic])
    decoded = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data[5:])))
    assert _to_millis(decoded) == SAMPLES[topic]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter than"),
        (b"\x01\x00\x00\x00\x04abc", "wrong magic byte"),
        (b"\x00\x00\x00\x03\xe7\x02a", "unknown schema id 999"),
        (b"\x00\x00\x00\x00\x09\x02k\x02a", "schema of contact.deleted"),
    ],
)
def test_bad_headers_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        codec().decode("message.sent", data)


def test_truncated_and_trailing_bytes_are_refused() -> None:
    good = codec().encode("message.clicked", SAMPLES["message.clicked"])
    for cut in range(5, len(good)):
        with pytest.raises(DecodeError):
            codec().decode("message.clicked", good[:cut])
    with pytest.raises(DecodeError, match="unexpected bytes"):
        codec().decode("message.clicked", good + b"\x00")


def test_unknown_enum_symbol_is_refused() -> None:
    good = bytearray(codec().encode("message.sent", SAMPLES["message.sent"]))
    good[12] = 0x0E  # channel: enum index 7, and there are 3 symbols
    with pytest.raises(DecodeError):
        codec().decode("message.sent", bytes(good))


@pytest.mark.parametrize("ts", [-1, 0, 253402300800000])  # negative, 1970, year 9999
def test_absurd_timestamps_are_refused(ts: int) -> None:
    data = codec().encode("contact.deleted", {**SAMPLES["contact.deleted"], "deleted_at": ts})
    with pytest.raises(DecodeError, match="deleted_at"):
        codec().decode("contact.deleted", data)


@settings(max_examples=400, deadline=None)
@given(topic=st.sampled_from(sorted(SAMPLES)), payload=st.binary(max_size=200))
def test_garbage_raises_only_our_error(topic: str, payload: bytes) -> None:
    for data in (payload, b"\x00" + struct.pack(">I", CATALOG[topic].schema_id) + payload):
        with contextlib.suppress(DecodeError):
            codec().decode(topic, data)


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(sorted(SAMPLES)), data=st.data())
def test_corrupted_good_records_raise_only_our_error(topic: str, data: st.DataObject) -> None:
    good = bytearray(codec().encode(topic, SAMPLES[topic]))
    position = data.draw(st.integers(0, len(good) - 1))
    good[position] = data.draw(st.integers(0, 255))
    with contextlib.suppress(DecodeError):
        codec().decode(topic, bytes(good))
