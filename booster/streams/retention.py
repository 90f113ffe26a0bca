"""The sweep: every BOOSTER_SWEEP_INTERVAL_SECONDS, rows that outlived their retention
(`processors/retention.py`, `processors/frequency.py`) leave this worker's active partitions of
launch-decisions, account-boosters, summaries, contacts and sent-history, and their tombstones go to
the changelogs, so that compaction drops them too.

Each row is read and deleted with no await in between, so a handler that writes the same row meanwhile
is not undone; partitions are swept a slice at a time, letting the agents run between slices.

`FiredRows` deletes the recipient rows of boosters that fired, the same way, once the fan-outs are done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

from booster.processors.boosters import decision_expired
from booster.processors.campaigns import outlived as booster_outlived
from booster.processors.frequency import outlived, pack_history, unpack_history
from booster.processors.packing import (
    pack_launch_decision,
    pack_summaries,
    unpack_contact,
    unpack_launch_decision,
    unpack_live_booster,
    unpack_measuring,
    unpack_summaries,
)
from booster.processors.retention import contact_expired, measuring_expired, summaries_expired
from booster.processors.summaries import SummaryState
from booster.schemas.catalog import LAUNCHES_BY_ACCOUNT
from booster.streams.audience import delete_rows
from booster.streams.campaigns import CampaignStates
from booster.streams.history import MARKER
from booster.streams.metrics import Metrics
from booster.streams.records import Flushable, log_decision, now_ms, run_timer
from booster.streams.store import PartitionStore, Table, recipient_key, split_pending_key

log = logging.getLogger("booster.worker")

SLICE = 2000  # rows read between two yields to the agents
Verdict = bytes | bool | None  # of a row: True keeps it, None deletes it, bytes replace it


class Retention:
    def __init__(
        self,
        *,
        decided: Table,
        live: Table,
        summaries: Table,
        measurements: Table,
        contacts: Table,
        recipients: Table,
        sent_history: Table,
        campaigns: CampaignStates,
        sink: Flushable,
        metrics: Metrics,
        decision_retention_ms: int,
        contact_retention_ms: int,
        allowed_lateness_ms: int,
        partitions_of: Callable[[str], list[int]],
    ) -> None:
        self.decided = decided
        self.live = live
        self.summaries = summaries
        self.measurements = measurements
        self.contacts = contacts
        self.recipients = recipients
        self.sent_history = sent_history
        self.campaigns = campaigns
        self.sink = sink
        self.metrics = metrics
        self.decision_retention_ms = decision_retention_ms
        self.contact_retention_ms = contact_retention_ms
        self.allowed_lateness_ms = allowed_lateness_ms
        self.partitions_of = partitions_of  # this worker's active partitions of a topic (contract name)

    async def timer(self) -> None:
        async def sweep() -> None:
            await self.sweep()

        await run_timer("removing state past its retention", sweep)

    async def sweep(self) -> dict[str, int]:
        """One sweep of every active partition; the rows removed, per table."""
        tables = ("launch-decisions", "account-boosters", "summaries", "measurements", "contacts", "sent-history")
        removed = dict.fromkeys(tables, 0)
        for p in self.partitions_of(LAUNCHES_BY_ACCOUNT):
            ours = self._still_ours(LAUNCHES_BY_ACCOUNT, p)
            removed["launch-decisions"] += await self._sweep(self.decided.partition(p), self._decision, ours)
            removed["account-boosters"] += await self._sweep(self.live.partition(p), self._live_booster, ours)
        for p in self.partitions_of("booster.summaries"):
            ours = self._still_ours("booster.summaries", p)
            removed["summaries"] += await self._sweep(self.summaries.partition(p), self._summaries, ours)
        for p in self.partitions_of("booster.measurements"):
            ours = self._still_ours("booster.measurements", p)
            removed["measurements"] += await self._sweep(self.measurements.partition(p), self._measuring, ours)
        for p in self.partitions_of("booster.control"):
            ours = self._still_ours("booster.control", p)
            removed["contacts"] += await self._sweep(self.contacts.partition(p), self._contact_in(p), ours)
            removed["sent-history"] += await self._sweep(self.sent_history.partition(p), self._sent_history, ours)
        await self.sink.flush()
        for table, n in removed.items():
            if n:
                self.metrics.inc("booster_expired_rows_total", n, table=table)
        if any(removed.values()):
            log.info("removed state past its retention: %s", removed)
        return removed

    def _still_ours(self, topic: str, partition: int) -> Callable[[], bool]:
        return lambda: partition in self.partitions_of(topic)

    async def _sweep(
        self, store: PartitionStore, verdict: Callable[[bytes, bytes, int], Verdict], ours: Callable[[], bool]
    ) -> int:
        """Walk a partition a slice at a time, applying each row's verdict; the rows deleted. It stops
        when the partition is revoked meanwhile: its rows are another worker's to write then."""
        removed = 0
        after: bytes | None = None
        while ours():
            now = now_ms()
            changes: dict[bytes, bytes | None] = {}
            rows = _slice(store.items(after=after), SLICE)
            for key, value in rows:
                v = verdict(key, value, now)
                if v is None:
                    changes[key] = None
                    removed += 1
                elif isinstance(v, bytes):
                    changes[key] = v
            store.write(changes)  # in the same step as the reads above: no handler ran in between
            if len(rows) < SLICE:
                break
            after = rows[-1][0]
            await asyncio.sleep(0)
        return removed

    def _decision(self, key: bytes, value: bytes, now: int) -> Verdict:
        row = unpack_launch_decision(value)
        if row.moment is None:  # kept by an older worker: its retention starts now
            return pack_launch_decision(row.status, row.fingerprint or "", now, row.quiet_hours, row.frequency_cap)
        return None if decision_expired(row.moment, now, self.decision_retention_ms) else True

    def _live_booster(self, key: bytes, value: bytes, now: int) -> Verdict:
        booster = unpack_live_booster(split_pending_key(key)[1], value)
        return None if booster_outlived([booster], now, self.allowed_lateness_ms) else True

    def _summaries(self, key: bytes, value: bytes, now: int) -> Verdict:
        state = unpack_summaries(value)
        if state.done and state.deadline is None:  # kept by an older worker: its retention starts now
            return pack_summaries(SummaryState(done=True, deadline=now))
        return None if summaries_expired(state, now, self.decision_retention_ms) else True

    def _measuring(self, key: bytes, value: bytes, now: int) -> Verdict:
        state = unpack_measuring(value, key.decode())
        return None if measuring_expired(state, now, self.decision_retention_ms) else True

    def _sent_history(self, key: bytes, value: bytes, now: int) -> Verdict:
        """A contact's sends that can no longer count toward any cap go (the longest window)."""
        if key == MARKER:
            return True
        history = unpack_history(value)
        kept = outlived(history, now)
        if kept == history:
            return True
        return pack_history(kept) if kept else None

    def _contact_in(self, partition: int) -> Callable[[bytes, bytes, int], Verdict]:
        """The verdict on a partition's contacts: a row past its retention stays while a booster of the
        partition that has not fired has the contact among its recipients (the worker may be behind: a
        booster due days ago still counts a contact deleted before its deadline)."""
        recipients = self.recipients.partition(partition)
        unfired = [c for c, state in self.campaigns.in_partition(partition) if state.schedule and not state.fired]

        def verdict(key: bytes, value: bytes, now: int) -> Verdict:
            state = unpack_contact(value)
            lateness = self.allowed_lateness_ms
            if not contact_expired(state, now, retention_ms=self.contact_retention_ms, allowed_lateness_ms=lateness):
                return True
            contact_id = key.decode()
            in_flight = any(recipients.get(recipient_key(c, contact_id)) is not None for c in unfired)
            return True if in_flight else None

        return verdict


def _slice(rows: Iterator[tuple[bytes, bytes]], n: int) -> list[tuple[bytes, bytes]]:
    out = []
    for row in rows:
        out.append(row)
        if len(out) >= n:
            break
    return out


class FiredRows:
    """The recipient rows of boosters that fired, deleted after the fan-outs, a slice at a time while
    no fan-out runs: a worker firing several partitions or boosters in a row sends every command
    first (deleting a partition's rows costs about a tenth of its fan-out). A worker that stops first
    leaves them to the campaign's forget step (`deadlines.py`); ingest ignores a fired campaign's facts,
    so nothing reads or adds to them meanwhile."""

    def __init__(
        self,
        recipients: Table,
        sink: Flushable,
        *,
        fanning_out: Callable[[], bool],
        partitions_of: Callable[[str], list[int]],
    ) -> None:
        self.recipients = recipients
        self.sink = sink
        self.fanning_out = fanning_out
        self.partitions_of = partitions_of
        self._waiting: dict[tuple[str, int], int] = {}  # (campaign, partition): rows deleted so far

    def add(self, campaign_id: str, partition: int) -> None:
        self._waiting.setdefault((campaign_id, partition), 0)

    def waiting(self) -> int:
        return len(self._waiting)

    async def timer(self) -> None:
        await run_timer("deleting the rows of fired boosters", self.delete)

    async def delete(self) -> None:
        """Delete the waiting rows, yielding to the agents between slices and to any fan-out."""
        while self._waiting:
            if self.fanning_out():
                return  # the next run goes on
            (campaign_id, p), deleted = next(iter(self._waiting.items()))
            if p not in self.partitions_of("booster.control"):  # revoked: the new owner's rows now
                del self._waiting[(campaign_id, p)]
                continue
            removed = delete_rows(self.recipients.partition(p), campaign_id, limit=SLICE)
            deleted += removed
            if removed < SLICE:
                del self._waiting[(campaign_id, p)]
                log_decision("fired-rows-deleted", campaign_id, partition=p, rows=deleted)
            else:
                self._waiting[(campaign_id, p)] = deleted
            await self.sink.flush()
            await asyncio.sleep(0)
