"""The campaign's verification of a booster whose facts reached the broker only after its deadline's
snapshot could be taken: the engine may have counted any of them, and the check must still catch a
recipient whose outcome no choice of them explains."""

from __future__ import annotations

from typing import Any

from booster.processors.boosters import booster_id_of, command_id_of
from tests.campaign.expected import Expected, Written, admissible, check, expected_of
from tests.campaign.plan import BoosterPlan, Fact, Timing, make_plan


def a_sent_booster() -> BoosterPlan:
    for seed in range(100):
        plan = make_plan(
            seed,
            1_700_000_000_000,
            Timing(60.0, 60.0),
            boosters_per_minute=3,
            recipients=(60, 80),
            faults_per_minute=0,
            fault_kinds=("kill9",),
        )
        for b in plan.boosters:
            if b.cancel is None and expected_of(b, counted(b), cancelled=False).status == "SENT":
                return b
    raise AssertionError("no seed gave a booster that is sent")


def counted(b: BoosterPlan) -> list[Fact]:
    return [f for f in b.facts if not f.aborted]


def written_as(b: BoosterPlan, expected: Expected) -> Written:
    """What an engine that decided `expected` would have written."""
    booster_id = booster_id_of(b.campaign_id)
    report: dict[str, Any] = {
        "campaign_id": b.campaign_id,
        "status": expected.status,
        "reason_code": expected.reason_code,
        "audience": len(expected.audience),
        "billable": len(expected.audience),
        "excluded": dict(expected.excluded),
    }
    commands = [{"command_id": command_id_of(booster_id, c), "contact_id": c} for c in sorted(expected.audience)]
    outcomes = [{"contact_id": c, "outcome": o} for c, o in expected.outcomes.items()]
    return Written({booster_id: commands}, {b.campaign_id: report}, {booster_id: outcomes})


def split(b: BoosterPlan) -> tuple[list[Fact], list[Fact]]:
    """The booster's facts that decide an outcome when they come late: each recipient's engagement."""
    facts = counted(b)
    late = [f for f in facts if f.topic in ("message.opened", "message.clicked", "message.delivered")][:12]
    assert len(late) >= 4
    return [f for f in facts if all(f is not g for g in late)], late


def test_an_engine_that_counted_some_of_the_late_facts_is_verified() -> None:
    b = a_sent_booster()
    on_time, late = split(b)
    engine_read = late[::2]
    written = written_as(b, expected_of(b, on_time + engine_read, cancelled=False))
    facts = admissible(b, on_time, late, written)
    assert facts is not None
    assert check(b, expected_of(b, facts, cancelled=False), written, 4) == []


def test_a_recipient_no_choice_of_late_facts_explains_is_a_violation() -> None:
    b = a_sent_booster()
    on_time, late = split(b)
    expected = expected_of(b, on_time, cancelled=False)
    # the engine left out a recipient it had no late fact of
    touched = {f.value["contact_id"] for f in late}
    wronged = next(c for c in sorted(expected.audience) if c not in touched)
    expected.audience.discard(wronged)
    expected.outcomes[wronged] = "OPENED"
    written = written_as(b, expected)
    facts = admissible(b, on_time, late, written)
    assert facts is not None
    problems = check(b, expected_of(b, facts, cancelled=False), written, 4)
    assert any("got no command" in p for p in problems), problems


def test_without_late_facts_the_check_is_the_plain_one() -> None:
    b = a_sent_booster()
    written = written_as(b, expected_of(b, counted(b), cancelled=False))
    assert admissible(b, counted(b), [], written) == counted(b)
