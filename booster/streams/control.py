"""Sending to booster.control: a broadcast to every partition (schedules, cancellations, "no
booster"), or a tick into one partition."""

from __future__ import annotations

from booster.processors.campaigns import ControlEvent, campaign_of
from booster.schemas import codec
from booster.streams.records import Topic
from booster.streams.wire import control_record


class Control:
    """Sends control records: a broadcast to every partition, or a tick into one."""

    def __init__(self, topic: Topic, partitions: int) -> None:
        self.topic = topic
        self.partitions = partitions

    async def send(self, event: ControlEvent, partition: int) -> None:
        value = codec().encode("booster.control", control_record(event))
        await self.topic.send(key=campaign_of(event).encode(), value=value, partition=partition)

    async def broadcast(self, event: ControlEvent) -> None:
        for p in range(self.partitions):
            await self.send(event, p)
