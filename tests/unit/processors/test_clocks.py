from booster.processors.clocks import WINDOW_MS, ClockWindow, observe_clock, skewed


def test_the_window_keeps_the_largest_amount_ahead() -> None:
    w = observe_clock(None, record_ms=1_000, now=5_000)
    assert w == ClockWindow(5_000, -4_000)
    w = observe_clock(w, record_ms=9_000, now=6_000)
    assert w == ClockWindow(5_000, 3_000)
    same = observe_clock(w, record_ms=6_000, now=7_000)
    assert same is w


def test_a_new_window_starts_after_a_minute() -> None:
    w = observe_clock(None, record_ms=100_000, now=1_000)
    later = observe_clock(w, record_ms=1_000 + WINDOW_MS - 50, now=1_000 + WINDOW_MS)
    assert later == ClockWindow(1_000 + WINDOW_MS, -50)


def test_skewed_only_past_the_allowed_lateness() -> None:
    assert not skewed(ClockWindow(0, 60_000), allowed_lateness_ms=60_000)
    assert skewed(ClockWindow(0, 60_001), allowed_lateness_ms=60_000)
    assert not skewed(ClockWindow(0, -3_600_000), allowed_lateness_ms=60_000)  # old records: lag, not skew
