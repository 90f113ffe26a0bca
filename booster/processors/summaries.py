"""A booster's per-partition summaries merged into its one final report (R7, R8, R9, R11)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from booster.processors.audience import Mark, Tally, full_exclusions
from booster.processors.boosters import ReasonCode, Report, Schedule, Status


@dataclass(frozen=True, slots=True)
class PartitionSummary:
    """What one partition's fan-out did for a booster."""

    campaign_id: str
    partition: int
    partitions: int
    schedule: Schedule
    cancelled_at: int | None
    tally: Tally
    cancel_reason: ReasonCode | None = None  # why the booster's decision called it off


@dataclass(frozen=True, slots=True)
class SummaryState:
    """The summaries of a booster received so far; `done` once its final report was made (the parts
    are dropped then, and later duplicates change nothing). `deadline`, the booster's, dates the done
    marker for its retention (`retention.summaries_expired`); None in markers kept by older workers."""

    parts: Mapping[int, PartitionSummary] = field(default_factory=dict)
    done: bool = False
    deadline: int | None = None


def evolve_summaries(state: SummaryState | None, summary: PartitionSummary) -> tuple[SummaryState, Report | None]:
    """The state with one more summary, and the final report if this summary completed the booster.

    The first summary of a partition counts; a duplicate (a replayed transaction's) is ignored.
    """
    s = state or SummaryState()
    if s.done or summary.partition in s.parts:
        return s, None
    parts = {**s.parts, summary.partition: summary}
    report = final_report(parts.values())
    if report is not None:
        return SummaryState(done=True, deadline=summary.schedule.deadline), report
    return SummaryState(parts), None


def missing_summaries(state: SummaryState, now: int, allowed_lateness_ms: int, after_ms: int) -> int:
    """How many partitions of a booster have sent no summary `after_ms` after its deadline plus the
    allowed lateness while others have (0 when it is complete, or not that late): partitions whose
    fan-out nobody ran, whose own state may not even say that it is due."""
    if state.done or not state.parts:
        return 0
    first = next(iter(state.parts.values()))
    if now < first.schedule.deadline + allowed_lateness_ms + after_ms:
        return 0
    return max(0, first.partitions - len(state.parts))


CALLED_OFF = {
    ReasonCode.CANCEL_REQUESTED: "cancelled before its window expired",
    ReasonCode.FULL_OPEN_RATE: "every recipient of the original campaign opened it (100% open rate)",
    ReasonCode.CHANNEL_REVOKED: "the account's access to the booster's channel was revoked before the deadline",
}


def final_report(summaries: Iterable[PartitionSummary]) -> Report | None:
    """The booster's final report once every partition has reported, else None.

    Duplicated summaries of a partition count once. Called off by the booster's decision (R9 cancelled,
    R15 channel revoked, R7 100 % open rate), R7 empty audience, else SENT (R8).
    """
    by_partition: dict[int, PartitionSummary] = {}
    for s in summaries:
        by_partition.setdefault(s.partition, s)
    if not by_partition:
        return None
    first = next(iter(by_partition.values()))
    if len(by_partition) < first.partitions:
        return None
    total = Tally()
    for s in by_partition.values():
        total = total.merge(s.tally)
    # R13: every partition followed the one decision; a summary of an older worker has cancelled_at only
    reasons = [
        s.cancel_reason or ReasonCode.CANCEL_REQUESTED
        for s in by_partition.values()
        if s.cancel_reason is not None or s.cancelled_at is not None
    ]
    sch = first.schedule

    def report(status: Status, code: ReasonCode | None, reason: str | None, audience: int, billable: int) -> Report:
        return Report(
            sch.booster_id,
            sch.booster_name,
            sch.campaign_id,
            sch.account_id,
            status,
            reason,
            sch.deadline,
            audience,
            full_exclusions(total.excluded),
            billable,
            reason_code=code,
        )

    if reasons:
        return report("CANCELLED", reasons[0], CALLED_OFF.get(reasons[0], "cancelled"), 0, 0)
    if total.audience == 0:
        return report(
            "CANCELLED",
            ReasonCode.EMPTY_AUDIENCE,
            "the audience came out empty: every recipient engaged or was excluded",
            0,
            0,
        )
    return replace(
        report("SENT", None, None, total.audience, total.audience),
        boosted_despite_machine_open=total.marked(Mark.MACHINE_OPEN),
        boosted_despite_scanner_click=total.marked(Mark.SCANNER_CLICK),
        deferred=total.marked(Mark.DEFERRED),
    )
