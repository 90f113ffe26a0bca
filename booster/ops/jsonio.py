"""JSON lines to Avro values and back, for `booster publish` and `booster tail`.

Timestamps go in as epoch milliseconds or ISO-8601 strings and come out as ISO-8601 strings (or
epoch milliseconds on request); enums are their symbol names; bytes are base64.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from booster.errors import EncodeError
from booster.processors.text import format_timestamp
from booster.schemas import codec, spec_for


def parse_timestamp(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise EncodeError(f"{field}: expected epoch milliseconds or an ISO-8601 string, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise EncodeError(f"{field}: {value!r} is not an ISO-8601 timestamp") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return round(dt.timestamp() * 1000)
    raise EncodeError(f"{field}: expected epoch milliseconds or an ISO-8601 string, got {value!r}")


def _is_timestamp(t: Any) -> bool:
    return isinstance(t, dict) and t.get("logicalType") == "timestamp-millis"


def _named_types(schema: Any, found: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema, dict):
        if schema.get("type") in ("record", "enum") and "name" in schema:
            found[schema["name"]] = schema
        for v in schema.values():
            _named_types(v, found)
    elif isinstance(schema, list):
        for v in schema:
            _named_types(v, found)
    return found


def _convert(value: Any, schema: Any, path: str, names: dict[str, Any], to_avro: bool, epoch_ms: bool) -> Any:
    """Walk a value along its schema, converting timestamps and bytes one way or the other."""
    if isinstance(schema, str) and schema in names:
        schema = names[schema]
    if isinstance(schema, list):  # union: null or one other branch in this contract
        if value is None:
            return None
        branches = [b for b in schema if b != "null"]
        if len(branches) == 1:
            return _convert(value, branches[0], path, names, to_avro, epoch_ms)
        return value
    if _is_timestamp(schema):
        if value is None:
            return None
        if to_avro:
            return parse_timestamp(value, path)
        return value if epoch_ms else format_timestamp(value)
    kind = schema.get("type") if isinstance(schema, dict) else schema
    if kind == "record":
        if not isinstance(value, Mapping):
            if to_avro:
                raise EncodeError(f"{path or 'value'}: expected a JSON object, got {value!r}")
            return value
        out = dict(value)
        known = {f["name"] for f in schema["fields"]}
        if to_avro:
            unknown = sorted(set(value) - known)
            if unknown:
                raise EncodeError(f"{path or 'value'}: unknown field(s) {', '.join(unknown)}")
        for f in schema["fields"]:
            if f["name"] in value:
                sub = f"{path}.{f['name']}" if path else f["name"]
                out[f["name"]] = _convert(value[f["name"]], f["type"], sub, names, to_avro, epoch_ms)
        return out
    if kind == "array" and isinstance(value, list):
        return [_convert(v, schema["items"], f"{path}[{i}]", names, to_avro, epoch_ms) for i, v in enumerate(value)]
    if kind == "map" and isinstance(value, Mapping):
        return {k: _convert(v, schema["values"], f"{path}.{k}", names, to_avro, epoch_ms) for k, v in value.items()}
    if kind == "bytes":
        if to_avro and isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except binascii.Error:
                raise EncodeError(f"{path}: bytes must be base64") from None
        if not to_avro and isinstance(value, bytes):
            return base64.b64encode(value).decode()
    return value


def json_to_record(topic: str, value: Any) -> dict[str, Any]:
    """Turn a decoded JSON value into a record that fits the topic's schema, or raise EncodeError."""
    schema = codec().raw_schemas[topic]
    record: dict[str, Any] = _convert(value, schema, "", _named_types(schema, {}), to_avro=True, epoch_ms=True)
    codec().check(topic, record)
    return record


def record_to_json(topic: str, record: Mapping[str, Any], *, epoch_ms: bool = False) -> Any:
    schema = codec().raw_schemas[topic]
    return _convert(record, schema, "", _named_types(schema, {}), to_avro=False, epoch_ms=epoch_ms)


def parse_line(topic: str, line: str) -> tuple[bytes, bytes]:
    """One line of `booster publish` input to (key, value) bytes; raises EncodeError with the reason."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EncodeError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise EncodeError('expected a JSON object (the value, or {"key": ..., "value": {...}})')
    key: Any = None
    value: Any = obj
    if "value" in obj and set(obj) <= {"key", "value"} and isinstance(obj["value"], dict):
        key, value = obj.get("key"), obj["value"]
    record = json_to_record(topic, value)
    spec = spec_for(topic)
    if key is None:
        if spec.key_field is None:
            raise EncodeError(f'{topic} takes its key as given: write {{"key": ..., "value": {{...}}}}')
        key = record.get(spec.key_field)
    if not isinstance(key, str) or not key:
        raise EncodeError(f"the key must be a non-empty string, got {key!r}")
    return key.encode(), codec().encode(topic, record)
