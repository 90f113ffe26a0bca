"""The operators' views rendered from report rows, without a broker."""

from __future__ import annotations

from typing import Any

from booster.ops.views import render_boosters
from tests.samples import SAMPLES


def _row(**fields: Any) -> dict[str, Any]:
    return {**SAMPLES["booster.reports"], "when": "-", "time_left_ms": None, **fields}


def test_boosters_show_the_reason_code_with_the_reason() -> None:
    text = render_boosters([_row(), _row(campaign_id="v1", reason="old words", reason_code=None), _row(reason=None)])
    lines = text.splitlines()
    assert lines[1].endswith("Booster for X (CANCEL_REQUESTED: cancelled before its window expired)")
    assert lines[2].endswith("Booster for X (old words)")  # a version 1 report has no code
    assert lines[3].endswith("Booster for X")


def test_a_tombstone_tails_as_a_null_value_without_an_error() -> None:
    from aiokafka.structs import ConsumerRecord

    from booster.ops.clients import decode_record

    tombstone = ConsumerRecord("t", 0, 7, 1767225600000, 0, b"c1", None, None, 2, -1, ())
    tailed = decode_record("booster.fanout-progress", tombstone)
    assert (tailed.key, tailed.value, tailed.error, tailed.offset) == ("c1", None, None, 7)
