"""The fan-out's progress against the broker: read once per owned partition, then only what is new, so
a partition's thousandth booster does not re-read the progress of the 999 before it (issue 15)."""

from __future__ import annotations

import asyncio
import time

from booster.config import Settings
from booster.ops.clients import read_topic
from booster.processors.boosters import Schedule, booster_id_of
from booster.processors.campaigns import CampaignPartition
from booster.processors.packing import pack_recipient
from booster.processors.recipients import RecipientState
from booster.streams.fanout import Fanout
from booster.streams.store import MemoryTable, recipient_key

BOOSTERS = 6
RECIPIENTS = 30  # per booster, in chunks of 10: 4 progress records each (3 chunks and the last)


def test_each_fan_out_reads_only_the_progress_written_since_the_last(settings: Settings) -> None:
    settings = Settings.from_env({**settings_env(settings), "BOOSTER_FANOUT_CHUNK": "10"})
    recipients, contacts = MemoryTable("recipients"), MemoryTable("contacts")
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
