"""What a worker may commit of each input partition: its own account of the offsets it has processed.

Faust's account (its acked offsets and gaps) commits records that were never processed:
- faust-streaming issue 606: a message still being processed at the committed offset is committed past
  when the ones after it are acked (its head check lets a gap of exactly one through);
- issue 596: after a rebalance, the fetch loop drops records between the committed offset and a read
  offset that a batch fetched before the seek moved on. Nothing ever acks them, so commits stall for
  ever, or, with one record dropped at the committed offset, go past it (seen: one `message.sent`
  lost across kill -9 restarts; commits stuck 8 records short after a worker joined);
- a message a stream skips during a rebalance is acked although its agent never saw it.

This account counts an offset as processed only when our handlers say its effects are written, and
as empty (a transaction marker, an aborted or compacted record) only when the fetches showed no record
there: the next record the position returned came after it. The commit point is the end of the run of
such offsets from the committed one. A record the run stops at for long, that the fetch loop handed on
and nobody is processing, was dropped on the way: it is read again (`lost`).

The same run is what the lag gate takes for "processed" (`processed`): never the highest offset seen,
which would pass over a record dropped below it.

A fetch is only evidence of what lies at the partition's position if nothing moved that position
while it was under way: each partition has a mark that changes when a seek starts, when it ends and
when the partition is forgotten (`mark`, None while a seek is under way). The consumer notes the mark
when it issues a fetch and feeds the ledger with what the fetch returned only if the mark is unchanged
(`booster.streams.fetches`); otherwise a fetch from before a seek would mark offsets it never read as
empty, and the commit point would jump past records nobody processed.

Pure: offsets in, offsets out; the caller passes the time.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field


@dataclass
class PartitionAccount:
    expected: int | None = None  # the offset the next fetched record should have, when known
    floor: int | None = None  # the first offset fetched since the position was last unknown
    empty: list[tuple[int, int]] = field(default_factory=list)  # [begin, end) spans holding no record
    done: set[int] = field(default_factory=set)
    held: dict[int, int] = field(default_factory=dict)  # offset -> handlers processing it now
    stuck: tuple[int, float] | None = None  # where the run stopped, and since when
    held_at: tuple[int, float] | None = None  # where the run stops at a held record, and since when
    base: int | None = None  # the last commit point handed out: everything below it is processed

    def run_end(self, head: int) -> int:
        """One past the run of done and empty offsets from `head`. Linear in both: an upstream that
        writes one transaction per record leaves a span (its marker) per record."""
        self.empty.sort()  # appended in fetch order; a read again after a seek may append older ones
        spans, i, end = self.empty, 0, head
        while True:
            if end in self.done:
                end += 1
                continue
            while i < len(spans) and spans[i][1] <= end:
                i += 1
            if i < len(spans) and spans[i][0] <= end:
                end = spans[i][1]
                continue
            return end

    def forget_below(self, offset: int) -> None:
        self.done = {o for o in self.done if o >= offset}
        # a record read again past a lost release: its first hold will never be released
        self.held = {o: n for o, n in self.held.items() if o >= offset}
        self.empty = [(max(b, offset), e) for b, e in self.empty if e > offset]


class OffsetLedger:
    """Per input partition (any hashable key: Faust's TP in the worker): what was fetched, what is being
    processed, what is done, and so what may be committed."""

    def __init__(self) -> None:
        self._partitions: dict[Hashable, PartitionAccount] = {}
        self._serial = 0  # of marks, ledger-wide: a partition forgotten and taken again never reuses one
        self._marks: dict[Hashable, int] = {}
        self._seeking: dict[Hashable, int] = {}  # seeks under way, per partition

    def partitions(self) -> list[Hashable]:
        return list(self._partitions)

    def account(self, tp: Hashable) -> PartitionAccount | None:
        return self._partitions.get(tp)

    def mark(self, tp: Hashable) -> int | None:
        """What a fetch issued now must still find when it returns to count (None: a seek of `tp` is
        under way, and no fetch issued now can count)."""
        return None if self._seeking.get(tp) else self._marks.get(tp, 0)

    def _new_mark(self, tp: Hashable) -> None:
        self._serial += 1
        self._marks[tp] = self._serial

    def seeking(self, tp: Hashable) -> None:
        """A seek of `tp` starts: what fetches issued before it return no longer counts, nor what a
        fetch issued before the seek's `seeked`."""
        self._new_mark(tp)
        self._seeking[tp] = self._seeking.get(tp, 0) + 1

    def seeked(self, tp: Hashable, offset: int | None) -> None:
        """The fetch position of `tp` was set to `offset` (None: unknown, or the broker's reset policy
        decides): the end of a `seeking`."""
        account = self._partitions.setdefault(tp, PartitionAccount())
        account.expected = offset
        account.floor = offset
        account.stuck = None
        self._new_mark(tp)
        left = self._seeking.get(tp, 0) - 1
        if left > 0:
            self._seeking[tp] = left
        else:
            self._seeking.pop(tp, None)

    def fetched(self, tp: Hashable, offsets: Iterable[int]) -> None:
        """Records the broker returned for `tp`, in the order it returned them, by a fetch issued at
        the partition's current `mark`."""
        account = self._partitions.setdefault(tp, PartitionAccount())
        for offset in offsets:
            if account.expected is not None and offset > account.expected:
                account.empty.append((account.expected, offset))  # the position skipped them: no record
            if account.floor is None:
                account.floor = offset
            account.expected = offset + 1

    def hold(self, tp: Hashable, offset: int) -> None:
        account = self._partitions.get(tp)
        if account is not None:
            account.held[offset] = account.held.get(offset, 0) + 1

    def hold_all(self, tp: Hashable, offsets: Iterable[int]) -> None:
        """`hold` each of these offsets (a fetch of the batch lane)."""
        account = self._partitions.get(tp)
        if account is not None:
            held = account.held
            for offset in offsets:
                held[offset] = held.get(offset, 0) + 1

    def release_all(self, tp: Hashable, offsets: Iterable[int]) -> None:
        """`release` each of these offsets (a batch of the lane, written)."""
        for offset in offsets:
            self.release(tp, offset)

    def release(self, tp: Hashable, offset: int) -> None:
        """The effects of the record at `offset` are written."""
        account = self._partitions.get(tp)
        if account is None:
            return  # revoked meanwhile: its next owner reads it again from the committed offset
        left = account.held.get(offset, 1) - 1
        if left > 0:
            account.held[offset] = left
        else:
            account.held.pop(offset, None)
        account.done.add(offset)

    def is_done(self, tp: Hashable, offset: int) -> bool:
        account = self._partitions.get(tp)
        return account is not None and offset in account.done

    def commit_point(self, tp: Hashable, committed: int | None) -> int | None:
        """One past the run of done and empty offsets from the committed one (from the first offset
        fetched when nothing is committed); None when it would not move the committed offset on. What
        lies below it is forgotten: the caller commits it (and a commit that failed is made again from
        the same point)."""
        found = self._run(tp, committed)
        if found is None:
            return None
        account, head, end = found
        moves = end > committed if committed is not None else end > head or account.base is not None
        if not moves:
            return None
        account.forget_below(end)
        account.base = end
        return end

    def processed(self, tp: Hashable, committed: int | None) -> int | None:
        """The offset up to which every record of `tp` is processed, by this ledger and the group's
        `committed` offset: the end of the contiguous run, never the highest offset done. None when
        the ledger has no account of `tp` (the committed offset is all there is)."""
        found = self._run(tp, committed)
        return None if found is None else found[2]

    def _run(self, tp: Hashable, committed: int | None) -> tuple[PartitionAccount, int, int] | None:
        """The partition's account, where its run of done and empty offsets starts (the committed
        offset, or the last commit point handed out when that is further) and where it ends."""
        account = self._partitions.get(tp)
        if account is None:
            return None
        starts = [o for o in (committed, account.base) if o is not None]
        head = max(starts) if starts else account.floor
        return None if head is None else (account, head, account.run_end(head))

    def lost(self, tp: Hashable, committed: int | None, read: int | None, now: float, grace: float) -> int | None:
        """The offset to read `tp` again from, when its commits have stopped at a record that was
        fetched and that no handler is processing: for `grace` seconds once the fetch loop handed it on
        or dropped it (`read`, the last offset that loop handled, is at or past it), for six times that
        otherwise (a fetch loop held back by a busy agent hands it on late; one that dropped it without
        moving its read offset never will). Records reach a handler in order and within moments of
        being handed on, so it was dropped on the way, whether or not records come after it. None
        otherwise."""
        found = self._run(tp, committed)
        if found is None:
            return None
        account, _, stop = found
        fetched = account.expected is not None and stop < account.expected
        if stop in account.held or not fetched:
            account.stuck = None
            return None
        if account.stuck is None or account.stuck[0] != stop:
            account.stuck = (stop, now)
            return None
        handed_on = read is not None and read >= stop
        if now - account.stuck[1] < (grace if handed_on else 6 * grace):
            return None
        account.stuck = (stop, now)  # once more after another wait if the read does not fill it
        return stop

    def held_long(self, tp: Hashable, committed: int | None, now: float, after: float) -> int | None:
        """The offset where the commits stand still because a handler has held that record for
        `after` seconds or more (once per `after`), to read it again from there: an ingest batch ends
        within BOOSTER_RETRY_SECONDS, so a record held much longer is one whose release was lost (a
        handler interrupted by a rebalance), and its partition's commits, and the lag gate on them,
        would stand still for ever. Reading it again is safe: every handler is idempotent (folds keep
        the earliest facts, a tick of a fired booster does nothing), and the copy read again, once
        done, moves the commits on. None otherwise."""
        found = self._run(tp, committed)
        if found is None:
            return None
        account, _, stop = found
        if stop not in account.held:
            account.held_at = None
            return None
        if account.held_at is None or account.held_at[0] != stop:
            account.held_at = (stop, now)
            return None
        if now - account.held_at[1] < after:
            return None
        account.held_at = (stop, now)
        return stop

    def forget(self, tps: Iterable[Hashable]) -> None:
        """The partitions were revoked: their accounts go, and fetches issued before no longer count."""
        for tp in tps:
            self._partitions.pop(tp, None)
            self._new_mark(tp)
