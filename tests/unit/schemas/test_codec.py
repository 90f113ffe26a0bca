"""The Avro contract and the wire-format codec, without a broker."""

from __future__ import annotations

import contextlib
import io
import json
import re
import struct
from datetime import UTC, datetime
from typing import Any

import avro.io
import avro.schema
import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from booster.errors import DecodeError
from booster.processors.audience import Tally
from booster.processors.boosters import ReasonCode
from booster.processors.events import (
    AccountChannels,
    BoosterSettings,
    MessageClicked,
    account_from_record,
    launch_from_record,
    message_event_from_record,
)
from booster.processors.frequency import FrequencyCap
from booster.processors.notices import NoticeKind
from booster.processors.packing import schedule_from_dict, tally_of_record
from booster.schemas import CATALOG, codec
from booster.schemas.catalog import BY_ID, CONTACT_INPUT_TOPICS, INPUT_TOPICS
from booster.schemas.codec import strip_logical_types
from tests.samples import SAMPLES


def test_every_topic_has_a_schema_and_a_sample() -> None:
    assert set(SAMPLES) == set(CATALOG)
    for spec in BY_ID.values():  # every version
        json.loads(spec.schema_path.read_text())  # parses as JSON
        avro.schema.parse(spec.schema_path.read_text())  # and as Avro, by Apache's implementation


def test_schema_ids_are_unique_and_stable() -> None:
    # ids are on the wire: changing one breaks every reader of old records
    assert {i: (s.name, s.version) for i, s in BY_ID.items()} == {
        1: ("campaign.launched", 1), 2: ("campaign.booster-cancelled", 1), 3: ("account.channels", 1),
        4: ("message.sent", 1), 5: ("message.delivered", 1), 6: ("message.opened", 1), 7: ("message.clicked", 1),
        8: ("contact.unsubscribed", 1), 9: ("contact.deleted", 1), 10: ("contact.blocked", 1),
        11: ("booster.commands", 1), 12: ("booster.reports", 1), 13: ("booster.dead-letter", 1),
        14: ("booster.control", 1), 15: ("booster.summaries", 1), 16: ("booster.fanout-progress", 1),
        17: ("booster.reports", 2), 18: ("booster.notices", 1), 19: ("booster.control", 2),
        20: ("booster.summaries", 2), 21: ("booster.audience", 1), 22: ("booster.control", 3),
        23: ("campaign.launched", 2), 24: ("booster.control", 4), 25: ("booster.fanout-progress", 2),
        26: ("booster.summaries", 3), 27: ("booster.reports", 3), 28: ("message.clicked", 2),
        29: ("booster.fanout-progress", 3), 30: ("booster.summaries", 4), 31: ("booster.reports", 4),
        32: ("booster.notices", 2), 33: ("campaign.launched", 3), 34: ("booster.control", 5),
        35: ("contact.reachability", 1), 36: ("booster.audience", 2), 37: ("account.channels", 2),
        38: ("contact.time-zone", 1), 39: ("booster.commands", 2), 40: ("account.channels", 3),
        41: ("booster.audience", 3), 42: ("booster.control", 6), 43: ("booster.summaries", 5),
        44: ("campaign.launched", 4), 45: ("booster.control", 7), 46: ("booster.summaries", 6),
        47: ("booster.audience", 4), 48: ("booster.fanout-progress", 4), 49: ("booster.measurements", 1),
        50: ("booster.results", 1), 51: ("booster.reports", 5), 52: ("booster.notices", 3),
    }  # fmt: skip
    # writers use each topic's latest version
    assert {n: s.schema_id for n, s in CATALOG.items() if s.version > 1} == {
        "booster.reports": 51,
        "booster.control": 45,
        "booster.summaries": 46,
        "campaign.launched": 44,
        "booster.fanout-progress": 48,
        "message.clicked": 28,
        "booster.notices": 52,
        "booster.audience": 47,
        "account.channels": 40,
        "booster.commands": 39,
    }


def _write(schema_id: int, value: dict[str, Any]) -> bytes:
    """A record written with an older (or newer) version of a topic's schema, by Apache's writer."""
    schema = avro.schema.parse(BY_ID[schema_id].schema_path.read_text())
    out = io.BytesIO()
    avro.io.DatumWriter(schema).write(value, avro.io.BinaryEncoder(out))
    return b"\x00" + struct.pack(">I", schema_id) + out.getvalue()


def test_a_version_1_report_decodes_as_the_latest_version() -> None:
    added = {"reason_code": None, "boosted_despite_machine_open": 0, "boosted_despite_scanner_click": 0, "deferred": 0}
    v1 = {k: v for k, v in SAMPLES["booster.reports"].items() if k not in added}
    decoded = codec().decode("booster.reports", _write(12, {**v1, "deadline": None}))
    assert decoded == {**v1, "deadline": None, **added}
    despite = ("boosted_despite_machine_open", "boosted_despite_scanner_click", "deferred")
    v2 = {k: v for k, v in SAMPLES["booster.reports"].items() if k not in despite}
    assert codec().decode("booster.reports", _write(17, v2)) == {**v2, **dict.fromkeys(despite, 0)}
    v3 = {**v2, "boosted_despite_machine_open": 4}
    assert codec().decode("booster.reports", _write(27, v3)) == {
        **v3,
        "boosted_despite_scanner_click": 0,
        "deferred": 0,
    }


def test_a_version_1_click_decodes_as_the_persons() -> None:
    v1 = {k: v for k, v in SAMPLES["message.clicked"].items() if k != "bot"}
    decoded = codec().decode("message.clicked", _write(7, v1))
    assert decoded == {**v1, "bot": False}
    assert message_event_from_record("message.clicked", decoded) == MessageClicked("c1", "k", 1767225603000, False)
    flagged = message_event_from_record("message.clicked", SAMPLES["message.clicked"])
    assert flagged == MessageClicked("c1", "k", 1767225603000, True)


def test_older_fanout_progress_decodes_with_its_machine_opens_and_nothing_else_marked() -> None:
    added = ("machine_opened", "marks", "outcomes_from")
    v1 = {k: v for k, v in SAMPLES["booster.fanout-progress"].items() if k not in added}
    v1_read = codec().decode("booster.fanout-progress", _write(16, v1))
    assert v1_read == {**v1, "machine_opened": 0, "marks": {}, "outcomes_from": None}
    v2 = {**v1, "machine_opened": 5}
    v2_read = codec().decode("booster.fanout-progress", _write(25, v2))
    assert v2_read == {**v2, "marks": {}, "outcomes_from": None}
    v3 = {**v2, "marks": {"MACHINE_OPEN": 5}}
    assert codec().decode("booster.fanout-progress", _write(29, v3)) == {**v3, "outcomes_from": None}
    assert tally_of_record(v2_read) == Tally(3, {}, {"MACHINE_OPEN": 5})
    assert tally_of_record(SAMPLES["booster.fanout-progress"]) == Tally(3, {}, {"MACHINE_OPEN": 1})


def _enum(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """The named enum defined somewhere in a schema's fields."""
    for field in schema["fields"]:
        for t in field["type"] if isinstance(field["type"], list) else [field["type"]]:
            if isinstance(t, dict) and t.get("name") == name:
                return t
    raise AssertionError(f"no enum {name}")


def test_the_reason_codes_and_notice_kinds_are_the_cores() -> None:
    for schema_id in (CATALOG["booster.reports"].schema_id, CATALOG["booster.notices"].schema_id):
        reasons = _enum(json.loads(BY_ID[schema_id].schema_path.read_text()), "ReasonCode")
        assert reasons["symbols"] == [c.value for c in ReasonCode]
    kinds = _enum(json.loads(CATALOG["booster.notices"].schema_path.read_text()), "NoticeKind")
    assert kinds["symbols"] == [k.value for k in NoticeKind]


# what a schedule of an older record reads as: the booster settings and the account's, none of them
SCHEDULE_SETTINGS_OF_OLDER_RECORDS = {
    "count_machine_opens": False,
    "scanner_window_seconds": 0,
    "campaign_channel": None,
    "quiet_hours": None,
    "frequency_cap": None,
    "holdout_percent": 0,
    "measurement_ms": 0,
}


def test_a_version_1_control_record_decodes_as_the_latest_version() -> None:
    added = {
        "cancelled_at": None, "reason": None, "from_partition": None, "all_opened": None, "enabled": None,
        "account_id": None,
    }  # fmt: skip
    v1 = {k: v for k, v in SAMPLES["booster.control"].items() if k not in added}
    settings = SCHEDULE_SETTINGS_OF_OLDER_RECORDS
    v1["schedule"] = {k: v for k, v in v1["schedule"].items() if k not in settings}
    decoded = codec().decode("booster.control", _write(14, v1))
    assert decoded == {**v1, **added, "schedule": {**v1["schedule"], **settings}}
    # scheduled without a scanner window by an older worker: none, as every partition reads the same record
    assert schedule_from_dict({"campaign_id": "c1", **decoded["schedule"]}).scanner_window_seconds == 0


def test_each_topic_is_listed_once_whatever_its_versions() -> None:
    assert len(INPUT_TOPICS) == len(set(INPUT_TOPICS)) == 12
    assert len(CONTACT_INPUT_TOPICS) == len(set(CONTACT_INPUT_TOPICS)) == 9


def test_a_version_1_launch_decodes_with_machine_opens_not_counted_and_the_default_scanner_window() -> None:
    v1 = dict(SAMPLES["campaign.launched"])
    added = ("count_machine_opens", "scanner_window_seconds", "holdout_percent", "measurement_hours")
    v1["booster"] = {k: v for k, v in v1["booster"].items() if k not in added}
    decoded = codec().decode("campaign.launched", _write(1, v1))
    assert decoded["booster"]["count_machine_opens"] is False
    assert launch_from_record(decoded).booster == BoosterSettings(7200, "SMS", None, "tpl/9", False, None, 0, None)
    latest = launch_from_record(SAMPLES["campaign.launched"])
    assert latest.booster == BoosterSettings(7200, "SMS", None, "tpl/9", True, 30, 10, 48)


def test_a_version_3_launch_decodes_with_no_holdout_and_the_default_measurement() -> None:
    v3 = dict(SAMPLES["campaign.launched"])
    v3["booster"] = {k: v for k, v in v3["booster"].items() if k not in ("holdout_percent", "measurement_hours")}
    decoded = codec().decode("campaign.launched", _write(33, v3))
    assert decoded["booster"] == {**v3["booster"], "holdout_percent": 0, "measurement_hours": None}
    assert launch_from_record(decoded).booster == BoosterSettings(7200, "SMS", None, "tpl/9", True, 30, 0, None)


def test_a_version_2_channel_record_decodes_with_no_account() -> None:
    v2 = {**SAMPLES["booster.control"], "kind": "CHANNEL", "schedule": None, "enabled": False}
    del v2["account_id"]
    assert codec().decode("booster.control", _write(19, v2)) == {**v2, "account_id": None}


def test_a_version_1_summary_decodes_as_the_latest_version() -> None:
    added: dict[str, Any] = {"cancel_reason": None, "machine_opened": 0, "marks": {}}
    settings = SCHEDULE_SETTINGS_OF_OLDER_RECORDS
    v1 = {k: v for k, v in SAMPLES["booster.summaries"].items() if k not in added}
    v1["schedule"] = {k: v for k, v in v1["schedule"].items() if k not in settings}
    decoded = codec().decode("booster.summaries", _write(15, v1))
    assert decoded == {**v1, **added, "schedule": {**v1["schedule"], **settings}}


def test_a_reason_code_newer_than_the_reader_reads_as_other() -> None:
    """A newer worker may add codes: an older reader gets OTHER (the enum's default), not an error."""
    raw = json.loads(BY_ID[18].schema_path.read_text())
    fields = [
        {**f, "type": {**f["type"], "symbols": [*f["type"]["symbols"], "NEW_RULE"]}}
        if f["name"] == "reason_code"
        else f
        for f in raw["fields"]
    ]
    newer = {**raw, "fields": fields}
    out = io.BytesIO()
    schemaless_writer(
        out, parse_schema(strip_logical_types(newer)), {**SAMPLES["booster.notices"], "reason_code": "NEW_RULE"}
    )
    value = schemaless_reader(
        io.BytesIO(out.getvalue()), parse_schema(strip_logical_types(newer)), parse_schema(strip_logical_types(raw))
    )
    assert value == {**SAMPLES["booster.notices"], "reason_code": "OTHER"}


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


def test_a_version_1_outcome_decodes_as_the_latest_version() -> None:
    v1 = {k: v for k, v in SAMPLES["booster.audience"].items() if k != "frequency_capped"}
    v1["outcome"] = "OPENED"
    assert codec().decode("booster.audience", _write(21, v1)) == {**v1, "frequency_capped": False}


def test_version_2_outcomes_and_accounts_decode_with_no_frequency_cap() -> None:
    v2 = {k: v for k, v in SAMPLES["booster.audience"].items() if k != "frequency_capped"}
    assert codec().decode("booster.audience", _write(36, v2)) == {**v2, "frequency_capped": False}
    account = {k: v for k, v in SAMPLES["account.channels"].items() if k != "frequency_cap"}
    decoded = codec().decode("account.channels", _write(37, account))
    assert decoded == {**account, "frequency_cap": None}
    assert account_from_record("acct-1", decoded).frequency_cap is None


def test_a_frequency_cap_outcome_reads_as_other_to_a_version_2_reader() -> None:
    """A consumer of booster.audience that has not upgraded gets OTHER for the new outcome, not an error."""
    written = {**SAMPLES["booster.audience"], "outcome": "FREQUENCY_CAP"}
    newer, older = (parse_schema(strip_logical_types(json.loads(BY_ID[i].schema_path.read_text()))) for i in (41, 36))
    out = io.BytesIO()
    schemaless_writer(out, newer, written)
    value = schemaless_reader(io.BytesIO(out.getvalue()), newer, older)
    assert value == {k: v for k, v in {**written, "outcome": "OTHER"}.items() if k != "frequency_capped"}


def test_version_5_schedules_decode_with_no_frequency_cap() -> None:
    absent = {"frequency_cap": None, "holdout_percent": 0, "measurement_ms": 0}
    control = SAMPLES["booster.control"]
    v5 = {**control, "schedule": {k: v for k, v in control["schedule"].items() if k not in absent}}
    decoded = codec().decode("booster.control", _write(34, v5))
    assert decoded == {**v5, "schedule": {**v5["schedule"], **absent}}
    summary = SAMPLES["booster.summaries"]
    v4 = {**summary, "schedule": {k: v for k, v in summary["schedule"].items() if k not in absent}}
    assert codec().decode("booster.summaries", _write(30, v4)) == {**v4, "schedule": {**v4["schedule"], **absent}}


def test_version_6_schedules_decode_with_no_holdout_and_no_measurement() -> None:
    absent = {"holdout_percent": 0, "measurement_ms": 0}
    control = SAMPLES["booster.control"]
    v6 = {**control, "schedule": {k: v for k, v in control["schedule"].items() if k not in absent}}
    decoded = codec().decode("booster.control", _write(42, v6))
    assert decoded == {**v6, "schedule": {**v6["schedule"], **absent}}
    schedule = schedule_from_dict({"campaign_id": "c1", **decoded["schedule"]})
    assert (schedule.holdout_percent, schedule.measurement_ms) == (0, 0)
    latest = schedule_from_dict({"campaign_id": "c1", **control["schedule"]})
    assert (latest.holdout_percent, latest.measurement_ms) == (20, 259_200_000)
    summary = SAMPLES["booster.summaries"]
    v5 = {**summary, "schedule": {k: v for k, v in summary["schedule"].items() if k not in absent}}
    assert codec().decode("booster.summaries", _write(43, v5)) == {**v5, "schedule": {**v5["schedule"], **absent}}


def test_a_holdout_outcome_reads_as_other_to_a_version_3_reader() -> None:
    written = {**SAMPLES["booster.audience"], "outcome": "HOLDOUT"}
    newer, older = (parse_schema(strip_logical_types(json.loads(BY_ID[i].schema_path.read_text()))) for i in (47, 41))
    out = io.BytesIO()
    schemaless_writer(out, newer, written)
    assert schemaless_reader(io.BytesIO(out.getvalue()), newer, older) == {**written, "outcome": "OTHER"}
    v3 = {**SAMPLES["booster.audience"], "outcome": "FREQUENCY_CAP"}
    assert codec().decode("booster.audience", _write(41, v3)) == v3


def test_a_version_1_command_and_account_decode_with_no_quiet_hours() -> None:
    v1 = {k: v for k, v in SAMPLES["booster.commands"].items() if k != "send_after"}
    assert codec().decode("booster.commands", _write(11, v1)) == {**v1, "send_after": None}
    added = ("quiet_hours", "time_zone", "frequency_cap")
    account = {k: v for k, v in SAMPLES["account.channels"].items() if k not in added}
    decoded = codec().decode("account.channels", _write(3, account))
    assert decoded == {**account, "quiet_hours": [], "time_zone": "UTC", "frequency_cap": None}
    assert account_from_record("acct-1", decoded) == AccountChannels(
        "acct-1", frozenset({"EMAIL", "SMS"}), 1767225600000
    )
    latest = account_from_record("acct-1", SAMPLES["account.channels"])
    assert (latest.quiet_hours, latest.time_zone) == ((("SMS", 1260, 480),), "Europe/Paris")
    assert latest.frequency_cap == FrequencyCap(2, 168 * 3_600_000)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"time_zone": "Europe/Pariss"}, "'Europe/Pariss' is not an IANA time zone"),
        ({"quiet_hours": [{"channel": "SMS", "start": "9pm", "end": "08:00"}]}, "quiet hours of SMS: '9pm' is not"),
        (
            {"quiet_hours": [{"channel": "SMS", "start": "21:00", "end": "08:00"}] * 2},
            "quiet hours name a channel twice",
        ),
        ({"frequency_cap": {"max_boosters": 0, "window_hours": 24}}, "frequency cap 0 per 24 h: at least 1"),
        ({"frequency_cap": {"max_boosters": 1, "window_hours": 721}}, "in a window of 1 to 720 hours"),
    ],
)
def test_an_account_with_quiet_hours_that_make_no_sense_is_refused(change: dict[str, Any], words: str) -> None:
    with pytest.raises(DecodeError, match=re.escape(words)) as refused:
        account_from_record("acct-1", {**SAMPLES["account.channels"], **change})
    assert refused.value.kind == "bad_value"
