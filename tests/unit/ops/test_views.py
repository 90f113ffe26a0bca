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
