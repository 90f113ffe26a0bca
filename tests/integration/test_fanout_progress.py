"""The fan-out's progress against the broker: read once per owned partition, then only what is new, so
a partition's thousandth booster does not re-read the progress of the 999 before it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from booster.config import Settings
from booster.ops.clients import read_topic
from booster.processors.boosters import Schedule, booster_id_of
from booster.processors.campaigns import CampaignPartition
from booster.processors.frequency import FrequencyCap
from booster.processors.packing import pack_recipient
from booster.processors.recipients import RecipientState
from booster.schemas import codec
from booster.streams.fanout import Fanout
from booster.streams.history import history_of
from booster.streams.store import MemoryTable, recipient_key

BOOSTERS = 6
RECIPIENTS = 30  # per booster, in chunks of 10: 4 progress records each (3 chunks and the last)


def test_each_fan_out_reads_only_the_progress_written_since_the_last(settings: Settings) -> None:
    settings = Settings.from_env({**settings_env(settings), "BOOSTER_FANOUT_CHUNK": "10"})
    recipients, contacts = MemoryTable("recipients"), MemoryTable("contacts")
    history = MemoryTable("sent-history")
    delivered = pack_recipient(RecipientState(sent_at=1, messages=("m",), reports=(("m", 2, False),)))
    deadline = int(time.time() * 1000)
    campaigns = [f"c{i}" for i in range(BOOSTERS)]
    for cid in campaigns:
        recipients.partition(0).write({recipient_key(cid, f"k{j:03d}"): delivered for j in range(RECIPIENTS)})

    async def fire_all() -> tuple[list[int], list[int]]:
        fanout = Fanout(settings, settings.group_id)
        commands, reads = [], []
        try:
            for cid in campaigns:
                schedule = Schedule(
                    cid, booster_id_of(cid), f"Booster for {cid}", "a", "EMAIL", "NOT_OPENED", "t", deadline
                )
                result = await fanout.run(
                    state=CampaignPartition(schedule=schedule),
                    partition=0,
                    recipients=recipients.partition(0),
                    contacts=contacts.partition(0),
                    history=history.partition(0),
                    now=deadline,
                )
                commands.append(result.commands)
                reads.append(fanout.progress[0].records_read)
            # a new owner of the partition (after a rebalance or a restart) reads it all once
            await fanout.release({0})
            latest = await fanout.load_progress(0)
            reads.append(fanout.progress[0].records_read)
            assert sorted(latest) == campaigns and all(p["done"] for p in latest.values())
            # once forgotten, a booster's progress is a tombstone: compaction drops it, readers skip it
            forgotten = campaigns[:2]
            for cid in forgotten:
                await fanout.forget(cid, 0)
            assert sorted(await fanout.load_progress(0)) == campaigns[2:]
            await fanout.release({0})
            assert sorted(await fanout.load_progress(0)) == campaigns[2:]
            tombstones = [
                msg.key.decode()
                async for msg in read_topic(settings, "booster.fanout-progress", until_end=True)
                if msg.value is None and msg.key is not None
            ]
            assert tombstones == forgotten
        finally:
            await fanout.stop()
        return commands, reads

    commands, reads = asyncio.run(fire_all())
    assert commands == [RECIPIENTS] * BOOSTERS
    # one worker firing booster after booster re-reads nothing it wrote itself
    assert reads[:BOOSTERS] == [0] * BOOSTERS
    # a new owner reads every booster's progress records once
    assert reads[BOOSTERS] == BOOSTERS * (RECIPIENTS // 10 + 1)


def settings_env(settings: Settings) -> dict[str, str]:
    return {
        "BOOSTER_BROKER": settings.broker,
        "BOOSTER_TOPIC_PREFIX": settings.topic_prefix,
        "BOOSTER_PARTITIONS": str(settings.partitions),
    }


def test_the_frequency_cap_history_is_read_back_from_booster_audience_after_a_crash_or_a_move(
    settings: Settings,
) -> None:
    """A capped booster's sends reach the contacts' history after each committed chunk; a worker that
    lost them (killed between the commit and the table write, or a new owner without the rows) reads
    them from booster.audience before its next fan-out, and caps exactly the same contacts."""
    settings = Settings.from_env({**settings_env(settings), "BOOSTER_FANOUT_CHUNK": "7"})
    recipients, contacts = MemoryTable("recipients"), MemoryTable("contacts")
    delivered = pack_recipient(RecipientState(sent_at=1, messages=("m",), reports=(("m", 2, False),)))
    opened = pack_recipient(RecipientState(sent_at=1, opened_at=3, messages=("m",), reports=(("m", 2, False),)))
    deadline = int(time.time() * 1000)
    cap = FrequencyCap(1, 7 * 86_400_000)
    contact_ids = [f"k{j:03d}" for j in range(30)]
    # the first booster reaches the even contacts (the odd ones opened its campaign)
    recipients.partition(0).write(
        {recipient_key("first", c): delivered if j % 2 == 0 else opened for j, c in enumerate(contact_ids)}
    )

    def schedule(cid: str, frequency_cap: FrequencyCap | None) -> CampaignPartition:
        s = Schedule(cid, booster_id_of(cid), f"Booster for {cid}", "a", "EMAIL", "NOT_OPENED", "t", deadline)
        return CampaignPartition(schedule=replace(s, frequency_cap=frequency_cap))

    async def fire(fanout: Fanout, cid: str, history: MemoryTable, frequency_cap: FrequencyCap | None) -> set[str]:
        recipients.partition(0).write({recipient_key(cid, c): delivered for c in contact_ids} if cid != "first" else {})
        before = {c["contact_id"] for c in await commands_of(settings, cid)}
        await fanout.run(
            state=schedule(cid, frequency_cap), partition=0, recipients=recipients.partition(0),
            contacts=contacts.partition(0), history=history.partition(0), now=deadline,
        )  # fmt: skip
        return {c["contact_id"] for c in await commands_of(settings, cid)} - before

    async def scenario() -> None:
        fanout = Fanout(settings, settings.group_id)
        kept = MemoryTable("sent-history")
        try:
            assert await fire(fanout, "first", kept, cap) == set(contact_ids[::2])
            assert history_of(kept.partition(0), b"k000") == ((deadline, booster_id_of("first")),)
            # the same worker: the rows it wrote itself cap the next booster
            assert await fire(fanout, "second", kept, cap) == set(contact_ids[1::2])
            # a worker that lost the rows (a crash after the commits, a new owner): read back from the topic
            await fanout.release({0})
            lost = MemoryTable("sent-history")
            assert await fire(fanout, "third", lost, cap) == set()  # every contact had one in the window
            assert history_of(lost.partition(0), b"k001") == ((deadline, booster_id_of("second")),)
            # a booster without a cap is neither capped nor counted
            assert await fire(fanout, "uncapped", lost, None) == set(contact_ids)
            assert history_of(lost.partition(0), b"k000") == ((deadline, booster_id_of("first")),)
        finally:
            await fanout.stop()

    asyncio.run(scenario())


async def commands_of(settings: Settings, campaign_id: str) -> list[dict[str, Any]]:
    out = []
    async for msg in read_topic(settings, "booster.commands", until_end=True):
        record = codec().decode("booster.commands", msg.value)
        if record["campaign_id"] == campaign_id:
            out.append(record)
    return out
