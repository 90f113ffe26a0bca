"""Which records of a fetch may be processed (streams/fetches.py): only a fetch nothing overtook."""

from __future__ import annotations

from typing import Any, NamedTuple

from booster.streams import fetches
from booster.streams.offsets import OffsetLedger


class TP(NamedTuple):
    topic: str
    partition: int


class Record(NamedTuple):
    offset: int


A, B, CHANGELOG = TP("message.sent", 0), TP("message.sent", 1), TP("booster-recipients-changelog", 0)


def committing(tp: Any) -> bool:
    return bool(tp.topic != CHANGELOG.topic)


class World:
    def __init__(self) -> None:
        self.ledger = OffsetLedger()
        self.epochs: dict[Any, int] = {}
        self.generation = 1
        self.flow = True
        self.assigned = {A, B, CHANGELOG}
        for tp in (A, B):
            self.ledger.seeked(tp, 0)

    def issue(self, *active: Any) -> fetches.FetchTag:
        return fetches.tag(
            self.generation, active, self.assigned, lambda tp: self.epochs.get(tp, 0), self.ledger, committing
        )

    def returns(self, fetch: fetches.FetchTag, records: dict[Any, list[int]]) -> fetches.Admitted:
        return fetches.admit(
            fetch,
            {tp: [Record(o) for o in offsets] for tp, offsets in records.items()},
            generation=self.generation,
            flow_active=self.flow,
            assigned=self.assigned,
            epochs=lambda tp: self.epochs.get(tp, 0),
            ledger=self.ledger,
            committing=committing,
        )


def offsets(admitted: fetches.Admitted) -> dict[Any, list[int]]:
    return {tp: [r.offset for r in records] for tp, records in admitted.records.items()}


def test_a_fetch_nothing_overtook_is_admitted_and_feeds_the_ledger() -> None:
    w = World()
    admitted = w.returns(w.issue(A, B), {A: [0, 1], B: [3]})
    assert offsets(admitted) == {A: [0, 1], B: [3]} and admitted.dropped == {}
    account = w.ledger.account(B)
    assert account is not None and account.empty == [(0, 3)]  # the position skipped 0..2: no record there


def test_a_new_generation_a_stopped_flow_or_a_revoke_drops_every_committing_partition() -> None:
    for overtake in ("generation", "flow", "revoke"):
        w = World()
        fetch = w.issue(A, B, CHANGELOG)
        if overtake == "generation":
            w.generation = 2
        elif overtake == "flow":
            w.flow = False
        else:
            w.epochs[A] = w.epochs[B] = 1
            w.ledger.forget([A, B])
        admitted = w.returns(fetch, {A: [0], B: [0], CHANGELOG: [5]})
        assert offsets(admitted) == {CHANGELOG: [5]}, overtake  # Faust's recovery reads changelogs itself
        assert admitted.dropped == {A: 1, B: 1} and admitted.read_again == {}, overtake
        account = w.ledger.account(A)
        assert account is None or account.expected == 0, overtake


def test_a_seek_drops_only_its_partition() -> None:
    w = World()
    fetch = w.issue(A, B)
    w.ledger.seeking(A)
    w.ledger.seeked(A, 0)
    admitted = w.returns(fetch, {A: [7, 8], B: [0]})
    assert offsets(admitted) == {B: [0]} and admitted.dropped == {A: 2} and admitted.read_again == {}
    account = w.ledger.account(A)
    assert account is not None and account.empty == []  # 0..6 are not taken for offsets with no record


def test_a_fetch_issued_while_a_seek_is_under_way_never_counts() -> None:
    w = World()
    w.ledger.seeking(A)
    fetch = w.issue(A)
    w.ledger.seeked(A, 3)
    assert w.returns(fetch, {A: [9]}).dropped == {A: 1}


def test_records_of_a_partition_the_fetch_did_not_ask_for_are_read_again_from_the_first() -> None:
    """aiokafka returns every partition when it is asked for none; a partition paused meanwhile has
    no seek coming, so it is sought back to the first record dropped."""
    w = World()
    admitted = w.returns(w.issue(A), {A: [0], B: [4, 5]})
    assert offsets(admitted) == {A: [0]} and admitted.read_again == {B: 4}


def test_a_partition_no_longer_assigned_is_dropped_and_left_to_its_owner() -> None:
    w = World()
    fetch = w.issue(A, B)
    w.assigned = {A, CHANGELOG}
    admitted = w.returns(fetch, {A: [0], B: [0]})
    assert offsets(admitted) == {A: [0]} and admitted.dropped == {B: 1} and admitted.read_again == {}
