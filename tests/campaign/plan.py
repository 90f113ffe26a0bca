"""A campaign's plan, made from its seed alone: the boosters (each a scenario with a known input), when
each fact, launch and cancel is published and by which producer, and the faults and when they strike.

Pure: the same seed gives the same plan, so a failure replays with `--seed`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from booster.testing.scenario import ROLES, Scenario, build

# the upstream clients of G6: Java's murmur2 partitioner (aiokafka's, as `booster publish`), and
# librdkafka's default CRC32 one (most of a contact's facts land in another partition than its
# own, and are rerouted), plain and transactional
PRODUCERS = ("murmur2", "librdkafka", "librdkafka-tx")

# kill -9 of a worker (restarted on its state), a worker frozen past its session timeout and resumed
# (a zombie the group must fence), a worker that joins with no state, one that leaves (SIGTERM), the
# broker restarted, the broker killed -9; on the three-node cluster, the leader of most partitions killed
WORKER_FAULTS = ("kill9", "freeze", "join", "leave")
BROKER_FAULTS = ("broker_restart", "broker_kill9")
CLUSTER_FAULTS = ("leader_kill",)
# how often each kind strikes, relative to the others: the broker's faults take it away for 10-30 s
# each, so they are rarer (at the same rate they would keep it down a third of the time)
WEIGHTS = {"kill9": 4, "freeze": 2, "join": 2, "leave": 2, "broker_restart": 1, "broker_kill9": 1, "leader_kill": 1}


@dataclass(frozen=True)
class Timing:
    """The campaign's clock, in seconds from its start."""

    seconds: float  # boosters come due and faults strike in [0, seconds)
    lateness: float  # the workers' BOOSTER_ALLOWED_LATENESS_SECONDS
    lead: float = 25.0  # a booster's facts are published over this long before its deadline

    @property
    def late_window(self) -> float:
        """Facts published after the deadline come within this much of it: a quarter of the allowed
        lateness, so that a broker outage can delay them by the rest and they still count."""
        return self.lateness / 4


@dataclass(frozen=True)
class Fact:
    at: float  # when it is published, seconds from the start
    topic: str
    value: dict[str, Any]
    producer: str
    aborted: bool = False  # published in a transaction that is aborted: it must never count


@dataclass
class BoosterPlan:
    scenario: Scenario
    deadline_at: float  # seconds from the start
    launch: Fact
    account: Fact
    facts: list[Fact] = field(default_factory=list)
    cancel: Fact | None = None  # cancelled_at before the deadline: the booster must be CANCELLED
    late_cancel: Fact | None = None  # cancelled after the deadline and published after the decision: SENT

    @property
    def campaign_id(self) -> str:
        return self.scenario.campaign_id


@dataclass(frozen=True)
class Fault:
    at: float
    kind: str


@dataclass
class Plan:
    seed: int
    timing: Timing
    boosters: list[BoosterPlan]
    faults: list[Fault]

    def publications(self) -> list[Fact]:
        """Every record to publish, in the order of its time."""
        out: list[Fact] = []
        for b in self.boosters:
            out += [b.account, b.launch, *b.facts]
            out += [f for f in (b.cancel, b.late_cancel) if f is not None]
        return sorted(out, key=lambda f: f.at)


def make_plan(
    seed: int,
    start_ms: int,
    timing: Timing,
    *,
    boosters_per_minute: float,
    recipients: tuple[int, int],
    faults_per_minute: float,
    fault_kinds: tuple[str, ...],
) -> Plan:
    rng = random.Random(seed)
    count = max(3, round(timing.seconds / 60 * boosters_per_minute))
    first, last = timing.lead + 10, max(timing.lead + 20, timing.seconds - 5)
    boosters = [
        _booster(rng, seed, i, start_ms, timing, rng.uniform(first, last), rng.randint(*recipients))
        for i in range(count)
    ]
    faults, at = [], 0.0
    while faults_per_minute > 0:
        at += rng.expovariate(faults_per_minute / 60)
        if at >= timing.seconds:
            break
        faults.append(Fault(round(at, 1), rng.choices(fault_kinds, [WEIGHTS[k] for k in fault_kinds])[0]))
    return Plan(seed, timing, sorted(boosters, key=lambda b: b.deadline_at), faults)


def _booster(
    rng: random.Random, seed: int, i: int, start_ms: int, timing: Timing, deadline_at: float, recipients: int
) -> BoosterPlan:
    deadline_ms = start_ms + round(deadline_at * 1000)
    delay = rng.choice([2 * 3600, 6 * 3600, 7 * 24 * 3600])
    channel = rng.choice(["EMAIL", "SMS", "PUSH"])
    roles = list(ROLES)
    rng.shuffle(roles)
    sc = build(
        f"camp{seed}-{i}",
        recipients,
        launched_at=deadline_ms - delay * 1000,
        delay_seconds=delay,
        channel=channel,
        booster_channel=rng.choice([None, None, "SMS", "EMAIL"]),
        account_id=f"acct{seed}-{i % 5}",
        roles=roles,
        count_machine_opens=rng.random() < 0.2,
        scanner_window_seconds=rng.choice([None, None, 0, 30]),
        holdout_percent=rng.choice([0, 0, 0, 10]),
    )

    def fact(at: float, topic: str, value: dict[str, Any], producer: str | None = None, aborted: bool = False) -> Fact:
        return Fact(round(at, 3), topic, value, producer or rng.choice(PRODUCERS), aborted)

    # the launch: mostly before the facts; sometimes only once the deadline has passed (a booster
    # already due when it is launched, as a replayed or held-back launch would be)
    already_due = rng.random() < 0.25
    launch_at = deadline_at + rng.uniform(0, timing.late_window) if already_due else deadline_at - timing.lead - 5
    launch = fact(launch_at, "campaign.launched", sc.launch_record(), "murmur2")
    account = fact(launch_at - 2, "account.channels", sc.account_channels(), "murmur2")
    facts = []
    for topic, records in sc.records.items():
        for value in records:
            # out of order: each fact at its own random moment; a tenth after the deadline, inside the
            # allowed lateness (they count when their event time is before the deadline)
            late = rng.random() < 0.1 and timing.late_window > 0
            at = deadline_at + rng.uniform(0, timing.late_window) if late else deadline_at - rng.uniform(2, timing.lead)
            facts.append(fact(at, topic, value))
            if rng.random() < 0.05:  # published twice (G5)
                facts.append(fact(at + rng.uniform(0, 2), topic, value))
    # engagement in transactions that are aborted: it must never exclude anybody
    for contact in rng.sample(sorted(sc.expected_audience), k=min(len(sc.expected_audience), 5)):
        value = {
            "campaign_id": sc.campaign_id,
            "contact_id": contact,
            "message_id": f"aborted-{contact}",
            "clicked_at": sc.launched_at + 1000,
            "url": "https://example.com/aborted",
        }
        facts.append(fact(deadline_at - rng.uniform(2, timing.lead), "message.clicked", value, "librdkafka-tx", True))
    plan = BoosterPlan(sc, deadline_at, launch, account, facts)
    roll = rng.random()
    if roll < 0.15:  # cancelled just before its deadline, the cancel published close to it
        cancelled_at = deadline_ms - rng.randint(1, 20_000)
        at = deadline_at + rng.uniform(-5, timing.late_window)
        plan.cancel = fact(
            at, "campaign.booster-cancelled", {"campaign_id": sc.campaign_id, "cancelled_at": cancelled_at}
        )
    elif roll < 0.25:  # a cancel made after the deadline, published once the booster is decided: refused
        value = {"campaign_id": sc.campaign_id, "cancelled_at": deadline_ms + 1000}
        plan.late_cancel = fact(deadline_at + timing.lateness + 15, "campaign.booster-cancelled", value)
    return plan


def describe(plan: Plan) -> str:
    """The plan in a few lines, for the log of a run."""
    kinds: dict[str, int] = {}
    for f in plan.faults:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    recipients = sum(len(b.scenario.roles) for b in plan.boosters)
    cancels = sum(b.cancel is not None for b in plan.boosters)
    return (
        f"seed {plan.seed}: {len(plan.boosters)} boosters ({recipients} recipients, {cancels} cancelled before "
        f"their deadline), {len(plan.publications())} records to publish over {plan.timing.seconds:.0f} s; "
        f"{len(plan.faults)} faults planned: {kinds}"
    )
