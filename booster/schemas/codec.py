"""Avro values in the Confluent wire format: byte 0 = 0, 4-byte big-endian schema id, Avro binary.

Timestamps (`timestamp-millis`) are read and written as integer epoch milliseconds: the bytes are
the same as with the logical type, and the hot path avoids building datetime objects.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from booster.errors import DecodeError, EncodeError
from booster.schemas.catalog import BY_ID, CATALOG, TopicSpec

MAGIC = 0
HEADER = struct.Struct(">bI")

# Timestamps outside this range are not facts about messages sent by this product: a record with
# one is refused (dead-lettered) rather than allowed to sit in state forever or fire a booster early.
MIN_TIMESTAMP_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TIMESTAMP_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z

Record = dict[str, Any]


def strip_logical_types(node: Any) -> Any:
    """A schema without logical types: the same bytes, timestamps read and written as integers."""
    return without_attribute(node, "logicalType")


def without_attribute(node: Any, name: str) -> Any:
    """A schema (JSON) with the attribute `name` removed at every level."""
    if isinstance(node, dict):
        return {k: without_attribute(v, name) for k, v in node.items() if k != name}
    if isinstance(node, list):
        return [without_attribute(v, name) for v in node]
    return node


def _timestamp_fields(node: Any) -> list[str]:
    """Top-level field names whose type is (nullable) timestamp-millis."""
    names = []
    for field in node.get("fields", []):
        types = field["type"] if isinstance(field["type"], list) else [field["type"]]
        if any(isinstance(t, dict) and t.get("logicalType") == "timestamp-millis" for t in types):
            names.append(field["name"])
    return names


# fastavro reads a string or bytes short without complaint when the input is truncated: the record is
# read with this much padding after it, so that a truncated one reads into the padding (and is caught by
# where the read ends) instead of ending exactly at the end. A plain BytesIO keeps fastavro's reads in C.
PADDING = bytes(64)


class Codec:
    def __init__(self) -> None:
        self.raw_schemas: dict[str, Any] = {}  # each topic's latest version, as written in its .avsc file
        self._parsed: dict[str, Any] = {}  # the latest versions, without logical types: timestamps are ints
        self._timestamps: dict[str, list[str]] = {}
        self._writers: dict[int, Any] = {}  # every version by schema id, to read old records with
        for spec in BY_ID.values():
            raw = json.loads(spec.schema_path.read_text())
            self._writers[spec.schema_id] = parse_schema(strip_logical_types(raw))
            if CATALOG[spec.name] is spec:
                self.raw_schemas[spec.name] = raw
                self._parsed[spec.name] = self._writers[spec.schema_id]
                self._timestamps[spec.name] = _timestamp_fields(raw)

    def header(self, topic: str) -> bytes:
        return HEADER.pack(MAGIC, CATALOG[topic].schema_id)

    def encode(self, topic: str, value: Mapping[str, Any]) -> bytes:
        """Encode a value for a contract topic. Raises EncodeError when it does not fit."""
        schema = self._parsed[topic]
        out = io.BytesIO()
        out.write(self.header(topic))
        try:
            schemaless_writer(out, schema, value)
        except Exception as exc:  # fastavro raises many types for a value that does not fit
            raise EncodeError(f"{topic}: value does not fit the schema: {exc}") from exc
        return out.getvalue()

    def check(self, topic: str, value: Mapping[str, Any]) -> None:
        """Raise EncodeError naming the field when a value does not fit the topic's schema."""
        try:
            validate(value, self._parsed[topic], raise_errors=True)
        except ValidationError as exc:
            detail = "; ".join(str(e) for e in exc.errors)
            raise EncodeError(f"does not fit the schema of {topic}: {detail}") from None
        except Exception as exc:  # fastavro's validator fails on some shapes instead of reporting
            raise EncodeError(f"does not fit the schema of {topic}: {exc}") from None
        self._check_timestamps(topic, value)

    def schema_of(self, data: bytes | None) -> TopicSpec:
        """The catalog entry named by a value's header."""
        if data is None or len(data) < HEADER.size:
            raise DecodeError("value is empty or shorter than the 5-byte wire-format header", kind="not_wire_format")
        magic, schema_id = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError(
                f"wrong magic byte {magic} (expected 0): not Confluent wire format", kind="not_wire_format"
            )
        spec = BY_ID.get(schema_id)
        if spec is None:
            raise DecodeError(f"unknown schema id {schema_id}", kind="unknown_schema")
        return spec

    def decode(self, topic: str, data: bytes | None) -> Record:
        """Decode a value read from `topic` (contract name), of any version of its schema, into the shape
        of the latest version. Raises DecodeError for bad bytes."""
        spec = self.schema_of(data)
        assert data is not None
        if spec.name != topic:
            raise DecodeError(
                f"schema id {spec.schema_id} is the schema of {spec.name}, not of {topic}", kind="wrong_schema"
            )
        reader = io.BytesIO(data + PADDING)
        reader.seek(HEADER.size)
        latest = self._parsed[spec.name]
        writer = self._writers[spec.schema_id]
        try:
            value = cast(Record, schemaless_reader(reader, writer, None if writer is latest else latest))
        except Exception as exc:  # corrupt input makes fastavro raise anything
            raise DecodeError(f"corrupt Avro for {spec.name}: {type(exc).__name__}: {exc}") from exc
        end = reader.tell()
        if end > len(data):
            raise DecodeError(f"corrupt Avro for {spec.name}: truncated, it ends {end - len(data)} byte(s) short")
        if end < len(data):
            raise DecodeError(f"{len(data) - end} unexpected bytes after the {spec.name} record")
        for name in self._timestamps[spec.name]:
            ts = value.get(name)
            if ts is not None and not MIN_TIMESTAMP_MS <= ts < MAX_TIMESTAMP_MS:
                raise DecodeError(_timestamp_reason(name, ts), kind="bad_timestamp")
        return value

    def _check_timestamps(self, topic: str, value: Mapping[str, Any]) -> None:
        for name in self._timestamps[topic]:
            ts = value.get(name)
            if ts is not None and not MIN_TIMESTAMP_MS <= ts < MAX_TIMESTAMP_MS:
                raise EncodeError(_timestamp_reason(name, ts))


def _timestamp_reason(name: str, ts: Any) -> str:
    return f"{name}={ts} is outside 2000-01-01..2100-01-01 (epoch milliseconds expected)"


@lru_cache(maxsize=1)
def codec() -> Codec:
    """The process-wide codec (schemas are parsed once)."""
    return Codec()
