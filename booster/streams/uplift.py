"""The uplift measurement: once a booster's measurement window has ended in a partition,
its groups there and how many of each engaged, sent to booster.measurements; the partitions'
measurements merged into the booster's one record on booster.results.

Who was boosted and who was held out is read back from booster.audience, the truth (each outcome was
committed with its command): from the offset the fan-out noted before its first transaction to the
one after its last. Who engaged is the `engagement` table, which ingestion fills with each contact's
first open or click in the window (`streams/ingest.py`). Both are exact through kill -9 and
rebalances: the topic is read committed, the table is written before its facts are acked. A
measurement sent again after a crash is ignored by the merge (the first of a partition counts), and
the window's rows go once the partition's measurement is sent.
"""

from __future__ import annotations

from booster.processors.campaigns import CampaignPartition, evolve_campaign_measured
from booster.processors.packing import pack_measuring, unpack_measuring
from booster.processors.uplift import GroupCounts, PartitionMeasurement, evolve_measuring
from booster.schemas import codec
from booster.streams.audience import delete_rows
from booster.streams.campaigns import CampaignStates
from booster.streams.fanout import Fanout
from booster.streams.metrics import Metrics
from booster.streams.records import Incoming, Topic, log_decision
from booster.streams.store import Table, recipient_key
from booster.streams.wire import measurement_of, measurement_record, results_record

GROUPS = {"INCLUDED": "boosted", "HOLDOUT": "held_out"}


class Measurements:
    def __init__(
        self,
        *,
        campaigns: CampaignStates,
        engagement: Table,
        measuring: Table,
        fanout: Fanout,
        measurements_topic: Topic,
        results_topic: Topic,
        metrics: Metrics,
        partitions: int,
    ) -> None:
        self.campaigns = campaigns
        self.engagement = engagement
        self.measuring = measuring
        self.fanout = fanout
        self.measurements_topic = measurements_topic
        self.results_topic = results_topic
        self.metrics = metrics
        self.partitions = partitions

    async def measure(self, campaign_id: str, p: int, state: CampaignPartition, now: int) -> None:
        """This partition's share of the booster's measurement, sent; then its state says so and the
        window's engagement rows go."""
        schedule = state.schedule
        assert schedule is not None
        booster_id = schedule.booster_id
        groups: dict[str, set[str]] = {"boosted": set(), "held_out": set()}

        def fold(msgs: list[object]) -> None:
            for msg in msgs:
                value = getattr(msg, "value", None)
                if value is None:
                    continue
                outcome = codec().decode("booster.audience", value)
                group = GROUPS.get(outcome["outcome"])
                if group is not None and outcome["booster_id"] == booster_id:
                    groups[group].add(outcome["contact_id"])

        start, end = state.outcomes or (None, None)
        await self.fanout.read_outcomes(p, start, end, fold)
        rows = self.engagement.partition(p)
        engaged = {
            group: sum(1 for row in rows.get_many([recipient_key(campaign_id, c) for c in contacts]) if row is not None)
            for group, contacts in groups.items()
        }
        counts = GroupCounts(len(groups["boosted"]), engaged["boosted"], len(groups["held_out"]), engaged["held_out"])
        part = PartitionMeasurement(
            campaign_id=campaign_id,
            partition=p,
            partitions=self.partitions,
            booster_id=booster_id,
            booster_name=schedule.booster_name,
            account_id=schedule.account_id,
            deadline=schedule.deadline,
            measurement_ms=schedule.measurement_ms,
            holdout_percent=schedule.holdout_percent,
            counts=counts,
            measured_at=now,
        )
        value = codec().encode("booster.measurements", measurement_record(part))
        await self.measurements_topic.send(key=campaign_id.encode(), value=value)
        self.campaigns.put(campaign_id, p, evolve_campaign_measured(state))
        dropped = delete_rows(rows, campaign_id)
        log_decision(
            "measured-partition", campaign_id, partition=p, boosted=counts.boosted,
            boosted_engaged=counts.boosted_engaged, held_out=counts.held_out,
            held_out_engaged=counts.held_out_engaged, engagement_rows=dropped,
        )  # fmt: skip

    async def on_measurement(self, incoming: Incoming) -> None:
        """booster.measurements: one partition's; the last one makes the booster's results."""
        record = incoming.decode()
        campaign_id = incoming.key_text(record, "campaign_id")
        store = self.measuring.partition(incoming.partition)
        key = campaign_id.encode()
        raw = store.get(key)
        old = None if raw is None else unpack_measuring(raw, campaign_id)
        new, results = evolve_measuring(old, measurement_of(record))
        if results is not None:
            value = codec().encode("booster.results", results_record(results))
            await self.results_topic.send(key=campaign_id.encode(), value=value)
            self.metrics.inc("booster_results_total")
            u = results.uplift
            log_decision(
                "measured", campaign_id, booster_id=results.booster_id, boosted=u.counts.boosted,
                boosted_engaged=u.counts.boosted_engaged, held_out=u.counts.held_out,
                held_out_engaged=u.counts.held_out_engaged, difference=u.difference,
                difference_low=u.difference_low, difference_high=u.difference_high,
            )  # fmt: skip
        if new != old:
            store.write({key: pack_measuring(new)})
