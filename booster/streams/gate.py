"""The lag gate (G1): a partition's deadline fires only once its inputs are processed past it.

At a moment after the deadline plus the allowed lateness, the gate takes the end offsets of every
input partition the deadline depends on (read-committed, so last stable offsets). Everything
published before that moment lies below them. The deadline fires once the position of each input
partition (this worker's processed offset, or the group's committed offset, whichever is further)
has reached its end offset in that snapshot, however much has been published since. Record
timestamps are not trusted for this: a producer may stamp a record with any time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from mode import Service


class LagGate(Service):
    """Its clients start when first needed and stop with the worker (or `stop()` when used alone)."""

    def __init__(self, bootstrap: str, group_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.processed: dict[TopicPartition, int] = {}  # next offset to process, per input partition
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    def record(self, topic: str, partition: int, offset: int) -> None:
        """Called by the agents after a record's effects are in the tables."""
        tp = TopicPartition(topic, partition)
        if offset + 1 > self.processed.get(tp, 0):
            self.processed[tp] = offset + 1

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self.processed.pop(tp, None)

    async def _clients(self) -> None:
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

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The snapshot: last stable offsets of these partitions, now."""
        await self._clients()
        assert self._consumer is not None
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(tps)
        return ends

    async def lagging(
        self, tps: list[TopicPartition], ends: dict[TopicPartition, int] | None = None
    ) -> dict[TopicPartition, int]:
        """Partitions whose position is short of `ends` (default: the end offsets now), with by how much."""
        await self._clients()
        assert self._consumer is not None and self._admin is not None
        if ends is None:
            ends = await self.end_offsets(tps)
        # the group's committed offsets count too: they cover partitions another worker consumes
        # and offsets this worker processed before a restart
        committed = await self._admin.list_consumer_group_offsets(self.group_id, partitions=tps)
        lag = {}
        for tp in tps:
            meta = committed.get(tp)
            position = max(meta.offset if meta is not None else 0, self.processed.get(tp, 0))
            behind = ends.get(tp, 0) - position
            if behind > 0:
                lag[tp] = behind
        return lag
