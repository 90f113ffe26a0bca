"""The lag gate (G1): a partition's deadline fires only once its inputs are processed past it.

An input partition is past a moment T when this worker has processed a record of it whose
timestamp is after T, or when, on a look made after T, nothing is left to process: the position
(this worker's processed offset, else the group's committed offset) has reached the end offset
(read-committed, so the last stable offset).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

log = logging.getLogger(__name__)


@dataclass
class Processed:
    next_offset: int
    last_timestamp: int


@dataclass
class LagGate:
    bootstrap: str
    group_id: str
    processed: dict[TopicPartition, Processed] = field(default_factory=dict)
    _consumer: AIOKafkaConsumer | None = None
    _admin: AIOKafkaAdminClient | None = None

    def record(self, topic: str, partition: int, offset: int, timestamp: int) -> None:
        """Called by the agents after a record's effects are in the tables."""
        tp = TopicPartition(topic, partition)
        seen = self.processed.get(tp)
        if seen is None:
            self.processed[tp] = Processed(offset + 1, timestamp)
        else:
            if offset + 1 > seen.next_offset:
                seen.next_offset = offset + 1
            if timestamp > seen.last_timestamp:
                seen.last_timestamp = timestamp

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self.processed.pop(tp, None)

    async def start(self) -> None:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
            )
            await self._consumer.start()
        if self._admin is None:
            self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await self._admin.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    def past_by_time(self, tps: Iterable[TopicPartition], moment: int) -> bool:
        for tp in tps:
            seen = self.processed.get(tp)
            if seen is None or seen.last_timestamp <= moment:
                return False
        return True

    async def lagging(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Partitions with records left to process right now, with how many."""
        await self.start()
        assert self._consumer is not None and self._admin is not None
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(tps)
        # the group's committed offsets count too: they cover partitions another worker consumes
        # and offsets this worker processed before a restart
        committed = await self._admin.list_consumer_group_offsets(self.group_id, partitions=tps)
        positions: dict[TopicPartition, int] = {}
        for tp in tps:
            meta = committed.get(tp)
            position = meta.offset if meta is not None and meta.offset >= 0 else 0
            seen = self.processed.get(tp)
            if seen is not None:
                position = max(position, seen.next_offset)
            positions[tp] = position
        lag = {}
        for tp in tps:
            behind = ends.get(tp, 0) - positions[tp]
            if behind > 0:
                lag[tp] = behind
        return lag
