"""The fan-out's hand-rolled command encoding writes exactly the codec's bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from booster.schemas import codec
from booster.schemas.templates import OUTCOMES, CommandTemplate, OutcomeTemplate, avro_long, avro_string

text = st.text(max_size=40)
millis = st.integers(946_684_800_000, 4_102_444_799_999)


@settings(max_examples=300, deadline=None)
@given(
    ids=st.tuples(text, text, text, text, text, text, text),
    channel=st.sampled_from(["EMAIL", "SMS", "PUSH"]),
    deadline=millis,
    issued_at=millis,
)
def test_template_bytes_equal_the_codecs(ids: tuple[str, ...], channel: str, deadline: int, issued_at: int) -> None:
    command_id, booster_id, booster_name, campaign_id, account_id, contact_id, content_ref = ids
    record = {
        "command_id": command_id, "booster_id": booster_id, "booster_name": booster_name,
        "campaign_id": campaign_id, "account_id": account_id, "contact_id": contact_id, "channel": channel,
        "content_ref": content_ref, "deadline": deadline, "issued_at": issued_at,
    }  # fmt: skip
    template = CommandTemplate(
        booster_id=booster_id, booster_name=booster_name, campaign_id=campaign_id, account_id=account_id,
        channel=channel, content_ref=content_ref, deadline=deadline, issued_at=issued_at,
    )  # fmt: skip
    assert template.encode(command_id, contact_id) == codec().encode("booster.commands", record)


@settings(max_examples=300, deadline=None)
@given(
    ids=st.tuples(text, text, text, text),
    outcome=st.sampled_from(OUTCOMES),
    command_id=st.one_of(st.none(), text),
    deadline=millis,
    decided_at=millis,
    frequency_capped=st.booleans(),
)
def test_outcome_template_bytes_equal_the_codecs(
    ids: tuple[str, ...], outcome: str, command_id: str | None, deadline: int, decided_at: int, frequency_capped: bool
) -> None:
    booster_id, campaign_id, account_id, contact_id = ids
    record = {
        "contact_id": contact_id, "outcome": outcome, "command_id": command_id, "booster_id": booster_id,
        "campaign_id": campaign_id, "account_id": account_id, "deadline": deadline, "decided_at": decided_at,
        "frequency_capped": frequency_capped,
    }  # fmt: skip
    template = OutcomeTemplate(
        booster_id=booster_id, campaign_id=campaign_id, account_id=account_id, deadline=deadline,
        decided_at=decided_at, frequency_capped=frequency_capped,
    )  # fmt: skip
    encoded = template.encode(contact_id, outcome, command_id)
    assert encoded == codec().encode("booster.audience", record)
    assert codec().decode("booster.audience", encoded) == record


def test_the_outcome_symbols_are_the_schema_s() -> None:
    import json

    from booster.schemas.catalog import spec_for

    schema = json.loads(spec_for("booster.audience").schema_path.read_text())
    kind = next(f["type"] for f in schema["fields"] if f["name"] == "outcome")
    assert tuple(kind["symbols"]) == (*OUTCOMES, "OTHER")  # OTHER: what older readers get for a newer one


@given(st.integers(-(2**63), 2**63 - 1))
def test_avro_long_round_trips_through_fastavro(n: int) -> None:
    import io

    from fastavro import schemaless_reader

    assert schemaless_reader(io.BytesIO(avro_long(n)), "long", None) == n


@given(st.one_of(st.text(max_size=100), st.integers(60, 70).map(lambda n: "x" * n)))
def test_avro_string_round_trips_through_fastavro(s: str) -> None:
    import io

    from fastavro import schemaless_reader

    assert schemaless_reader(io.BytesIO(avro_string(s)), "string", None) == s
