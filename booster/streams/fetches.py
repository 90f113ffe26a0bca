"""Which records of a fetch may be processed: only those of a fetch that nothing overtook while it was
under way.

The consumer's fetch loop asks the client for records and waits; meanwhile a rebalance can revoke
and assign partitions again, a seek can move a partition's position, and Faust can stop the flow. The
client may then hand back records fetched for the new assignment, or from the old position. Records
of such a fetch are not evidence of what lies at the partition's position any more: if they were
processed, a hole would open under them (the records the revoke dropped from the lane, or the ones
the seek went back to), and if the ledger were fed with them it would take the offsets they skipped
for offsets with no record. So each fetch is tagged when it is issued (`FetchTag`): the group's
generation, the partitions the loop actively fetches, each lane partition's epoch (bumped by a revoke)
and each partition's ledger mark (changed by a seek and a revoke). When it returns (`admit`), the
records of a partition count only if none of these changed and the flow is still on; the others are
dropped, and where nothing else will set the partition's position again, it is sought back to the
first record dropped (`Admitted.read_again`). What sets it again otherwise: a new assignment (the
client starts from the committed offset, and Faust seeks there before it resumes the flow), a stopped
flow (Faust seeks back to the committed offsets).

Seeks are not left to the marks alone: the consumer makes no seek while a fetch is under way and
issues no fetch while a seek is made (`compat.read_committed_consumer`). A fetch issued during a seek
could otherwise return records from the new position, after the seek, and dropping them would leave
nobody to read them again. The marks stay as the proof that no fetch overlapped a seek.

Pure: the caller passes what the consumer knows; only the standard library.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from booster.streams.offsets import OffsetLedger


@dataclass(frozen=True)
class FetchTag:
    """What was true when a fetch was issued."""

    generation: int
    active: frozenset[Hashable]  # the partitions the fetch asked for
    epochs: Mapping[Hashable, int]  # the lane's epoch of each assigned partition
    marks: Mapping[Hashable, int | None]  # the ledger's mark of each assigned committing partition


@dataclass
class Admitted:
    """A fetch's records split: what may be processed, and what must be read again from where."""

    records: dict[Any, Sequence[Any]] = field(default_factory=dict)
    dropped: dict[Any, int] = field(default_factory=dict)  # partition -> records dropped
    read_again: dict[Any, int] = field(default_factory=dict)  # partition -> offset to seek back to


def tag(
    generation: int,
    active: Collection[Hashable],
    assigned: Collection[Hashable],
    epochs: Callable[[Hashable], int],
    ledger: OffsetLedger,
    committing: Callable[[Hashable], bool],
) -> FetchTag:
    tps = {*active, *assigned}
    return FetchTag(
        generation,
        frozenset(active),
        {tp: epochs(tp) for tp in tps},
        {tp: ledger.mark(tp) for tp in tps if committing(tp)},
    )


def admit(
    fetch: FetchTag,
    records: Mapping[Any, Sequence[Any]],
    *,
    generation: int,
    flow_active: bool,
    assigned: Collection[Hashable],
    epochs: Callable[[Hashable], int],
    ledger: OffsetLedger,
    committing: Callable[[Hashable], bool],
) -> Admitted:
    """The records of a fetch tagged `fetch` that may be processed, now that it returned. Records of
    partitions that are not committing (changelogs: Faust's recovery reads them) always pass. Feeds
    the ledger with what the admitted fetches returned (`OffsetLedger.fetched`)."""
    admitted = Admitted()
    for tp, batch in records.items():
        if not committing(tp):
            admitted.records[tp] = batch
            continue
        if not batch:
            continue
        seek_moved = tp not in fetch.marks or fetch.marks[tp] is None or ledger.mark(tp) != fetch.marks[tp]
        revoked = tp not in fetch.epochs or epochs(tp) != fetch.epochs[tp]
        stale = generation != fetch.generation or not flow_active or tp not in assigned
        if not (seek_moved or revoked or stale or tp not in fetch.active):
            ledger.fetched(tp, [record.offset for record in batch])
            admitted.records[tp] = batch
            continue
        admitted.dropped[tp] = len(batch)
        if not (seek_moved or revoked or stale):  # not asked for (paused meanwhile): nobody seeks it back
            admitted.read_again[tp] = batch[0].offset
    return admitted
