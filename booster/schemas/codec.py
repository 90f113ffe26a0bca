"""Avro values in the Confluent wire format: byte 0 = 0, 4-byte big-endian schema id, Avro binary.

Timestamps (`timestamp-millis`) are read and written as integer epoch milliseconds: the bytes are
the same as with the logical type, and the hot path avoids building datetime objects.

Two id spaces. The contract's own (the catalog's fixed ids) is the default, and what internal topics
(booster.control, the re-keyed and re-routed copies, the summaries...) and the tables always use, so
that a worker's state does not depend on a registry. With a schema registry (`use_registry`), the
contract's topics speak the registry's ids: a record is read by the writer schema the registry gave
its id, resolved against our schema for its topic (an upstream's own copy of the contract, an older
version, a field added or reordered all read), and what Booster writes carries the ids the registry
gave our schemas.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Protocol, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.validation import ValidationError, validate

from booster.errors import DecodeError, EncodeError, RegistryError
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


class SchemaSource(Protocol):
    """The schema registry as the codec uses it (`schemas/registry.py`)."""

    def schema(self, schema_id: int) -> str | None:
        """A writer schema by its id; None when the registry has none."""
        ...

    def id_of(self, topic: str) -> int:
        """The registry's id of our latest schema of `topic`; RegistryError when it is not registered."""
        ...


class Codec:
    def __init__(self) -> None:
        self.registry: SchemaSource | None = None  # set: the contract's topics speak the registry's ids
        self._registry_ids: dict[str, int] = {}  # the registry's id of our latest schema, by topic
        self._registry_writers: dict[int, Any] = {}  # writer schemas the registry gave, by its id
        self._unreadable: dict[int, DecodeError] = {}  # ids the registry has no (readable) schema for
        self._resolved: dict[tuple[int, str], tuple[Any, Any]] = {}  # (id, topic) -> (writer, reader or None)
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

    # -- the registry's ids ------------------------------------------------------------------------

    def use_registry(self, source: SchemaSource, ids: Mapping[str, int] | None = None) -> None:
        """From now on the contract's topics speak the registry's ids. `ids`: those of our schemas already
        known, by topic; the others are asked for when a topic is first written."""
        self.use_catalog()
        self.registry = source
        for topic, schema_id in (ids or {}).items():
            self._know(topic, schema_id)

    def use_catalog(self) -> None:
        """Back to the contract's own ids (no registry)."""
        self.registry = None
        self._registry_ids = {}
        self._registry_writers = {}
        self._unreadable.clear()
        self._resolved.clear()

    def _know(self, topic: str, schema_id: int) -> None:
        if _internal(CATALOG[topic]):
            raise RegistryError(f"{topic} is internal: it keeps the contract's own ids")
        self._registry_ids[topic] = schema_id
        self._registry_writers[schema_id] = self._parsed[topic]  # ours: read without asking

    def registry_id(self, topic: str) -> int:
        """The registry's id of our schema of `topic` (asked for once)."""
        found = self._registry_ids.get(topic)
        if found is None:
            assert self.registry is not None
            found = self.registry.id_of(topic)
            self._know(topic, found)
        return found

    def _speaks_registry(self, topic: str, internal: bool) -> bool:
        return self.registry is not None and not internal and not _internal(CATALOG[topic])

    def header(self, topic: str, internal: bool = False) -> bytes:
        if self._speaks_registry(topic, internal):
            return HEADER.pack(MAGIC, self.registry_id(topic))
        return HEADER.pack(MAGIC, CATALOG[topic].schema_id)

    def encode(self, topic: str, value: Mapping[str, Any], internal: bool = False) -> bytes:
        """Encode a value for a contract topic. Raises EncodeError when it does not fit. `internal`: for
        an internal topic or a table (a re-keyed launch, a re-routed fact): the contract's own id."""
        schema = self._parsed[topic]
        out = io.BytesIO()
        out.write(self.header(topic, internal))
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
        """The catalog entry named by a value's header (the contract's own ids)."""
        schema_id = _schema_id(data)
        spec = BY_ID.get(schema_id)
        if spec is None:
            raise DecodeError(f"unknown schema id {schema_id}", kind="unknown_schema")
        return spec

    def decode(self, topic: str, data: bytes | None, internal: bool = False) -> Record:
        """Decode a value read from `topic` (contract name), of any version of its schema, into the shape
        of the latest version. Raises DecodeError for bad bytes; with a registry, RegistryUnavailable
        when the registry must be asked for a writer schema and does not answer (retry: never the
        record's fault). `internal`: read from an internal topic or a table (the contract's own ids)."""
        if self._speaks_registry(topic, internal):
            writer, reader = self._registry_schemas(topic, data)
        else:
            spec = self.schema_of(data)
            if spec.name != topic:
                raise DecodeError(
                    f"schema id {spec.schema_id} is the schema of {spec.name}, not of {topic}", kind="wrong_schema"
                )
            latest = self._parsed[topic]
            writer = self._writers[spec.schema_id]
            reader = None if writer is latest else latest
        assert data is not None
        stream = io.BytesIO(data + PADDING)
        stream.seek(HEADER.size)
        try:
            value = cast(Record, schemaless_reader(stream, writer, reader))
        except SchemaResolutionError as exc:
            raise DecodeError(
                f"the writer schema (id {HEADER.unpack_from(data)[1]}) cannot be read as {topic}: {exc}",
                kind="unresolvable_schema",
            ) from exc
        except Exception as exc:  # corrupt input makes fastavro raise anything
            raise DecodeError(f"corrupt Avro for {topic}: {type(exc).__name__}: {exc}") from exc
        end = stream.tell()
        if end > len(data):
            raise DecodeError(f"corrupt Avro for {topic}: truncated, it ends {end - len(data)} byte(s) short")
        if end < len(data):
            raise DecodeError(f"{len(data) - end} unexpected bytes after the {topic} record")
        for name in self._timestamps[topic]:
            ts = value.get(name)
            if ts is not None and not MIN_TIMESTAMP_MS <= ts < MAX_TIMESTAMP_MS:
                raise DecodeError(_timestamp_reason(name, ts), kind="bad_timestamp")
        return value

    def _registry_schemas(self, topic: str, data: bytes | None) -> tuple[Any, Any]:
        """The writer schema the registry gave the value's id, and our schema to resolve it against
        (None: the same schema, read as it is)."""
        schema_id = _schema_id(data)
        found = self._resolved.get((schema_id, topic))
        if found is None:
            writer = self.writer_schema(schema_id)
            latest = self._parsed[topic]
            found = self._resolved[(schema_id, topic)] = (writer, None if writer == latest else latest)
        return found

    def writer_schema(self, schema_id: int) -> Any:
        """The registry's schema of `schema_id`, parsed (fetched once); DecodeError when it has none."""
        writer = self._registry_writers.get(schema_id)
        if writer is not None:
            return writer
        refused = self._unreadable.get(schema_id)
        if refused is not None:  # asked once: its records are refused without asking again
            raise refused
        assert self.registry is not None
        text = self.registry.schema(schema_id)  # RegistryUnavailable: the caller retries
        try:
            if text is None:
                raise DecodeError(f"unknown schema id {schema_id}: the schema registry has none", kind="unknown_schema")
            try:
                writer = parse_schema(strip_logical_types(json.loads(text)))
            except Exception as exc:  # a registry that keeps a schema fastavro cannot parse
                raise DecodeError(
                    f"schema id {schema_id} is not a schema this reader can parse: {exc}", kind="unknown_schema"
                ) from exc
        except DecodeError as exc:
            self._unreadable[schema_id] = exc
            raise
        self._registry_writers[schema_id] = writer
        return writer

    def unknown_ids(self, topic: str, values: Iterable[bytes | None]) -> set[int]:
        """The writer ids among `values` (read from `topic`) whose schema must still be asked for: the
        worker fetches them off its event loop before it decodes a batch."""
        if topic not in CATALOG or not self._speaks_registry(topic, False):  # a worker's copy: no registry id
            return set()
        ids = set()
        for data in values:
            if data is not None and len(data) >= HEADER.size:
                magic, schema_id = HEADER.unpack_from(data)
                if magic == MAGIC and schema_id not in self._registry_writers and schema_id not in self._unreadable:
                    ids.add(schema_id)
        return ids

    def _check_timestamps(self, topic: str, value: Mapping[str, Any]) -> None:
        for name in self._timestamps[topic]:
            ts = value.get(name)
            if ts is not None and not MIN_TIMESTAMP_MS <= ts < MAX_TIMESTAMP_MS:
                raise EncodeError(_timestamp_reason(name, ts))


def _schema_id(data: bytes | None) -> int:
    """The schema id in a value's wire-format header; DecodeError for a value that has none."""
    if data is None or len(data) < HEADER.size:
        raise DecodeError("value is empty or shorter than the 5-byte wire-format header", kind="not_wire_format")
    magic, schema_id = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DecodeError(f"wrong magic byte {magic} (expected 0): not Confluent wire format", kind="not_wire_format")
    return int(schema_id)


def _internal(spec: TopicSpec) -> bool:
    """Only workers read it: it keeps the contract's own ids, registry or not."""
    return spec.role == "internal"


def _timestamp_reason(name: str, ts: Any) -> str:
    return f"{name}={ts} is outside 2000-01-01..2100-01-01 (epoch milliseconds expected)"


@lru_cache(maxsize=1)
def codec() -> Codec:
    """The process-wide codec (schemas are parsed once)."""
    return Codec()
