"""Campaign states per partition (the `campaigns` table), with a cache for the ingest path.

Ingestion reads the state of a message's campaign for every event (to drop events of fired or
booster-less campaigns, and to keep the engagement a booster's measurement counts); the cache keeps
the live ones in memory. A campaign leaves the cache when it fires (or, when its booster is measured,
once it is measured) or is forgotten, and a partition's campaigns leave it when the partition is
revoked, so the cache holds at most the live and measuring campaigns of this worker's partitions (G8).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from booster.processors.campaigns import CampaignPartition, measuring
from booster.processors.packing import pack_campaign, unpack_campaign
from booster.streams.store import Table, campaign_key, split_campaign_key


class CampaignStates:
    def __init__(self, table: Table) -> None:
        self.table = table
        self._cache: dict[tuple[str, int], CampaignPartition | None] = {}

    def get(self, campaign_id: str, partition: int) -> CampaignPartition | None:
        key = (campaign_id, partition)
        if key in self._cache:
            return self._cache[key]
        raw = self.table.partition(partition).get(campaign_key(campaign_id, partition))
        state = None if raw is None else unpack_campaign(raw, campaign_id)
        self._remember(key, state)
        return state

    def put(self, campaign_id: str, partition: int, state: CampaignPartition | None) -> None:
        """Write (None: delete) a campaign's state in a partition; the caller flushes the changelog."""
        key = campaign_key(campaign_id, partition)
        self.table.partition(partition).write({key: None if state is None else pack_campaign(state)})
        self._remember((campaign_id, partition), state)

    def _remember(self, key: tuple[str, int], state: CampaignPartition | None) -> None:
        # a fired booster whose measurement window is open stays: its people's opens and clicks read it
        if state is None or (state.fired and not measuring(state)):
            self._cache.pop(key, None)
        else:
            self._cache[key] = state

    def in_partition(self, partition: int) -> Iterator[tuple[str, CampaignPartition]]:
        """Every campaign state of a partition, read from the table."""
        for key, value in self.table.partition(partition).items():
            campaign_id, p = split_campaign_key(key)
            if p == partition:  # the memory store walks every partition's rows
                yield campaign_id, unpack_campaign(value, campaign_id)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        for key in [k for k in self._cache if k[1] in gone]:
            del self._cache[key]

    def cached(self) -> int:
        return len(self._cache)
