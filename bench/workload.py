"""A realistic campaign of N recipients: sent and a delivery report for almost all, about 20 % opens,
5 % clicks, some unsubscribes, deletions and blocks, produced as fast as the broker takes them.

With `features` (every audience policy on): 10 % machine opens, 3 % link-scanner clicks within the
scanner window, 1 % clicks flagged bot, 2 % contacts unreachable on SMS (the booster goes out on SMS),
a time zone for a third of the contacts in six zones, and an account with quiet hours on SMS and a
frequency cap of one booster a day."""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from booster.config import Settings
from booster.schemas import codec
from booster.streams.connect import client_options


@dataclass(frozen=True)
class Workload:
    campaign_id: str
    account_id: str
    recipients: int
    launched_at: int
    events: int
    eligible: int
    features: bool = False


ZONES = ("Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "America/Los_Angeles", "UTC")
# the account's settings with every feature on: quiet hours on the booster's channel for half the day
QUIET_HOURS = [{"channel": "SMS", "start": "20:00", "end": "08:00"}]
FREQUENCY_CAP = {"max_boosters": 1, "window_hours": 24}


def _roles(i: int, features: bool = False) -> dict[str, bool]:
    bucket = i % 100
    return {
        "opened": bucket < 20,
        "clicked": bucket < 5,
        "error": i % 50 == 7,
        "waiting": bucket == 99,
        "unsubscribed": bucket == 42,
        "deleted": i % 200 == 13,
        "blocked": i % 200 == 77,
        "machine_open": features and 20 <= bucket < 30,
        "scanner_click": features and 30 <= bucket < 33,
        "bot_click": features and bucket == 33,
        "unreachable": features and bucket in (34, 35),
    }


def events(
    campaign_id: str, account_id: str, n: int, launched_at: int, features: bool = False
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(topic, contact_id, record) for every fact of the campaign."""
    for i in range(n):
        contact = f"{campaign_id}-{i:08d}"
        r = _roles(i, features)
        t = launched_at + i % 60_000
        base = {"campaign_id": campaign_id, "contact_id": contact, "message_id": f"m{i}"}
        yield "message.sent", contact, {**base, "channel": "EMAIL", "sent_at": t}
        if not r["waiting"]:
            yield (
                "message.delivered",
                contact,
                {**base, "status": "ERROR" if r["error"] else "DELIVERED", "reported_at": t + 5000},
            )
        if r["opened"]:
            yield "message.opened", contact, {**base, "opened_at": t + 60_000, "machine_open": False}
        if r["clicked"]:
            yield "message.clicked", contact, {**base, "clicked_at": t + 61_000, "url": "https://example.com/offer"}
        if r["machine_open"]:
            yield "message.opened", contact, {**base, "opened_at": t + 30_000, "machine_open": True}
        if r["scanner_click"]:  # 2 s after delivery: inside EMAIL's default scanner window
            yield "message.clicked", contact, {**base, "clicked_at": t + 7000, "url": "https://example.com/offer"}
        if r["bot_click"]:
            record = {**base, "clicked_at": t + 6000, "url": "https://example.com/offer", "bot": True}
            yield "message.clicked", contact, record
        if r["unreachable"]:
            record = {"contact_id": contact, "account_id": account_id, "channel": "SMS", "reachable": False}
            yield "contact.reachability", contact, {**record, "changed_at": t + 1000}
        if features and i % 3 == 0:
            record = {"contact_id": contact, "account_id": account_id, "time_zone": ZONES[i // 3 % len(ZONES)]}
            yield "contact.time-zone", contact, {**record, "changed_at": t + 500}
        if r["unsubscribed"]:
            yield (
                "contact.unsubscribed",
                contact,
                {"contact_id": contact, "account_id": account_id, "channel": None, "unsubscribed_at": t + 70_000},
            )
        if r["deleted"]:
            yield (
                "contact.deleted",
                contact,
                {"contact_id": contact, "account_id": account_id, "deleted_at": t + 80_000},
            )
        if r["blocked"]:
            yield (
                "contact.blocked",
                contact,
                {"contact_id": contact, "account_id": account_id, "blocked": True, "changed_at": t + 90_000},
            )


def eligible_count(n: int, features: bool = False) -> int:
    count = 0
    for i in range(n):
        r = _roles(i, features)
        if not (
            r["unreachable"]
            or r["opened"]
            or r["clicked"]
            or r["error"]
            or r["waiting"]
            or r["unsubscribed"]
            or r["deleted"]
            or r["blocked"]
        ):
            count += 1
    return count


async def produce(
    settings: Settings,
    campaign_id: str,
    n: int,
    launched_at: int,
    account_id: str = "bench-account",
    misroute: bool = False,
    features: bool = False,
    cap: bool = True,
) -> Workload:
    """Encode and produce the workload with batch builders, partitioned by contact like any producer;
    with `misroute`, every fact goes to the partition after its contact's (a foreign partitioner at worst)."""
    producer = AIOKafkaProducer(**client_options(settings), acks=1, linger_ms=20, max_batch_size=1024 * 1024)
    await producer.start()
    partitioner = DefaultPartitioner()
    partitions = list(range(settings.partitions))
    builders: dict[tuple[str, int], Any] = {}
    pending = []
    produced = 0
    started = time.monotonic()
    enc = codec()
    by_key_partition: dict[str, int] = {}
    counts: dict[str, int] = defaultdict(int)
    try:
        channels = {
            "account_id": account_id,
            "channels": ["EMAIL", "SMS", "PUSH"],
            "updated_at": launched_at - 3_600_000,
            **({"quiet_hours": QUIET_HOURS} if features else {}),
            **({"frequency_cap": FREQUENCY_CAP} if features and cap else {}),
        }
        await producer.send_and_wait(
            settings.topic("account.channels"), enc.encode("account.channels", channels), key=account_id.encode()
        )
        for topic, contact, record in events(campaign_id, account_id, n, launched_at, features):
            key = contact.encode()
            p = by_key_partition.get(contact)
            if p is None:
                p = partitioner(key, partitions, partitions)
                p = by_key_partition[contact] = (p + 1) % len(partitions) if misroute else p
            builder = builders.get((topic, p))
            if builder is None:
                builder = builders[(topic, p)] = producer.create_batch()
            value = enc.encode(topic, record)
            if builder.append(key=key, value=value, timestamp=None) is None:
                pending.append(await producer.send_batch(builder, settings.topic(topic), partition=p))
                builder = builders[(topic, p)] = producer.create_batch()
                builder.append(key=key, value=value, timestamp=None)
            produced += 1
            counts[topic] += 1
            if produced % 250_000 == 0:
                rate = produced / (time.monotonic() - started)
                print(f"  produced {produced:,} events ({rate:,.0f}/s) ...", file=sys.stderr, flush=True)
            if len(by_key_partition) > 100_000:
                by_key_partition.clear()
        for (topic, p), builder in builders.items():
            if builder.record_count():
                pending.append(await producer.send_batch(builder, settings.topic(topic), partition=p))
        for fut in pending:
            await fut
    finally:
        await producer.stop()
    return Workload(campaign_id, account_id, n, launched_at, produced, eligible_count(n, features), features)
