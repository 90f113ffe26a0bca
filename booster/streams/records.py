"""What every agent shares: a record as it came in, its key check, the clock, the decision log, and
the guard that sends a record it cannot process to the dead-letter topic (G4) instead of stopping
its partition.

Bad input and broker trouble are told apart. A record that cannot be processed (undecodable, against
the contract, or one our code fails on) is dead-lettered and the partition goes on. A write the broker
does not take (a client that gave up: KafkaError, a connection or a timeout error) is no fault of the
record: it is retried with backoff for BOOSTER_RETRY_SECONDS, and then the worker exits with
EXIT_RETRY_LATER without acknowledging the record, as a kill -9 would, for its supervisor to restart
it; the restarted worker processes the record again from the last committed offset (the folds are
idempotent, broadcasts are kept once by their receivers, notices are deduplicated by id).

Records come in as raw bytes and are decoded by our codec: Faust's own serializers would ack a bad
record and crash the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeVar

from aiokafka.errors import KafkaError

from booster.errors import DecodeError, RegistryUnavailable
from booster.schemas import codec
from booster.streams.metrics import Metrics

log = logging.getLogger("booster.worker")
decisions = logging.getLogger("booster.decisions")

EXIT_RETRY_LATER = 75  # EX_TEMPFAIL: the broker did not take a write; restart the worker
MAX_BACKOFF_SECONDS = 10.0
T = TypeVar("T")


def is_broker_trouble(exc: BaseException) -> bool:
    """A failure of the infrastructure, not of the record: retry, never dead-letter. The schema registry
    is infrastructure too: a record whose writer schema it cannot hand out now is not a bad record."""
    return isinstance(exc, KafkaError | ConnectionError | TimeoutError | asyncio.TimeoutError | RegistryUnavailable)


def exit_for_restart(what: str, exc: BaseException) -> NoReturn:
    """End the worker at once, acknowledging nothing more: what is committed is what was done."""
    log.critical(
        "%s failed (%s: %s) for longer than BOOSTER_RETRY_SECONDS: exiting with %d without acknowledging it. "
        "Check the broker, then let the supervisor restart the worker (systemd Restart=on-failure, a "
        "Kubernetes restartPolicy); it resumes from the last committed offsets.",
        what,
        type(exc).__name__,
        exc,
        EXIT_RETRY_LATER,
    )
    logging.shutdown()
    os._exit(EXIT_RETRY_LATER)  # no graceful stop: it would commit the offsets of acknowledged records


def exit_fenced(what: str, exc: BaseException) -> NoReturn:
    """End a worker another one has fenced (it took the worker's partitions over while this one was
    frozen or cut off): at once, acknowledging nothing more, to rejoin the group."""
    log.critical(
        "%s: fenced (%s: %s); another worker owns the partition now. Exiting with %d without acknowledging "
        "anything more; the supervisor starts the worker again and it rejoins its group.",
        what,
        type(exc).__name__,
        exc,
        EXIT_RETRY_LATER,
    )
    logging.shutdown()
    os._exit(EXIT_RETRY_LATER)


async def give_up_after(
    seconds: float, what: str, wait: Awaitable[T], give_up: Callable[[str, BaseException], NoReturn]
) -> T:
    """`wait`, or `give_up` when the broker has not answered within `seconds`.

    The write given up on is cancelled but not waited for (as `asyncio.wait_for` would): a transaction
    cancelled half-way aborts itself, and aiokafka's abort waits for the broker for as long as it is
    away, so waiting for the cancellation would wait for the broker after all."""
    task = asyncio.ensure_future(wait)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        give_up(what, TimeoutError(f"no answer from the broker in {seconds:.0f} s"))
        raise AssertionError("give_up returned")
    return task.result()


class Retry:
    """Retries what the broker did not take, with backoff, for `seconds`; then `give_up`.

    `bounded` also bounds a wait that never ends, for writes that are only a wait for the broker: an
    idempotent aiokafka producer retries a produce request for as long as the broker is away, so a
    flush waits instead of failing. A handler is not bounded as a whole: it may rightly run long (a
    fan-out); the writes inside it are."""

    def __init__(
        self,
        seconds: float,
        give_up: Callable[[str, BaseException], NoReturn] = exit_for_restart,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.seconds = seconds
        self.give_up = give_up
        self.sleep = sleep

    async def __call__(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        return await self._attempts(what, attempt)

    async def bounded(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """As a call, and the worker gives up once `seconds` (and one more backoff) have passed."""
        seconds = self.seconds + min(self.seconds, MAX_BACKOFF_SECONDS)
        return await give_up_after(seconds, what, self._attempts(what, attempt), self.give_up)

    async def _attempts(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        waited, delay = 0.0, 0.5
        while True:
            try:
                return await attempt()
            except Exception as exc:
                if not is_broker_trouble(exc):
                    raise
                if waited + delay > self.seconds:
                    self.give_up(what, exc)
                log.warning("%s failed (%s: %s); retrying in %.1f s", what, type(exc).__name__, exc, delay)
                await self.sleep(delay)
                waited += delay
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)


async def send_batches(
    producer: Any, topic: str, partition: int, records: Iterable[tuple[bytes | None, bytes | None, int | None]]
) -> list[tuple[Any, int]]:
    """(key, value, timestamp) records to one partition, in as few batches as fit: a batch builder costs
    far less per record than send(). Each batch's delivery future, with its record count."""
    sent = []
    batch, count = producer.create_batch(), 0
    for key, value, timestamp in records:
        if batch.append(key=key, value=value, timestamp=timestamp) is None:
            sent.append((await producer.send_batch(batch, topic, partition=partition), count))
            batch, count = producer.create_batch(), 0
            batch.append(key=key, value=value, timestamp=timestamp)
        count += 1
    if count:
        sent.append((await producer.send_batch(batch, topic, partition=partition), count))
    return sent


@dataclass(frozen=True, slots=True)
class WorkerClock:
    """The worker's clock, in epoch milliseconds. A speed other than 1 is for soak tests only: from
    `anchor_ms` (a wall-clock instant) on, time runs `speed` times faster, so that weeks of deadlines
    and retention pass in minutes; the test's producers stamp their facts with the same clock."""

    speed: float = 1.0
    anchor_ms: int = 0

    def now(self) -> int:
        wall = time.time() * 1000
        return int(self.anchor_ms + (wall - self.anchor_ms) * self.speed)


_clock = WorkerClock()


def use_clock(clock: WorkerClock) -> None:
    """The worker's clock for the life of the process (set once, at the app's start)."""
    global _clock
    _clock = clock


def now_ms() -> int:
    return _clock.now()


# BOOSTER_MAX_RECORD_BYTES: a record larger than this is refused before it is decoded
_max_record_bytes = 1_000_000
# how much of a refused giant record's value its dead letter keeps: enough to tell what it was
TOO_LARGE_KEPT_BYTES = 1024


def use_record_limit(max_bytes: int) -> None:
    """The worker's largest record for the life of the process (set once, at the app's start)."""
    global _max_record_bytes
    _max_record_bytes = max_bytes


def contact_partition(contact_id: str, partitions: int) -> int:
    """The partition where a contact's state is kept: murmur2 of its id, as the contract says and as
    Java's and aiokafka's default partitioners pick it."""
    return (murmur2(contact_id.encode()) & 0x7FFFFFFF) % partitions


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2, the same value as aiokafka's (`aiokafka.partitioner.murmur2`) at about a third
    of its cost: four bytes at a time from `struct`, not one by one (every ingested fact hashes its
    contact)."""
    length = len(data)
    h = 0x9747B28C ^ length
    whole = length & ~3
    for (k,) in _WORDS.iter_unpack(data[:whole]):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    extra = length & 3
    if extra:
        if extra == 3:
            h ^= data[whole + 2] << 16
        if extra >= 2:
            h ^= data[whole + 1] << 8
        h = ((h ^ data[whole]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


_WORDS = struct.Struct("<I")


async def run_timer(what: str, body: Callable[[], Awaitable[None]]) -> None:
    """One run of a worker's timer: a failure is logged and the next run tries again, because an
    exception escaping a Faust timer crashes the whole worker."""
    try:
        await body()
    except KafkaError as exc:
        log.warning("%s failed (%s); trying again next time", what, exc)
    except Exception:
        log.exception("%s failed; trying again next time", what)


def log_decision(event: str, campaign_id: str, **fields: Any) -> None:
    """One searchable JSON line per booster decision."""
    decisions.info(json.dumps({"event": event, "campaign_id": campaign_id, **fields}, sort_keys=True))


class Topic(Protocol):
    """Where the shell sends records: a Faust topic, or a list in unit tests."""

    async def send(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any: ...


# a header a worker puts on a record it re-keys: when the original reached Kafka (epoch milliseconds, as
# decimal text), since the copy is stamped when it is written
ARRIVED_AT = "booster-arrived-at"


def _arrived_at(headers: Any) -> int | None:
    for name, value in headers.items() if isinstance(headers, dict) else headers or ():
        if name == ARRIVED_AT:
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


class Flushable(Protocol):
    async def flush(self) -> None: ...


class ClockWatch(Protocol):
    def observe(self, incoming: Incoming, now: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Incoming:
    """One consumed record: its contract topic (without the prefix), where it was, key and value bytes."""

    topic: str
    real_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    arrived_at_ms: int | None = None  # the ARRIVED_AT header of a re-keyed record

    @classmethod
    def of(cls, message: Any, contract_topic: str) -> Incoming:
        """From a Faust message (its timestamp is in seconds)."""
        return cls(
            contract_topic,
            message.topic,
            message.partition,
            message.offset,
            message.key,
            message.value,
            int(message.timestamp * 1000),
            _arrived_at(message.headers),
        )

    def arrived_at(self) -> int:
        """When the record, or the original of a re-keyed copy, reached Kafka."""
        return self.timestamp_ms if self.arrived_at_ms is None else self.arrived_at_ms

    @classmethod
    def of_record(cls, record: Any, contract_topic: str) -> Incoming:
        """From a record the consumer fetched (the batch lane; its timestamp is in milliseconds)."""
        return cls(
            contract_topic, record.topic, record.partition, record.offset, record.key, record.value, record.timestamp
        )

    def decode(self, internal: bool = False) -> dict[str, Any]:
        """The value; `internal`: a copy a worker wrote (re-routed), in the contract's own ids."""
        self.refuse_if_too_large()
        return codec().decode(self.topic, self.value, internal)

    def refuse_if_too_large(self) -> None:
        size = len(self.value or b"") + len(self.key or b"")
        if size > _max_record_bytes:
            raise DecodeError(
                f"the record is {size} bytes, over BOOSTER_MAX_RECORD_BYTES={_max_record_bytes} (its dead letter "
                f"keeps the first {TOO_LARGE_KEPT_BYTES} bytes of its value)",
                kind="too_large",
            )

    def key_text(self, record: dict[str, Any], field: str) -> str:
        """The record's key, which must be the UTF-8 of the value's `field` (the contract's keying)."""
        if not self.key:
            raise DecodeError("empty key", kind="bad_key")
        try:
            key = self.key.decode()
        except UnicodeDecodeError:
            raise DecodeError("key is not UTF-8", kind="bad_key") from None
        if key != record[field]:
            raise DecodeError(f"key {key!r} does not match {field} {record[field]!r}", kind="bad_key")
        return key


async def learn_schemas(batch: Iterable[Incoming], retry: Retry) -> None:
    """With a schema registry, the writer schemas of the records' ids not seen yet, asked for off the
    event loop (once each) and retried while the registry is away: the records then decode without
    waiting, and none is dead-lettered for the registry's absence."""
    c = codec()
    if c.registry is None:
        return
    values: dict[str, list[bytes | None]] = {}
    for incoming in batch:
        values.setdefault(incoming.topic, []).append(incoming.value)
    for schema_id in sorted({i for topic, vs in values.items() for i in c.unknown_ids(topic, vs)}):

        async def ask(schema_id: int = schema_id) -> None:
            await asyncio.to_thread(c.writer_schema, schema_id)

        # no such id, or not a schema: its records are dead-lettered when they are decoded
        with contextlib.suppress(DecodeError):
            await retry.bounded(f"asking the schema registry for schema id {schema_id}", ask)


class DeadLetters:
    """Refused records, with their original bytes and the reason, on booster.dead-letter (G4). A write
    the broker does not take is retried, bounded as a wait for the broker (`Retry.bounded`)."""

    def __init__(self, topic: Topic, metrics: Metrics, retry: Retry) -> None:
        self.topic = topic
        self.metrics = metrics
        self.retry = retry

    async def send(self, incoming: Incoming, reason: str, kind: str) -> None:
        await self.retry.bounded(
            f"dead-lettering {incoming.topic}@{incoming.offset}", lambda: self._send(incoming, reason, kind)
        )

    async def _send(self, incoming: Incoming, reason: str, kind: str) -> None:
        value, key = incoming.value, incoming.key
        if kind == "too_large":  # the whole record would be refused again, by the broker this time
            value = None if value is None else value[:TOO_LARGE_KEPT_BYTES]
            key = None if key is None else key[:TOO_LARGE_KEPT_BYTES]
        record = {
            "source_topic": incoming.topic,
            "partition": incoming.partition,
            "offset": incoming.offset,
            "key": key,
            "value": value,
            "error": reason,
            "kind": kind,
            "failed_at": now_ms(),
        }
        await self.topic.send(key=key, value=codec().encode("booster.dead-letter", record))
        self.metrics.inc("booster_dead_letters_total", topic=incoming.topic, kind=kind)
        log.warning("dead letter from %s[%s]@%s: %s", incoming.topic, incoming.partition, incoming.offset, reason)


def refusal(incoming: Incoming, exc: Exception) -> tuple[str, str]:
    """The reason and kind a record is dead-lettered with, for an exception processing it raised."""
    if isinstance(exc, DecodeError):
        return exc.reason, exc.kind
    log.exception("processing %s[%s]@%s failed", incoming.topic, incoming.partition, incoming.offset)
    return f"unexpected {type(exc).__name__}: {exc}", "unexpected"


Handler = Callable[[Incoming], Awaitable[None]]


class Guard:
    """Runs one record's handler; its table writes reach the changelog before the record counts as
    processed. A record that fails goes to the dead-letter topic instead of stopping its partition; a
    write the broker does not take is retried (the whole handler: its effects are idempotent), and
    then the worker exits without acknowledging the record."""

    def __init__(
        self,
        sink: Flushable,
        dead_letters: DeadLetters,
        metrics: Metrics,
        clocks: ClockWatch,
        retry: Retry,
    ) -> None:
        self.sink = sink
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.clocks = clocks
        self.retry = retry

    async def __call__(self, incoming: Incoming, handler: Handler) -> None:
        self.clocks.observe(incoming, now_ms())

        where = f"processing {incoming.topic}[{incoming.partition}]@{incoming.offset}"
        try:
            await learn_schemas([incoming], self.retry)
            await self.retry(where, lambda: handler(incoming))
            await self.retry.bounded(f"{where}: writing its changelog", self.sink.flush)
            self.metrics.inc("booster_events_total", topic=incoming.topic)
        except Exception as exc:  # one record must never stop its partition
            await self.dead_letters.send(incoming, *refusal(incoming, exc))
        # returning is what makes the record processed: the agent releases it in the ledger
