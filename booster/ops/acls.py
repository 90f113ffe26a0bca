"""The least-privilege ACLs of a secured cluster: what a worker, an upstream producer and an operator
may do, from the contract's topic roles. `booster topics create --acls` writes them (as a principal
allowed to alter ACLs); `booster topics acls` prints them for other tooling."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from booster.config import Settings
from booster.errors import BrokerError
from booster.schemas.catalog import CATALOG, LAUNCHES_BY_ACCOUNT, REROUTED

# the principals `booster kafka start --secure` makes users for
WORKER = "User:booster-worker"
PRODUCER = "User:booster-upstream"
OPERATOR = "User:booster-operator"


class Resource(IntEnum):  # Kafka's ResourceType codes
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class Operation(IntEnum):  # Kafka's AclOperation codes
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10
    IDEMPOTENT_WRITE = 12


class Pattern(IntEnum):  # Kafka's PatternType codes
    LITERAL = 3
    PREFIXED = 4


CLUSTER_NAME = "kafka-cluster"


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW entry: `principal` may do `operation` on the resource, from any host."""

    principal: str
    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = Pattern.LITERAL

    def describe(self) -> str:
        kind = self.resource.name.lower().replace("_", "-")
        prefixed = " (prefix)" if self.pattern is Pattern.PREFIXED else ""
        return f"{self.principal:<24} {self.operation.name:<16} {kind} {self.name}{prefixed}"


def _principal(raw: str) -> str:
    if ":" not in raw or not raw.split(":", 1)[1]:
        raise BrokerError(f"principal {raw!r} is not TYPE:NAME (for example User:booster-worker)")
    return raw


def worker_acls(settings: Settings, principal: str = WORKER) -> list[Acl]:
    """A worker reads its inputs, reads and writes its internal and output topics, owns its changelogs
    (creating them at start), its consumer group and the transactional ids of its fan-out and its
    changelogs."""
    p = _principal(principal)
    out: list[Acl] = []
    for spec in {s.name: s for s in CATALOG.values()}.values():
        ops = [Operation.READ, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS]
        if spec.role != "input":
            ops.append(Operation.WRITE)
        out += [Acl(p, Resource.TOPIC, settings.topic(spec.name), op) for op in ops]
    for name in (LAUNCHES_BY_ACCOUNT, REROUTED):
        ops = [Operation.READ, Operation.WRITE, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS]
        out += [Acl(p, Resource.TOPIC, settings.topic(name), op) for op in ops]
    # Faust's changelogs and its assignor's topic: `<group>-<table>-changelog`, `<group>-__assignor-...`
    changelogs = f"{settings.group_id}-"
    for op in (Operation.CREATE, Operation.READ, Operation.WRITE, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS):
        out.append(Acl(p, Resource.TOPIC, changelogs, op, Pattern.PREFIXED))
    out += [Acl(p, Resource.GROUP, settings.group_id, op) for op in (Operation.READ, Operation.DESCRIBE)]
    # `<group>-fanout-<partition>` and `<group>-changelog-<partition>`: only the workers may fence (and
    # so take over) a partition's fan-out or its tables' changelogs
    for kind in ("fanout", "changelog"):
        owner = f"{settings.group_id}-{kind}-"
        for op in (Operation.WRITE, Operation.DESCRIBE):
            out.append(Acl(p, Resource.TRANSACTIONAL_ID, owner, op, Pattern.PREFIXED))
    out.append(Acl(p, Resource.CLUSTER, CLUSTER_NAME, Operation.IDEMPOTENT_WRITE))
    return sorted(out)


def producer_acls(settings: Settings, principal: str = PRODUCER) -> list[Acl]:
    """An upstream producer writes the input topics, nothing else (idempotently)."""
    p = _principal(principal)
    inputs = sorted({s.name for s in CATALOG.values() if s.role == "input"})
    out = [
        Acl(p, Resource.TOPIC, settings.topic(name), op)
        for name in inputs
        for op in (Operation.WRITE, Operation.DESCRIBE)
    ]
    out.append(Acl(p, Resource.CLUSTER, CLUSTER_NAME, Operation.IDEMPOTENT_WRITE))
    return sorted(out)


def operator_acls(settings: Settings, principal: str = OPERATOR) -> list[Acl]:
    """An operator's CLI reads every topic (tail, boosters, audience, results, lag) and the group's
    offsets; it writes nothing (`booster publish` and `dead-letter replay` need a producer's ACLs)."""
    p = _principal(principal)
    names = sorted({s.name for s in CATALOG.values()} | {LAUNCHES_BY_ACCOUNT, REROUTED})
    ops = (Operation.READ, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS)
    out = [Acl(p, Resource.TOPIC, settings.topic(name), op) for name in names for op in ops]
    out.append(Acl(p, Resource.GROUP, settings.group_id, Operation.DESCRIBE))
    return sorted(out)


def all_acls(settings: Settings, worker: str = WORKER, producer: str = PRODUCER, operator: str = OPERATOR) -> list[Acl]:
    return worker_acls(settings, worker) + producer_acls(settings, producer) + operator_acls(settings, operator)


async def write(settings: Settings, acls: list[Acl]) -> None:
    """Create these ACLs on the cluster (as a principal allowed to alter them: a super user)."""
    from booster.ops.admin import admin_client
    from booster.streams import compat
    from booster.streams.connect import connected

    entries = [(a.resource.value, a.name, a.pattern.value, a.principal, a.operation.value) for a in acls]
    async with connected(settings, admin_client(settings)) as admin:
        refusals = await compat.create_acls(admin, entries)
    if refusals:
        raise BrokerError(
            f"the broker refused {len(refusals)} ACL(s), first: {refusals[0]}; write ACLs as a super user or a "
            "principal with ALTER on the cluster (and an authorizer must be configured)"
        )
