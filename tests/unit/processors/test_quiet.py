"""Quiet hours in the recipient's local time, daylight-saving changes included."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booster.errors import BoosterError
from booster.processors.audience import deferred_until, explain_deferral
from booster.processors.events import ContactTimeZone
from booster.processors.packing import pack_contact, unpack_contact
from booster.processors.quiet import QuietHours, parse_clock, send_after, zone
from booster.processors.recipients import ContactState, evolve_contact, time_zone_at

MINUTE = 60_000
ZONES = ["Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "Pacific/Chatham", "UTC"]


def at(tz: str, *when: int, fold: int = 0) -> int:
    return int(datetime(*when, tzinfo=ZoneInfo(tz), fold=fold).timestamp() * 1000)  # type: ignore[misc, arg-type]


def local(ms: int, tz: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).isoformat()


EVENINGS = QuietHours(parse_clock("21:00"), parse_clock("08:00"), "Europe/Paris")


def test_inside_the_quiet_hours_the_command_waits_for_their_end_in_the_contacts_time_zone() -> None:
    # 19:00 UTC is 20:00 in Paris (allowed), 14:00 in New York (allowed), 06:00 in Sydney (quiet)
    issued = at("UTC", 2026, 11, 29, 19, 0)
    assert send_after(issued, EVENINGS, None) is None  # the account's zone, Paris
    assert send_after(issued, EVENINGS, "America/New_York") is None
    assert (
        local(send_after(issued, EVENINGS, "Australia/Sydney") or 0, "Australia/Sydney") == "2026-11-30T08:00:00+11:00"
    )
    # 21:30 in Kolkata (UTC+05:30): until 08:00 the next morning there
    kolkata = at("Asia/Kolkata", 2026, 11, 29, 21, 30)
    assert local(send_after(kolkata, EVENINGS, "Asia/Kolkata") or 0, "Asia/Kolkata") == "2026-11-30T08:00:00+05:30"
    # the edges: the start is quiet, the end is not
    assert send_after(at("Europe/Paris", 2026, 11, 29, 21, 0), EVENINGS, None) is not None
    assert send_after(at("Europe/Paris", 2026, 11, 29, 8, 0), EVENINGS, None) is None
    assert send_after(at("Europe/Paris", 2026, 11, 29, 7, 59), EVENINGS, None) == at("Europe/Paris", 2026, 11, 29, 8, 0)


def test_daylight_saving_changes() -> None:
    # Paris springs forward on 2026-03-29 at 02:00 (to 03:00): quiet hours ending at 02:30 end at the jump
    early = QuietHours(0, parse_clock("02:30"), "Europe/Paris")
    ends = send_after(at("Europe/Paris", 2026, 3, 29, 1, 0), early, None)
    assert ends is not None and local(ends, "Europe/Paris") == "2026-03-29T03:00:00+02:00"
    # New York falls back on 2026-11-01 at 02:00 (to 01:00): 01:10 comes twice, each waits for the 01:30 after it
    night = QuietHours(30, 90, "America/New_York")
    for fold, offset in ((0, "-04:00"), (1, "-05:00")):
        issued = at("America/New_York", 2026, 11, 1, 1, 10, fold=fold)
        ends = send_after(issued, night, None)
        assert ends is not None and local(ends, "America/New_York") == f"2026-11-01T01:30:00{offset}"
        assert ends - issued == 20 * MINUTE
    # evening quiet hours across the change: 22:00 the night before the spring change to 08:00, 9 hours later
    spring = send_after(at("Europe/Paris", 2026, 3, 28, 22, 0), EVENINGS, None)
    assert spring is not None and (spring - at("Europe/Paris", 2026, 3, 28, 22, 0)) == 9 * 60 * MINUTE
    # Sydney's change is in April and October (the southern hemisphere)
    sydney = send_after(at("Australia/Sydney", 2026, 10, 3, 23, 0), EVENINGS, "Australia/Sydney")
    assert sydney is not None and local(sydney, "Australia/Sydney") == "2026-10-04T08:00:00+11:00"


def test_no_quiet_hours_and_hours_within_one_day() -> None:
    assert send_after(at("UTC", 2026, 1, 1, 3, 0), None, None) is None
    assert send_after(at("UTC", 2026, 1, 1, 3, 0), QuietHours(600, 600), None) is None  # start == end: none
    lunch = QuietHours(parse_clock("12:00"), parse_clock("14:00"))
    assert send_after(at("UTC", 2026, 1, 1, 13, 0), lunch, None) == at("UTC", 2026, 1, 1, 14, 0)
    assert send_after(at("UTC", 2026, 1, 1, 14, 0), lunch, None) is None


@pytest.mark.parametrize("bad", ["9pm", "24:00", "21:60", "21:0", ":30", "2100"])
def test_a_time_of_day_is_hh_mm(bad: str) -> None:
    with pytest.raises(ValueError, match=r"HH:MM|time of day"):
        parse_clock(bad)


def test_an_unknown_time_zone_is_refused_with_its_name() -> None:
    with pytest.raises(BoosterError, match="'Mars/Olympus' is not an IANA time zone"):
        zone("Mars/Olympus")


def _quiet(ms: int, tz: str, quiet: QuietHours) -> bool:
    t = datetime.fromtimestamp(ms / 1000, ZoneInfo(tz))
    minute = t.hour * 60 + t.minute
    s, e = quiet.start_minute, quiet.end_minute
    return s != e and (s <= minute < e if s < e else minute >= s or minute < e)


@settings(max_examples=150, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    start=st.integers(0, 1439),
    end=st.integers(0, 1439),
    # whole minutes of 2026 around the changes: Europe and Sydney (late March, early April), Sydney
    # (early October), Europe and New York (late October, early November), and any day
    issued_minute=st.one_of(
        st.integers(29_573_280, 29_593_440),
        st.integers(29_845_440, 29_897_280),
        st.integers(29_453_760, 29_977_920),
    ),
)
def test_send_after_is_the_first_minute_out_of_the_quiet_hours(
    tz: str, start: int, end: int, issued_minute: int
) -> None:
    """Against a walk minute by minute (every offset of these zones is whole minutes)."""
    quiet = QuietHours(start, end, tz)
    issued = issued_minute * MINUTE
    got = send_after(issued, quiet, None)
    if not _quiet(issued, tz, quiet):
        assert got is None
        return
    expected = issued + MINUTE
    while _quiet(expected, tz, quiet):
        expected += MINUTE
    assert got == expected


def test_a_contacts_own_time_zone_as_of_the_deadline_else_the_accounts() -> None:
    deadline = at("UTC", 2026, 11, 29, 19, 0)  # 20:00 in Paris, 06:00 in Sydney, 14:00 in New York
    sydney = ContactState(time_zones=((deadline - 1000, "Australia/Sydney"),))
    assert deferred_until(None, EVENINGS, deadline=deadline, issued_at=deadline) is None  # Paris: 20:00
    waits = deferred_until(sydney, EVENINGS, deadline=deadline, issued_at=deadline)
    assert waits is not None and local(waits, "Australia/Sydney") == "2026-11-30T08:00:00+11:00"
    moved_later = ContactState(time_zones=((deadline - 1000, "Australia/Sydney"), (deadline + 1, "America/New_York")))
    assert deferred_until(moved_later, EVENINGS, deadline=deadline, issued_at=deadline) == waits  # R5
    # judged when the command is issued: a booster fired late, at 21:30 in Paris, waits too
    late = deadline + 90 * MINUTE
    assert deferred_until(None, EVENINGS, deadline=deadline, issued_at=late) == at("Europe/Paris", 2026, 11, 30, 8, 0)
    assert deferred_until(sydney, None, deadline=deadline, issued_at=deadline) is None  # no quiet hours
    words = explain_deferral(sydney, EVENINGS, deadline)
    assert "inside the quiet hours 21:00-08:00 (Australia/Sydney): its command waits until 2026-11-29T21:00:00" in words
    assert explain_deferral(None, EVENINGS, deadline) == ""


def test_time_zone_facts_fold_in_any_order_and_pack() -> None:
    facts = [
        ContactTimeZone("k", "Europe/Paris", 5),
        ContactTimeZone("k", "Asia/Tokyo", 9),
        ContactTimeZone("k", "UTC", 9),
    ]
    states = {
        evolve_contact(evolve_contact(evolve_contact(None, a), b), c) for a, b, c in itertools.permutations(facts)
    }
    assert len(states) == 1
    state = states.pop()
    assert time_zone_at(state, 4) is None and time_zone_at(state, 5) == "Europe/Paris"
    assert time_zone_at(state, 9) == "UTC"  # a tie: the greatest name, whatever came first
    assert unpack_contact(pack_contact(state)) == state
    both = replace(state, reachability=(("SMS", 3, False),))
    assert unpack_contact(pack_contact(both)) == both
