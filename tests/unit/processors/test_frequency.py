"""The frequency cap across campaigns: a rolling window on deadlines."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from booster.processors.frequency import (
    DAY_MS,
    MAX_CAP_WINDOW_MS,
    FrequencyCap,
    capped,
    outlived,
    pack_history,
    unpack_history,
    with_sent,
)

T0 = 1_767_225_600_000
ONE_A_DAY = FrequencyCap(1, DAY_MS)


def test_one_booster_a_day() -> None:
    history = ((T0, "a:booster"),)
    assert capped(history, "b:booster", T0 + DAY_MS - 1, ONE_A_DAY)
    assert not capped(history, "b:booster", T0 + DAY_MS, ONE_A_DAY)  # a day later: another window
    assert capped(history, "b:booster", T0 - DAY_MS + 1, ONE_A_DAY)  # an earlier deadline that fires later
    assert not capped(history, "a:booster", T0, ONE_A_DAY)  # its own send (a resumed fan-out)
    assert not capped((), "b:booster", T0, ONE_A_DAY)


def test_two_in_any_window_of_a_week() -> None:
    cap = FrequencyCap(2, 7 * DAY_MS)
    # one 6 days before and one 6 days after: no week holds all three
    apart = ((T0 - 6 * DAY_MS, "a"), (T0 + 6 * DAY_MS, "c"))
    assert not capped(apart, "b", T0, cap)
    close = ((T0 - 6 * DAY_MS, "a"), (T0 + 1 * DAY_MS - 1, "c"))  # the week from a's deadline holds all three
    assert capped(close, "b", T0, cap)


@settings(max_examples=300, deadline=None)
@given(
    deadlines=st.lists(st.integers(0, 60), max_size=6),
    deadline=st.integers(0, 60),
    max_boosters=st.integers(1, 3),
    window=st.integers(1, 20),
)
def test_capped_is_whether_some_window_holding_the_deadline_would_hold_too_many(
    deadlines: list[int], deadline: int, max_boosters: int, window: int
) -> None:
    """Against every window start, one by one."""
    history = tuple((d, f"b{i}") for i, d in enumerate(deadlines))
    fullest = max(sum(1 for d in deadlines if s <= d < s + window) for s in range(deadline - window + 1, deadline + 1))
    assert capped(history, "new", deadline, FrequencyCap(max_boosters, window)) == (fullest + 1 > max_boosters)


def test_history_is_a_set_packs_and_forgets_what_can_no_longer_count() -> None:
    history = with_sent((), [(T0, "a"), (T0 + 5, "b")])
    assert with_sent(history, [(T0, "a")]) == history  # read again by a catch-up
    assert unpack_history(pack_history(history)) == history
    assert unpack_history(pack_history(())) == ()
    assert outlived(history, T0 + MAX_CAP_WINDOW_MS) == ((T0 + 5, "b"),)
    assert outlived(history, T0 + 5 + MAX_CAP_WINDOW_MS) == ()
