"""Ingestion on the in-memory store: facts fold into rows, bad records are set aside, dropped events."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from booster.processors.boosters import Schedule
from booster.processors.campaigns import CampaignPartition
from booster.processors.packing import unpack_contact, unpack_moment, unpack_recipient
from booster.processors.recipients import ContactState, RecipientState
from booster.streams.campaigns import CampaignStates
from booster.streams.clocks import Clocks
from booster.streams.ingest import Ingestion
from booster.streams.metrics import Metrics
from booster.streams.records import DeadLetters, Incoming
from booster.streams.store import MemoryTable, recipient_key
from tests.unit.streams.fakes import Flushes, GaveUp, SentRecords, incoming, retry

T0 = 1_767_225_600_000
HOUR = 3_600_000


def sent(contact: str, campaign: str = "c1", at: int = T0) -> dict[str, Any]:
    return {"campaign_id": campaign, "contact_id": contact, "message_id": "m", "channel": "EMAIL", "sent_at": at}


def delivered(contact: str, at: int) -> dict[str, Any]:
    return {"campaign_id": "c1", "contact_id": contact, "message_id": "m", "status": "DELIVERED", "reported_at": at}


class World:
    def __init__(self, partitions: int = 1) -> None:
        self.recipients, self.contacts = MemoryTable("recipients"), MemoryTable("contacts")
        self.engagement = MemoryTable("engagement")
        self.campaigns = CampaignStates(MemoryTable("campaigns"))
        self.dead = SentRecords("booster.dead-letter")
        self.flushes, self.metrics = Flushes(), Metrics()
        self.retry, self.sleeps = retry()
        self.ingestion = Ingestion(
            self.recipients, self.contacts, self.engagement, self.campaigns, self.flushes,
            DeadLetters(self.dead, self.metrics, self.retry), self.metrics, Clocks(self.metrics, 60_000),
            partitions=partitions, rerouted_topic="t.booster.rerouted", retry=self.retry,
        )  # fmt: skip

    def recipient(self, contact: str, campaign: str = "c1", partition: int = 0) -> RecipientState | None:
        raw = self.recipients.partition(partition).get(recipient_key(campaign, contact))
        return None if raw is None else unpack_recipient(raw)


def test_facts_fold_into_rows_and_count_once_flushed() -> None:
    w = World(partitions=2)  # k3's partition is 0, k2's is 1
    batch = [
        incoming("message.sent", sent("k3"), offset=0),
        incoming("message.sent", sent("k3", at=T0 - 5), offset=1),  # the earliest fact wins (G5)
        incoming("message.delivered", delivered("k3", T0 + 10), offset=2),
        incoming(
            "contact.deleted", {"contact_id": "k2", "account_id": "a", "deleted_at": T0 + 1}, partition=1, offset=3
        ),
    ]
    folded = asyncio.run(w.ingestion.ingest(batch))
    assert w.recipient("k3") == RecipientState(sent_at=T0 - 5, messages=("m",), reports=(("m", T0 + 10, False),))
    raw_contact = w.contacts.partition(1).get(b"k2")
    assert raw_contact is not None and unpack_contact(raw_contact) == ContactState(deleted_at=T0 + 1)
    assert folded.counted == {"message.sent": 2, "message.delivered": 1, "contact.deleted": 1}
    assert w.flushes.count == 1  # once, before `ingest` returns: only then do the records count as processed
    assert w.metrics.get("booster_events_total", topic="message.sent") == 2


def test_the_first_message_of_a_campaign_marks_when_its_rows_appeared() -> None:
    w = World()
    asyncio.run(w.ingestion.ingest([incoming("message.sent", sent("k1"), timestamp_ms=T0 + 7)]))
    asyncio.run(w.ingestion.ingest([incoming("message.sent", sent("k2"), timestamp_ms=T0 + 3)]))
    assert w.campaigns.get("c1", 0) == CampaignPartition(first_seen_at=T0 + 7)  # kept from the first one


def test_events_of_a_fired_campaign_are_dropped() -> None:
    w = World()
    w.campaigns.put("c1", 0, CampaignPartition(fired=True))
    folded = asyncio.run(w.ingestion.ingest([incoming("message.sent", sent("k1"))]))
    assert folded.dropped == 1 and w.recipient("k1") is None
    assert w.metrics.get("booster_events_dropped_total") == 1


def test_bad_records_go_to_the_dead_letter_topic_and_the_rest_of_the_batch_counts() -> None:
    w = World()
    batch = [
        incoming("message.sent", sent("k1"), key="someone-else", offset=0),
        incoming("message.sent", sent("k2"), value=b"not avro", offset=1),
        incoming("message.sent", sent("k3"), offset=2),
    ]
    asyncio.run(w.ingestion.ingest(batch))
    letters = w.dead.decoded()
    assert [(d["offset"], d["kind"]) for d in letters] == [(0, "bad_key"), (1, "not_wire_format")]
    assert letters[1]["value"] == b"not avro" and letters[1]["source_topic"] == "message.sent"
    assert w.recipient("k3") is not None and w.recipient("k1") is None  # and `ingest` returned: all three count


def test_records_stamped_ahead_of_the_worker_clock_set_the_gauge_and_warn_once(caplog: Any) -> None:
    w = World()
    now = int(time.time() * 1000)
    ahead = [incoming("message.sent", sent(f"k{i}"), offset=i, timestamp_ms=now + 600_000) for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="booster.worker"):
        asyncio.run(w.ingestion.ingest(ahead))
    assert w.metrics.get("booster_record_clock_ahead_seconds", topic="message.sent") >= 599
    warnings = [r.getMessage() for r in caplog.records if "ahead of this worker's clock" in r.getMessage()]
    assert len(warnings) == 1 and "message.sent" in warnings[0] and "NTP" in warnings[0]


def test_records_stamped_before_processing_give_a_negative_gauge_and_no_warning(caplog: Any) -> None:
    w = World()
    old = int(time.time() * 1000) - 3_600_000  # an hour of lag is not a clock problem
    with caplog.at_level(logging.WARNING, logger="booster.worker"):
        asyncio.run(w.ingestion.ingest([incoming("message.sent", sent("k1"), timestamp_ms=old)]))
    assert w.metrics.get("booster_record_clock_ahead_seconds", topic="message.sent") <= -3599
    assert not [r for r in caplog.records if "ahead of this worker's clock" in r.getMessage()]


def test_a_fact_in_another_partition_than_its_contacts_is_forwarded_there_not_folded() -> None:
    w = World(partitions=2)  # k3 lives in partition 0
    stray = incoming("message.sent", sent("k3"), partition=1, offset=7, timestamp_ms=T0 + 3)
    folded = asyncio.run(w.ingestion.ingest([stray]))
    assert w.recipient("k3", partition=1) is None and w.recipient("k3", partition=0) is None
    assert w.flushes.forwarded == [("t.booster.rerouted", 0, b"k3", stray.value, T0 + 3)]
    assert w.metrics.get("booster_misrouted_records_total", topic="message.sent") == 1
    assert w.flushes.count == 1  # processed once the forward is flushed
    assert folded.refused == []


def test_a_rerouted_fact_is_folded_as_the_topic_its_schema_names() -> None:
    w = World(partitions=2)
    value = incoming("message.sent", sent("k3")).value
    arrived = incoming("message.sent", sent("k3"), value=value, read_from="booster.rerouted", offset=4)
    asyncio.run(w.ingestion.ingest([arrived]))
    assert w.recipient("k3", partition=0) == RecipientState(sent_at=T0, messages=("m",))
    assert w.flushes.forwarded == []


def test_a_rerouted_fact_in_the_wrong_partition_is_refused_not_forwarded_again() -> None:
    w = World(partitions=2)
    value = incoming("message.sent", sent("k3")).value
    wrong = incoming("message.sent", sent("k3"), value=value, read_from="booster.rerouted", partition=1)
    folded = asyncio.run(w.ingestion.ingest([wrong]))
    assert w.flushes.forwarded == [] and [kind for _, _, kind in folded.refused] == ["bad_key"]


def test_a_changelog_write_the_broker_does_not_take_is_retried_and_never_dead_lettered() -> None:
    w = World()
    w.flushes.failures = 3
    asyncio.run(w.ingestion.ingest([incoming("message.sent", sent("k1"), offset=4)]))
    assert w.dead.sent == [] and w.flushes.count == 1
    assert w.sleeps.slept == [0.5, 1.0, 2.0]  # backoff


def test_a_broker_that_stays_away_ends_the_worker_before_the_batch_counts() -> None:
    w = World()
    w.flushes.failures = 100
    with pytest.raises(GaveUp):
        asyncio.run(w.ingestion.ingest([incoming("message.sent", sent("k1"), offset=4)]))
    assert w.dead.sent == []  # nothing dead-lettered, and `ingest` raised: nothing counts as processed
    assert sum(w.sleeps.slept) <= 30.0


def message(contact: str, campaign: str) -> dict[str, Any]:
    return {"campaign_id": campaign, "contact_id": contact, "message_id": "m"}


def engagement_of(w: World, contact: str, campaign: str = "c1") -> int | None:
    raw = w.engagement.partition(0).get(recipient_key(campaign, contact))
    return None if raw is None else unpack_moment(raw)


def test_a_persons_open_or_click_in_the_measurement_window_is_kept_the_first_one() -> None:
    """Of the original message or of the booster's (campaign_id = booster_id), a person's
    open or click from the deadline to the window's end; not a machine's open, not a click flagged
    bot, not one before the deadline or after the window, not another campaign's."""
    w = World()
    deadline, window = T0 + 2 * HOUR, 72 * HOUR
    sch = Schedule(
        "c1", "c1:booster", "Booster for X", "a", "EMAIL", "NOT_OPENED", "t", deadline, measurement_ms=window
    )
    w.campaigns.put("c1", 0, CampaignPartition(schedule=sch, fired=True))

    def opened(contact: str, at: int, campaign: str = "c1", machine: bool = False) -> Incoming:
        return incoming("message.opened", {**message(contact, campaign), "opened_at": at, "machine_open": machine})

    def clicked(contact: str, at: int, campaign: str = "c1", bot: bool = False) -> Incoming:
        return incoming("message.clicked", {**message(contact, campaign), "clicked_at": at, "url": "u", "bot": bot})

    batch = [
        opened("k1", deadline + 50), opened("k1", deadline + 20, campaign="c1:booster"),  # the earliest
        clicked("k2", deadline + window - 1, campaign="c1:booster"),
        opened("k3", deadline + 10, machine=True), clicked("k3", deadline + 10, bot=True),
        opened("k4", deadline - 1), clicked("k4", deadline + window),  # before the deadline, after the window
        opened("k5", deadline + 10, campaign="c2"), opened("k6", deadline + 10, campaign="c2:booster"),
    ]  # fmt: skip
    folded = asyncio.run(w.ingestion.ingest(batch))
    assert {k: engagement_of(w, k) for k in ("k1", "k2", "k3", "k4", "k5", "k6")} == {
        "k1": deadline + 20, "k2": deadline + window - 1, "k3": None, "k4": None, "k5": None, "k6": None,
    }  # fmt: skip
    assert w.recipient("k6", campaign="c2:booster") is None  # a booster's own messages make no recipients
    assert folded.dropped == 5  # of the fired campaign or a booster, and not counted in a window (k5 folds)
    w.campaigns.put("c1", 0, CampaignPartition(schedule=sch, fired=True, measured=True))
    asyncio.run(w.ingestion.ingest([opened("k7", deadline + 30)]))
    assert engagement_of(w, "k7") is None  # measured already: too late to count


def test_a_lane_batch_written_but_not_acked_before_a_crash_is_read_again_to_the_same_state() -> None:
    """kill -9 after a batch's rows and changelog are written, before its offsets are released: nothing
    of it is committed, the next run reads it again from the committed offset, and the folds give the
    rows one read gives (a fold keeps the earliest facts)."""
    from booster.streams.lane import Lane
    from booster.streams.offsets import OffsetLedger

    facts = [
        incoming("message.sent", sent("k1"), offset=0),
        incoming("message.delivered", delivered("k1", T0 + 10), offset=1),
        incoming("message.sent", sent("k2", at=T0 + 1), offset=2),
        incoming("message.delivered", delivered("k2", T0 + 20), offset=3),
    ]
    once = World()
    asyncio.run(once.ingestion.ingest(facts))

    async def run(world: World, crash: bool) -> int | None:
        lane, ledger = Lane({"t.message.sent", "t.message.delivered"}), OffsetLedger()
        lane.attach(ledger)
        by_tp: dict[Any, list[Any]] = {}
        for f in facts:
            by_tp.setdefault(Tp(f.real_topic, f.partition), []).append(Fetched(f))
        for tp, records in by_tp.items():
            ledger.seeked(tp, 0)
            ledger.fetched(tp, [r.offset for r in records])
        await lane.put(by_tp, {tp: lane.epoch(tp) for tp in by_tp})
        if crash:  # the process dies at the ack: its rows and changelog are written, nothing released

            def die(batch: Any) -> None:
                raise Crash

            lane.done = die  # type: ignore[method-assign]
        agent = asyncio.ensure_future(world.ingestion.lane_agent(lane, lambda real: real.removeprefix("t.")))
        await asyncio.sleep(0.05)
        if crash:
            with pytest.raises(Crash):
                await agent
            assert world.flushes.count == 1
        agent.cancel()
        return ledger.commit_point(Tp("t.message.sent", 0), 0)

    world = World()
    assert asyncio.run(run(world, crash=True)) is None  # nothing committed: it is all read again
    assert asyncio.run(run(world, crash=False)) is not None
    for contact in ("k1", "k2"):
        assert world.recipient(contact) == once.recipient(contact) is not None


class Crash(BaseException):
    pass


class Tp(tuple[str, int]):
    def __new__(cls, topic: str, partition: int) -> Tp:
        return super().__new__(cls, (topic, partition))

    @property
    def topic(self) -> str:
        return self[0]


class Fetched:
    """A record as the consumer fetched it (what the lane hands on), from an Incoming."""

    def __init__(self, f: Incoming) -> None:
        self.topic, self.partition, self.offset = f.real_topic, f.partition, f.offset
        self.key, self.value, self.timestamp = f.key, f.value, f.timestamp_ms


def _decisions(world: World, sc: Any, partitions: int) -> dict[str, Any]:
    """Every recipient's decision at the scenario's deadline, from the rows the ingest step wrote."""
    from booster.processors.audience import decide
    from booster.processors.boosters import DEFAULT_SCANNER_WINDOW_SECONDS, default_criterion
    from booster.streams.store import SEP

    out = {}
    for p in range(partitions):
        contacts = world.contacts.partition(p)
        for key, raw in world.recipients.partition(p).items():
            _, contact = key.decode().split(SEP, 1)
            contact_raw = contacts.get(contact.encode())
            out[contact] = decide(
                unpack_recipient(raw),
                None if contact_raw is None else unpack_contact(contact_raw),
                channel=sc.booster_channel or sc.channel,
                criterion=default_criterion(sc.channel),
                at=sc.deadline,
                count_machine_opens=False,
                scanner_window_ms=1000 * DEFAULT_SCANNER_WINDOW_SECONDS[sc.channel],
                campaign_channel=sc.channel,
            )
    return out


@pytest.mark.parametrize("seed", range(12))
def test_g5_any_order_duplicates_and_batching_through_the_ingest_step_decide_the_same(seed: int) -> None:
    """G5 on what ingestion runs (the shell's fold, its row cache inside a batch, its batches), not
    only on the model `fold`: every role of the scenarios, its facts shuffled, some twice, cut into
    batches at random, decide every recipient as the facts in order do."""
    import random

    from booster.streams.records import contact_partition
    from booster.testing.scenario import build

    rng = random.Random(seed)
    partitions = 2
    sc = build(f"g5-{seed}", 60, launched_at=T0, channel=rng.choice(["EMAIL", "SMS", "PUSH"]))
    facts = [(topic, r) for topic, records in sc.records.items() for r in records]

    def feed(world: World, order: list[tuple[str, dict[str, Any]]], cuts: int) -> None:
        arrived = [
            incoming(topic, r, partition=contact_partition(r["contact_id"], partitions), offset=i)
            for i, (topic, r) in enumerate(order)
        ]
        bounds = sorted(rng.sample(range(1, len(arrived)), k=min(cuts, len(arrived) - 1)))
        for start, end in zip([0, *bounds], [*bounds, len(arrived)], strict=True):
            asyncio.run(world.ingestion.ingest(arrived[start:end]))

    in_order = World(partitions)
    feed(in_order, facts, 0)
    shuffled = [*facts, *rng.sample(facts, k=len(facts) // 5)]  # a fifth of them twice
    rng.shuffle(shuffled)
    any_order = World(partitions)
    feed(any_order, shuffled, rng.randint(1, 12))
    expected = _decisions(in_order, sc, partitions)
    assert expected and _decisions(any_order, sc, partitions) == expected
    chosen = {c for c, d in expected.items() if d is None}
    assert chosen == sc.expected_audience  # and the known answer
