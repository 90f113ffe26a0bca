"""Topic administration: create the contract's and the internal topics, describe what exists."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from booster.config import Settings
from booster.errors import TopologyError
from booster.schemas.catalog import CATALOG, LAUNCHES_BY_ACCOUNT, REROUTED, STATE_TABLES
from booster.streams.connect import client_options, connected

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WantedTopic:
    name: str  # contract name, without prefix
    compacted: bool
    contact_keyed: bool
    expires: bool = False  # compacted, and deleted after BOOSTER_AUDIENCE_RETENTION_DAYS as well

    @property
    def policy(self) -> str:
        return "compact,delete" if self.expires else _policy(self.compacted)

    def configs(self, settings: Settings) -> dict[str, str]:
        configs = {"cleanup.policy": self.policy}
        if self.expires:
            configs["retention.ms"] = str(settings.audience_retention_ms)
        return configs


@dataclass(frozen=True)
class TopicState:
    wanted: WantedTopic
    real_name: str
    exists: bool
    partitions: int | None
    cleanup_policy: str | None
    problems: tuple[str, ...]


def wanted_topics() -> list[WantedTopic]:
    topics = [WantedTopic(s.name, s.compacted, s.contact_keyed, s.expires) for s in CATALOG.values()]
    topics.append(WantedTopic(LAUNCHES_BY_ACCOUNT, False, False))
    topics.append(WantedTopic(REROUTED, False, True))
    return topics


def admin_client(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=30000)


async def describe(settings: Settings) -> list[TopicState]:
    async with connected(settings, admin_client(settings)) as admin:
        return await _describe(admin, settings)


async def _describe(admin: AIOKafkaAdminClient, settings: Settings) -> list[TopicState]:
    existing = set(await admin.list_topics())
    wanted = wanted_topics()
    names = [settings.topic(w.name) for w in wanted if settings.topic(w.name) in existing]
    partitions: dict[str, int] = {}
    policies: dict[str, str] = {}
    if names:
        for t in await admin.describe_topics(names):
            partitions[t["topic"]] = len(t["partitions"])
        resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        for response in await admin.describe_configs(resources):
            for resource in response.resources:
                _err, _msg, _type, rname, entries = resource[:5]
                for entry in entries:
                    if entry[0] == "cleanup.policy":
                        policies[rname] = entry[1]
    states = []
    for w in wanted:
        real = settings.topic(w.name)
        exists = real in existing
        problems: list[str] = []
        n = partitions.get(real)
        policy = policies.get(real)
        if not exists:
            problems.append("missing")
        else:
            if n != settings.partitions:
                problems.append(f"has {n} partitions, BOOSTER_PARTITIONS is {settings.partitions}")
            if policy is not None and policy != w.policy:
                problems.append(f"cleanup.policy is {policy}, should be {w.policy}")
        states.append(TopicState(w, real, exists, n, policy, tuple(problems)))
    return states


# Kafka never compacts a partition's active segment, and rolls it at 1 GiB or after 7 days by default:
# a changelog smaller than that was never compacted, and a fresh worker read every version of every
# row. Smaller segments, rolled at least hourly, and a lower dirty ratio let the cleaner keep about one
# record per row, and tombstones for a day (delete.retention.ms) so a restore still sees deletions.
CHANGELOG_CONFIGS: dict[str, str] = {
    "cleanup.policy": "compact",
    "segment.bytes": str(64 * 1024 * 1024),
    "segment.ms": str(3_600_000),
    "min.cleanable.dirty.ratio": "0.3",
}


def changelog_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """The workers' table changelogs (real name: topic configs), one partition per input partition."""
    return {settings.changelog_topic(table): CHANGELOG_CONFIGS for table in STATE_TABLES}


async def changelog_records(settings: Settings) -> int:
    """Records on the workers' table changelogs, counted as a fresh worker reads them (committed only:
    the changelogs are written in transactions, and their commit markers take offsets but are no
    records)."""
    consumer = AIOKafkaConsumer(**client_options(settings), isolation_level="read_committed", enable_auto_commit=False)
    async with connected(settings, consumer):
        tps = [TopicPartition(t, p) for t in changelog_topics(settings) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        count, reading = 0, {tp for tp in tps if ends[tp] > 0}
        while reading:
            for _tp, records in (await consumer.getmany(*reading, timeout_ms=500, max_records=50_000)).items():
                count += len(records)
            reading = {tp for tp in reading if await consumer.position(tp) < ends[tp]}
        return count


def leader_topic(settings: Settings) -> str:
    """Faust's one-partition topic whose owner is the group's leader (it is never written)."""
    return f"{settings.group_id}-__assignor-__leader"


def all_topics(settings: Settings) -> list[str]:
    """Every topic the workers use: the contract's, then the internal ones."""
    return [*(settings.topic(w.name) for w in wanted_topics()), *changelog_topics(settings), leader_topic(settings)]


async def create(settings: Settings) -> list[str]:
    """Create every missing topic; returns the names created. Existing topics are left as they are."""
    contract = await create_named(settings, {settings.topic(w.name): w.configs(settings) for w in wanted_topics()})
    return contract + await create_internal(settings)


async def create_internal(settings: Settings) -> list[str]:
    """The worker's own topics, created by `booster worker` before it joins its group (Faust's own
    topic creation is off). Left to Faust, the changelogs are created as its tables start, racing
    its consumer's first metadata request; the group leader's assignor leaves out, with a warning,
    any subscribed topic its metadata does not list, and metadata is refreshed every 5 minutes. A
    changelog left out is not restored by the worker that takes its partitions over: it runs
    without that table's state."""
    created = await create_named(settings, changelog_topics(settings))
    return created + await create_named(settings, {leader_topic(settings): False}, partitions=1)


async def create_named(
    settings: Settings, topics: Mapping[str, bool | Mapping[str, str]], partitions: int | None = None
) -> list[str]:
    """Create the missing ones of these topics (real name: compacted or not, or its topic configs) with
    `partitions` (default BOOSTER_PARTITIONS), and wait until the broker lists them; returns the names
    created."""
    created = []
    async with connected(settings, admin_client(settings)) as admin:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name,
                partitions or settings.partitions,
                settings.replication_factor,
                topic_configs=_with_replicas(
                    settings, {"cleanup.policy": _policy(wanted)} if isinstance(wanted, bool) else dict(wanted)
                ),
            )
            for name, wanted in topics.items()
            if name not in existing
        ]
        for topic in new:
            try:
                await admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:  # another process won the race: that is fine
                pass
        await _until_listed(admin, {t.name for t in new})
    return created


def _with_replicas(settings: Settings, configs: dict[str, str]) -> dict[str, str]:
    if settings.replication_factor > 1:  # one replica may be down without refusing an acks=all write
        configs["min.insync.replicas"] = str(settings.min_insync_replicas)
    return configs


def _policy(compacted: bool) -> str:
    return "compact" if compacted else "delete"


async def _until_listed(admin: AIOKafkaAdminClient, names: set[str], timeout: float = 30.0) -> None:
    """The controller accepts a new topic before every broker's metadata lists it: wait for that, so a
    worker started right after `create` finds its topics."""
    deadline = time.monotonic() + timeout
    while missing := names - set(await admin.list_topics()):
        if time.monotonic() > deadline:
            raise TopologyError(f"topics created but not listed after {timeout:.0f} s: {', '.join(sorted(missing))}")
        await asyncio.sleep(0.1)


async def delete_topics(settings: Settings, matching: Callable[[str], bool]) -> list[str]:
    """Delete every topic whose name `matching` accepts (the tests' and the benchmark's own prefixes:
    a broker's metadata, which every client reads, grows with its topics). Returns the names."""
    async with connected(settings, admin_client(settings)) as admin:
        doomed = sorted(t for t in await admin.list_topics() if matching(t))
        for start in range(0, len(doomed), 500):
            with contextlib.suppress(UnknownTopicOrPartitionError):  # deleted by someone else meanwhile
                await admin.delete_topics(doomed[start : start + 500])
        return doomed


def copartition_problems(states: list[TopicState]) -> list[str]:
    """Contact-keyed topics must all have the same partition count, or recipients are split."""
    counts = {s.real_name: s.partitions for s in states if s.wanted.contact_keyed and s.exists}
    missing = [s.real_name for s in states if not s.exists]
    problems = []
    if missing:
        problems.append(f"missing topics: {', '.join(missing)}; run `booster topics create`")
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        problems.append(
            "contact-keyed topics are not co-partitioned (" + detail + "); recreate them with the "
            "same partition count (BOOSTER_PARTITIONS) before running a worker"
        )
    return problems


async def check_ready(settings: Settings) -> None:
    """Raise TopologyError unless every topic exists and the contact topics are co-partitioned."""
    states = await describe(settings)
    problems = copartition_problems(states)
    wrong = [
        f"{s.real_name} has {s.partitions} partitions, the worker expects {settings.partitions}"
        for s in states
        if s.exists and s.partitions != settings.partitions
    ]
    if problems or wrong:
        raise TopologyError("; ".join(problems + wrong))


# under the transactional-id prefixes of the fan-out and of the changelogs, used by neither
PREFLIGHT_TRANSACTIONS = ("fanout-preflight", "changelog-preflight")


async def check_access(settings: Settings) -> None:
    """Before a worker joins its group: may its principal read the group's offsets and take over a
    fan-out and a partition's changelogs? Without these ACLs it would start and fail at its first
    takeover or deadline. The transactional ids tried are ones nothing uses, so nothing is fenced."""
    async with connected(settings, admin_client(settings)) as client:
        deadline = time.monotonic() + 60
        while True:
            try:
                await client.list_consumer_group_offsets(settings.group_id)
                break
            except KafkaError as exc:  # a new cluster makes its offsets topic on the first ask
                if not exc.retriable or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    for name in PREFLIGHT_TRANSACTIONS:
        probe = AIOKafkaProducer(
            **client_options(settings), transactional_id=f"{settings.group_id}-{name}", enable_idempotence=True
        )
        async with connected(settings, probe):
            pass
