"""Fakes at the shell's boundaries (cosmicpython style): where records are sent, the changelog flush,
the lag gate and the fan-out. The tables are the real in-memory `MemoryTable`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn

from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from booster.processors.audience import outcome_of, tally_of
from booster.processors.campaigns import CampaignPartition, cancelled_by
from booster.processors.summaries import PartitionSummary
from booster.schemas import codec
from booster.streams.fanout import FanoutResult
from booster.streams.records import Incoming, Retry
from booster.streams.store import PartitionStore


@dataclass
class Sent:
    key: bytes | None
    value: bytes | None
    partition: int | None
    offset: int = 0
    headers: list[tuple[str, bytes]] | None = None


class SentRecords:
    """A topic that keeps what is sent to it."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.sent: list[Sent] = []

    async def send(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.sent.append(Sent(key, value, partition, headers=headers))

    def decoded(self) -> list[dict[str, Any]]:
        return [codec().decode(self.topic, s.value) for s in self.sent]


class Flushes:
    """The changelog sink: flushes counted, forwarded records kept (on the broker once flushed)."""

    def __init__(self) -> None:
        self.count = 0
        self.failures = 0  # this many flushes fail next, as a producer that gave up does
        self.forwarded: list[tuple[str, int, bytes | None, bytes | None, int]] = []
        self._unflushed: list[tuple[str, int, bytes | None, bytes | None, int]] = []

    def forward(self, topic: str, partition: int, key: bytes | None, value: bytes | None, timestamp_ms: int) -> None:
        self._unflushed.append((topic, partition, key, value, timestamp_ms))

    async def flush(self) -> None:
        if self.failures:
            self.failures -= 1
            raise KafkaTimeoutError()
        self.count += 1
        self.forwarded += self._unflushed
        self._unflushed = []


class Gate:
    """A lag gate whose lag the test sets."""

    def __init__(self) -> None:
        self.lag: dict[TopicPartition, int] = {}
        self.snapshots = 0

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.snapshots += 1
        return dict.fromkeys(tps, 0)

    async def lagging(
        self, tps: list[TopicPartition], ends: dict[TopicPartition, int] | None = None, committed_age: float = 0.0
    ) -> dict[TopicPartition, int]:
        return {tp: n for tp, n in self.lag.items() if tp in tps and n > 0}

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        pass


class Fanout:
    """Counts the eligible rows it is asked to fan out, as the real one would send them."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, int]] = []
        self.cancelled_at: dict[tuple[str, int], int | None] = {}  # per run: the cancel it followed
        self.forgotten: list[tuple[str, int]] = []  # boosters whose progress got a tombstone
        self.outcomes: dict[int, list[Sent]] = {}  # per partition: its booster.audience, as written

    async def run(
        self,
        *,
        state: CampaignPartition,
        partition: int,
        recipients: PartitionStore,
        contacts: PartitionStore,
        history: PartitionStore,
        now: int,
    ) -> FanoutResult:
        from booster.streams.audience import decide_rows

        assert state.schedule is not None
        self.runs.append((state.schedule.campaign_id, partition))
        self.cancelled_at[(state.schedule.campaign_id, partition)] = cancelled_by(state)
        deadline = state.schedule.deadline
        rows = list(decide_rows(recipients, contacts, state.schedule, deadline, issued_at=deadline))
        tally = tally_of(d for _, d, _, _ in rows)
        summary = PartitionSummary(state.schedule.campaign_id, partition, 1, state.schedule, None, tally)
        written = self.outcomes.setdefault(partition, [])
        start = len(written)
        for contact_id, decision, _, _ in rows:
            if (outcome := outcome_of(decision)) is not None:
                record = {
                    "contact_id": contact_id, "outcome": outcome, "command_id": None,
                    "booster_id": state.schedule.booster_id, "campaign_id": state.schedule.campaign_id,
                    "account_id": state.schedule.account_id, "deadline": deadline, "decided_at": now,
                }  # fmt: skip
                written.append(Sent(None, codec().encode("booster.audience", record), partition, len(written)))
        return FanoutResult(summary, tally.audience, (start, len(written)))

    async def read_outcomes(
        self, partition: int, start: int | None, end: int | None, fold: Callable[[list[Any]], None]
    ) -> None:
        written = self.outcomes.get(partition, [])
        fold(written[start or 0 : len(written) if end is None else end])

    async def release(self, partitions: set[int]) -> None:
        pass

    async def forget(self, campaign_id: str, partition: int) -> None:
        self.forgotten.append((campaign_id, partition))


def incoming(topic: str, record: dict[str, Any], *, key: str | bytes | None = None, partition: int = 0, offset: int = 0,
             timestamp_ms: int = 1_767_225_600_000, value: bytes | None = None,
             read_from: str | None = None) -> Incoming:  # fmt: skip
    """A consumed record of a contract topic, encoded as an upstream producer would; `read_from` is the
    topic it was read from when that is not the topic whose schema it has (launches-by-account)."""
    from booster.schemas import spec_for

    if key is None:
        key = str(record[spec_for(topic).key_field or "contact_id"])
    raw_key = key.encode() if isinstance(key, str) else key
    raw_value = codec().encode(topic, record) if value is None else value
    source = read_from or topic
    return Incoming(source, f"t.{source}", partition, offset, raw_key, raw_value, timestamp_ms)


class GaveUp(BaseException):
    """What `no_patience` raises where the worker would exit (a BaseException, as an exit is not an
    error a handler may catch)."""


def gave_up(what: str, exc: BaseException) -> NoReturn:
    raise GaveUp(what, exc)


class Sleeps:
    """The backoff's sleeps, recorded instead of slept."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def retry(seconds: float = 30.0) -> tuple[Retry, Sleeps]:
    sleeps = Sleeps()
    return Retry(seconds, gave_up, sleeps), sleeps
