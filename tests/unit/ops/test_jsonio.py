"""`booster publish` lines to Avro values, without a broker."""

from __future__ import annotations

import json

import pytest

from booster.errors import EncodeError
from booster.ops.jsonio import parse_line, record_to_json
from booster.processors.text import format_timestamp
from booster.schemas import codec

SENT = {"campaign_id": "c1", "contact_id": "k1", "message_id": "m1", "channel": "SMS", "sent_at": 1767225600000}


def test_value_alone_takes_its_key_from_the_contract() -> None:
    key, value = parse_line("message.sent", json.dumps(SENT))
    assert key == b"k1"
    assert codec().decode("message.sent", value) == SENT


def test_explicit_key_and_iso_timestamps() -> None:
    line = json.dumps({"key": "other", "value": {**SENT, "sent_at": "2026-01-01T00:00:00Z"}})
    key, value = parse_line("message.sent", line)
    assert key == b"other"
    assert codec().decode("message.sent", value)["sent_at"] == 1767225600000
    naive = json.dumps({**SENT, "sent_at": "2026-01-01T01:00:00+01:00"})
    assert codec().decode("message.sent", parse_line("message.sent", naive)[1])["sent_at"] == 1767225600000


def test_nullable_and_default_fields() -> None:
    line = json.dumps({"contact_id": "k", "account_id": "a", "channel": None, "unsubscribed_at": 1767225600000})
    assert codec().decode("contact.unsubscribed", parse_line("contact.unsubscribed", line)[1])["channel"] is None
    opened = {k: v for k, v in SENT.items() if k not in ("channel", "sent_at")} | {"opened_at": 1767225600000}
    assert (
        codec().decode("message.opened", parse_line("message.opened", json.dumps(opened))[1])["machine_open"] is False
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({k: v for k, v in SENT.items() if k != "message_id"}), "message_id"),
        (json.dumps({**SENT, "channel": "FAX"}), "FAX"),
        (json.dumps({**SENT, "sent_at": "yesterday"}), "not an ISO-8601 timestamp"),
        (json.dumps({**SENT, "sent_at": -5}), "outside 2000-01-01"),
        (json.dumps({**SENT, "colour": "red"}), "unknown field"),
        (json.dumps({"key": "", "value": SENT}), "non-empty string"),
    ],
)
def test_bad_lines_say_why(line: str, reason: str) -> None:
    with pytest.raises(EncodeError, match=reason):
        parse_line("message.sent", line)


def test_dead_letters_need_an_explicit_key() -> None:
    dl = {
        "source_topic": "message.sent",
        "partition": 0,
        "offset": 1,
        "key": None,
        "value": "AQI=",
        "error": "x",
        "failed_at": 1767225600000,
    }
    with pytest.raises(EncodeError, match="takes its key as given"):
        parse_line("booster.dead-letter", json.dumps(dl))
    _key, value = parse_line("booster.dead-letter", json.dumps({"key": "k", "value": dl}))
    assert codec().decode("booster.dead-letter", value)["value"] == b"\x01\x02"


def test_tail_output_is_readable_and_reparsable() -> None:
    shown = record_to_json("message.sent", SENT)
    assert shown["sent_at"] == format_timestamp(1767225600000) == "2026-01-01T00:00:00.000Z"
    assert parse_line("message.sent", json.dumps(shown))[1] == codec().encode("message.sent", SENT)
