"""The worker's own account of what it may commit (streams/offsets.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from booster.streams.offsets import OffsetLedger

TP = ("t", 0)


def ledger_at(committed: int | None, fetched: list[int], done: list[int] = ()) -> OffsetLedger:  # type: ignore[assignment]
    ledger = OffsetLedger()
    ledger.seeked(TP, committed)
    ledger.fetched(TP, fetched)
    for offset in done:
        ledger.hold(TP, offset)
        ledger.release(TP, offset)
    return ledger


def test_a_record_in_flight_at_the_committed_offset_is_never_committed_past() -> None:
    """faust-streaming issue 606: Faust commits 2590 here."""
    ledger = ledger_at(2585, list(range(2585, 2590)), done=[2586, 2587, 2588, 2589])
    ledger.hold(TP, 2585)
    assert ledger.commit_point(TP, 2585) is None
    ledger.release(TP, 2585)
    assert ledger.commit_point(TP, 2585) == 2590


def test_markers_and_aborted_records_the_position_skipped_are_committed_past() -> None:
    # a marker at the committed offset, two records, markers or aborted records at 13..15, a record
    ledger = ledger_at(10, [11, 12, 16], done=[11, 12, 16])
    assert ledger.commit_point(TP, 10) == 17


def test_a_marker_is_known_only_from_what_the_position_skipped() -> None:
    # the same offsets done, but 10 was fetched: a real record, never processed
    ledger = ledger_at(10, [10, 11, 12], done=[11, 12])
    assert ledger.commit_point(TP, 10) is None


def test_nothing_committed_starts_at_the_first_fetched_record() -> None:
    ledger = ledger_at(None, [5, 6, 7], done=[6, 7])
    assert ledger.commit_point(TP, None) is None
    ledger.release(TP, 5)
    assert ledger.commit_point(TP, None) == 8


def test_what_is_committed_is_forgotten_and_the_walk_goes_on_from_there() -> None:
    ledger = ledger_at(0, [0, 1, 3, 4, 6], done=[0, 1, 4])
    assert ledger.commit_point(TP, 0) == 3  # 2 holds no record
    account = ledger.account(TP)
    assert account is not None and account.done == {4} and account.empty == [(5, 6)]
    ledger.release(TP, 3)
    assert ledger.commit_point(TP, 3) == 6


def test_a_record_nobody_processes_while_later_ones_are_done_is_read_again_after_the_grace() -> None:
    ledger = ledger_at(616, list(range(616, 640)), done=list(range(624, 640)))
    assert ledger.lost(TP, 616, 639, now=100.0, grace=20.0) is None  # first seen stuck
    assert ledger.lost(TP, 616, 639, now=119.0, grace=20.0) is None
    assert ledger.lost(TP, 616, 639, now=120.0, grace=20.0) == 616
    assert ledger.lost(TP, 616, 639, now=121.0, grace=20.0) is None  # once per grace


def test_a_record_being_processed_or_not_fetched_yet_is_never_lost() -> None:
    held = ledger_at(10, [10, 11], done=[11])
    held.hold(TP, 10)
    unfetched = ledger_at(10, [8, 9])  # the position is at 10: nothing to read again
    for ledger in (held, unfetched):
        for now in (0.0, 100.0, 200.0):
            assert ledger.lost(TP, 10, 11, now, grace=20.0) is None


def test_a_record_the_fetch_loop_has_not_handed_on_is_read_again_only_after_six_graces() -> None:
    # fetched, and Faust's fetch loop waits on a full stream queue behind a busy agent, or dropped it
    # without moving its read offset
    ledger = ledger_at(10, [10, 11, 12])
    for now in (0.0, 20.0, 119.0):
        assert ledger.lost(TP, 10, 9, now, grace=20.0) is None
    assert ledger.lost(TP, 10, None, 120.0, grace=20.0) == 10


def test_the_last_record_of_a_partition_dropped_on_the_way_is_read_again() -> None:
    ledger = ledger_at(41, [41])  # fetched and handed on, never held nor done, nothing after it
    assert ledger.lost(TP, 41, 41, now=0.0, grace=20.0) is None
    assert ledger.lost(TP, 41, 41, now=20.0, grace=20.0) == 41
    ledger.hold(TP, 41)
    assert ledger.lost(TP, 41, 41, now=100.0, grace=20.0) is None


def test_a_revoked_partition_is_forgotten_and_late_releases_are_ignored() -> None:
    ledger = ledger_at(0, [0, 1])
    ledger.hold(TP, 0)
    ledger.forget([TP])
    ledger.release(TP, 0)
    assert ledger.account(TP) is None and ledger.commit_point(TP, 0) is None


def partition_of(committed: int, steps: list[tuple[int, bool]]) -> tuple[list[int], list[int]]:
    """Record offsets from the committed one, each after a skip of offsets that hold no record, and
    those of them that are done."""
    records, done, offset = [], [], committed
    for skip, is_done in steps:
        offset += skip
        records.append(offset)
        if is_done:
            done.append(offset)
        offset += 1
    return records, done


STEPS = st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=25)


@given(st.integers(0, 20), STEPS, st.booleans())
def test_the_commit_point_never_passes_a_fetched_record_that_is_not_done(
    committed: int, steps: list[tuple[int, bool]], known: bool
) -> None:
    """Records are fetched in order from the committed offset (each after a skip of 0..3 offsets that
    hold no record), some are done; the commit point covers only done records and skipped offsets."""
    records, done = partition_of(committed, steps)
    ledger = ledger_at(committed if known else None, records, done)
    point = ledger.commit_point(TP, committed)
    if point is None:
        return
    head = committed if known or not records else min(committed, records[0])
    assert point > committed
    assert not [r for r in records if head <= r < point and r not in done]
    assert point <= (records[-1] + 1 if records else committed)


@given(st.integers(0, 20), STEPS, st.integers(0, 40))
def test_reading_again_after_a_seek_changes_no_commit_point(
    committed: int, steps: list[tuple[int, bool]], back: int
) -> None:
    """A partition read again from any offset (the repair's seek) knows the same records and spans."""
    records, done = partition_of(committed, steps)
    once = ledger_at(committed, records, done)
    twice = ledger_at(committed, records, done)
    again = committed + back
    twice.seeked(TP, again)
    twice.fetched(TP, [r for r in records if r >= again])
    assert twice.commit_point(TP, committed) == once.commit_point(TP, committed)


def test_a_span_per_record_of_a_transactional_upstream_is_walked_once() -> None:
    # one transaction per record: record, marker, record, marker, ...
    records = list(range(0, 20_000, 2))
    ledger = ledger_at(0, records, done=records)
    assert ledger.commit_point(TP, 0) == records[-1] + 1


def test_a_record_held_at_the_commit_point_for_long_is_read_again_and_its_copy_moves_the_commits() -> None:
    """A release lost to a rebalance held the commits (and a lag gate) still for ever, in silence."""
    ledger = ledger_at(10, [10, 11], done=[11])
    ledger.hold(TP, 10)
    assert ledger.held_long(TP, 10, now=0.0, after=120.0) is None  # first seen
    assert ledger.held_long(TP, 10, now=119.0, after=120.0) is None
    assert ledger.held_long(TP, 10, now=120.0, after=120.0) == 10
    assert ledger.held_long(TP, 10, now=121.0, after=120.0) is None  # once per wait
    assert ledger.held_long(TP, 10, now=240.0, after=120.0) == 10
    # read again from 10: the copy is held and done; the first hold is never released
    ledger.seeked(TP, 10)
    ledger.fetched(TP, [10, 11])
    ledger.hold(TP, 10)
    ledger.release(TP, 10)
    assert ledger.commit_point(TP, 10) == 12
    account = ledger.account(TP)
    assert account is not None and account.held == {}  # the lost hold is forgotten with what is committed
    assert ledger.held_long(TP, 12, now=400.0, after=120.0) is None


def test_processed_is_the_contiguous_run_never_the_highest_offset_done() -> None:
    """Committed 100, record 149 done, 100..148 fetched and not done: processed up to 100, not 150."""
    ledger = ledger_at(100, list(range(100, 150)), done=[149])
    assert ledger.processed(TP, 100) == 100
    for offset in range(100, 149):
        ledger.hold(TP, offset)
        ledger.release(TP, offset)
    assert ledger.processed(TP, 100) == 150


def test_processed_goes_on_from_the_last_commit_point_and_the_group_s_offset() -> None:
    ledger = ledger_at(0, [0, 1, 2, 3], done=[0, 1])
    assert ledger.commit_point(TP, 0) == 2
    assert ledger.processed(TP, 0) == 2  # the commit is still under way: what it covers is processed
    assert ledger.processed(TP, 40) == 40  # another worker's commit before this one took the partition
    assert ledger.processed(("t", 9), 7) is None  # no account: the committed offset is all there is


def test_a_failed_commit_is_made_again_from_the_same_point() -> None:
    ledger = ledger_at(0, [0, 1], done=[0, 1])
    assert ledger.commit_point(TP, 0) == 2
    assert ledger.commit_point(TP, 0) == 2  # the committed offset did not move: commit it again
    assert ledger.commit_point(TP, 2) is None


def test_a_seek_changes_the_mark_and_a_mark_is_never_reused() -> None:
    ledger = OffsetLedger()
    before = ledger.mark(TP)
    ledger.seeking(TP)
    assert ledger.mark(TP) is None  # no fetch issued during a seek counts
    ledger.seeked(TP, 5)
    after = ledger.mark(TP)
    assert after is not None and after != before
    ledger.forget([TP])
    assert ledger.mark(TP) not in (before, after)
    ledger.seeking(TP)
    ledger.seeking(TP)
    ledger.seeked(TP, 6)
    assert ledger.mark(TP) is None  # one of two seeks still under way
    ledger.seeked(TP, 7)
    assert ledger.mark(TP) is not None
