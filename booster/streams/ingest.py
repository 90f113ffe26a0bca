"""Ingestion: the contact-keyed facts (message.* and contact.*) folded into the `recipients`
(campaign, contact) and `contacts` tables of the contact's partition.

A batch of records is decoded and folded with the processors' `evolve_*`, each changed row written
once, the changelog flushed, and only then are the records counted as processed (released in the
consumer's offset ledger: the commits and the lag gate's position move). A message event of a
campaign that fired here or has no booster is dropped; the first one of an unknown campaign marks when
its rows appeared (R12). A person's open or click of a campaign's message, or of its booster's (whose
campaign_id is the booster_id), in the booster's measurement window is kept in the `engagement` table,
the first one per contact.

A fact found in another partition than its contact's (its producer partitions by another hash) is
not folded there: it is forwarded, as it came, to the contact's partition of booster.rerouted, which
this agent also consumes, and counts as processed once the forward is on the broker. The lag gate
covers that detour (deadlines.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from booster.errors import DecodeError, RegistryUnavailable
from booster.processors.campaigns import CampaignPartition, accepts_events, engagement_counts, evolve_campaign_seen
from booster.processors.events import contact_event_from_record, message_event_from_record
from booster.processors.packing import (
    pack_contact,
    pack_moment,
    pack_recipient,
    unpack_contact,
    unpack_moment,
    unpack_recipient,
)
from booster.processors.recipients import evolve_contact, evolve_recipient
from booster.processors.uplift import engaged_at, original_campaign
from booster.schemas import codec
from booster.schemas.catalog import CONTACT_INPUT_TOPICS, REROUTED
from booster.streams import compat
from booster.streams.campaigns import CampaignStates
from booster.streams.lane import Lane
from booster.streams.metrics import Metrics
from booster.streams.records import (
    ClockWatch,
    DeadLetters,
    Flushable,
    Incoming,
    Retry,
    contact_partition,
    learn_schemas,
    now_ms,
    refusal,
)
from booster.streams.store import Table, recipient_key

INGEST_BATCH = 2000  # events folded per batch; their changelog is flushed before they are acked
INGEST_WITHIN = 0.05  # seconds a partial batch waits for more events
LANE_INGEST_BATCH = 5000  # the lane's records folded per changelog flush


class Forwarder(Flushable, Protocol):
    def forward(
        self, topic: str, partition: int, key: bytes | None, value: bytes | None, timestamp_ms: int
    ) -> None: ...


@dataclass
class Folded:
    """What one batch did: rows to write per partition, refused and misrouted records, counts."""

    recipients: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    contacts: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    engagement: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    refused: list[tuple[Incoming, str, str]] = field(default_factory=list)
    # with the contact's partition and the value to forward (in the contract's own ids)
    misrouted: list[tuple[Incoming, int, bytes | None]] = field(default_factory=list)
    counted: dict[str, int] = field(default_factory=dict)
    dropped: int = 0


class Ingestion:
    def __init__(
        self,
        recipients: Table,
        contacts: Table,
        engagement: Table,
        campaigns: CampaignStates,
        sink: Forwarder,
        dead_letters: DeadLetters,
        metrics: Metrics,
        clocks: ClockWatch,
        *,
        partitions: int,
        rerouted_topic: str,
        retry: Retry,
    ) -> None:
        self.recipients = recipients
        self.contacts = contacts
        self.engagement = engagement
        self.campaigns = campaigns
        self.sink = sink
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.clocks = clocks
        self.partitions = partitions
        self.rerouted_topic = rerouted_topic  # its real name
        self.retry = retry

    async def agent(self, stream: Any, contract_name: Callable[[str], str]) -> None:
        # one take of up to INGEST_BATCH events still costs Faust's per-event overhead, but lets us
        # decode, fold and write without a table round trip per event
        async for events in stream.take_events(INGEST_BATCH, within=INGEST_WITHIN):
            # acked only once their rows are in the changelog, even if the stream stops meanwhile
            compat.hold_acks(events)
            await self.ingest([Incoming.of(e.message, contract_name(e.message.topic)) for e in events])
            compat.release_acks(events)

    async def lane_agent(
        self, lane: Lane, contract_name: Callable[[str], str], held: Callable[[], bool] = lambda: False
    ) -> None:
        """The ingest agent on the batch lane: a whole fetch per await, no Faust event per record.
        `held`: fault tests hold the agent before it takes a batch (BOOSTER_TEST_HOLD_INGEST)."""
        while held():
            await asyncio.sleep(0.05)
        async for batch in lane.batches():
            incoming = [
                Incoming.of_record(record, contract)
                for tp, records in batch.records.items()
                for contract in (contract_name(tp.topic),)
                for record in records
            ]
            try:
                for start in range(0, len(incoming), LANE_INGEST_BATCH):
                    await self.ingest(incoming[start : start + LANE_INGEST_BATCH])
            except BaseException:
                lane.abandon()  # its offsets stay held: read again, by this worker or the next owner
                raise
            lane.done(batch)
            while held():
                await asyncio.sleep(0.05)

    async def ingest(self, batch: Sequence[Incoming]) -> Folded:
        await learn_schemas(batch, self.retry)
        folded = self.fold(batch)
        for incoming, partition, value in folded.misrouted:
            self.sink.forward(self.rerouted_topic, partition, incoming.key, value, incoming.timestamp_ms)
            self.metrics.inc("booster_misrouted_records_total", topic=incoming.topic)
        # the rows are in RocksDB and appended to the sink: only the changelog write is left to retry
        await self.retry.bounded("writing the changelog of an ingested batch", self.sink.flush)
        for incoming, reason, kind in folded.refused:
            await self.dead_letters.send(incoming, reason, kind)
        for topic, n in folded.counted.items():
            self.metrics.inc("booster_events_total", n, topic=topic)
        if folded.dropped:
            self.metrics.inc("booster_events_dropped_total", folded.dropped)
        now = now_ms()
        for incoming in batch:
            self.clocks.observe(incoming, now)
        # returning is what makes the records processed: only now are their effects in the tables and
        # the changelog, and the caller releases them in the consumer's ledger (the lag gate's position)
        return folded

    def fold(self, batch: Sequence[Incoming]) -> Folded:
        """Fold a batch into the tables (written, not yet flushed); bad records are set aside."""
        folded = Folded()
        for incoming in batch:
            try:
                self._fold_one(incoming, folded)
                folded.counted[incoming.topic] = folded.counted.get(incoming.topic, 0) + 1
            except RegistryUnavailable:  # infrastructure: the batch is tried again, nothing set aside
                raise
            except Exception as exc:  # one record must never stop its partition
                folded.refused.append((incoming, *refusal(incoming, exc)))
        for p, rows in folded.recipients.items():
            self.recipients.partition(p).write(rows)
        for p, rows in folded.contacts.items():
            self.contacts.partition(p).write(rows)
        for p, rows in folded.engagement.items():
            self.engagement.partition(p).write(rows)
        return folded

    def _fold_one(self, incoming: Incoming, folded: Folded) -> None:
        copy = incoming.topic == REROUTED
        if copy:
            incoming.refuse_if_too_large()
            incoming = replace(incoming, topic=rerouted_source(incoming.value))
        record = incoming.decode(internal=copy)
        contact_id = incoming.key_text(record, "contact_id")
        p = incoming.partition
        home = contact_partition(contact_id, self.partitions)
        if p != home:
            if incoming.real_topic == self.rerouted_topic:  # forwarded there by us: never again
                raise DecodeError(f"rerouted to partition {p}, the contact's is {home}", kind="bad_key")
            folded.misrouted.append((incoming, home, self._forwardable(incoming, record)))
            return
        if incoming.topic.startswith("message."):
            event = message_event_from_record(incoming.topic, record)
            campaign_id, own = original_campaign(event.campaign_id)
            at = engaged_at(event)
            # the original campaign's state: read once, for the measurement and for the event itself
            state = self.campaigns.get(campaign_id, p)
            kept = at is not None and self._engaged(state, campaign_id, event.contact_id, at, p, folded)
            if own:  # a booster's own message: its recipients are the booster's, not a campaign's
                folded.dropped += not kept
                return
            if not accepts_events(state):
                folded.dropped += not kept
                return
            if state is None or state.first_seen_at is None:
                self.campaigns.put(event.campaign_id, p, evolve_campaign_seen(state, incoming.timestamp_ms))
            key = recipient_key(event.campaign_id, event.contact_id)
            rows = folded.recipients.setdefault(p, {})
            old = rows[key] if key in rows else self.recipients.partition(p).get(key)
            new = pack_recipient(evolve_recipient(None if old is None else unpack_recipient(old), event))
        else:
            contact_event = contact_event_from_record(incoming.topic, record)
            key = contact_event.contact_id.encode()
            rows = folded.contacts.setdefault(p, {})
            old = rows[key] if key in rows else self.contacts.partition(p).get(key)
            new = pack_contact(evolve_contact(None if old is None else unpack_contact(old), contact_event))
        if new != old:
            rows[key] = new

    @staticmethod
    def _forwardable(incoming: Incoming, record: dict[str, Any]) -> bytes | None:
        """The value booster.rerouted gets: the record as it came, or, read by the registry's ids, in the
        contract's own (booster.rerouted is internal: the next reader needs no registry to tell the
        topic it came from)."""
        if codec().registry is None:
            return incoming.value
        return codec().encode(incoming.topic, record, internal=True)

    def _engaged(
        self, state: CampaignPartition | None, campaign_id: str, contact_id: str, at: int, p: int, folded: Folded
    ) -> bool:
        """The first engagement of a contact in its booster's measurement window; whether
        the event counts in one."""
        if not engagement_counts(state, at):
            return False
        key = recipient_key(campaign_id, contact_id)
        rows = folded.engagement.setdefault(p, {})
        old = rows[key] if key in rows else self.engagement.partition(p).get(key)
        if old is None or at < unpack_moment(old):
            rows[key] = pack_moment(at)
        return True


def rerouted_source(value: bytes | None) -> str:
    """The input topic a record of booster.rerouted came from, named by its schema id."""
    topic = codec().schema_of(value).name
    if topic not in CONTACT_INPUT_TOPICS:
        raise DecodeError(f"booster.rerouted holds only contact-keyed facts, not {topic}", kind="wrong_schema")
    return topic
