"""Running a campaign's plan against real workers and a real broker: the publisher, the workers and
their supervisor, the faults, and the read-back and verification at the end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from confluent_kafka import KafkaException, Producer

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.ops import admin
from booster.ops.clients import producer as aiokafka_producer
from booster.ops.clients import read_topic
from booster.schemas import codec
from booster.streams.records import EXIT_RETRY_LATER
from booster.testing.workers import WorkerProcess
from tests.campaign.expected import Written, admissible, check, expected_of
from tests.campaign.plan import BROKER_FAULTS, CLUSTER_FAULTS, Fact, Fault, Plan
from tests.helpers import key_of


def say(message: str) -> None:
    print(f"[campaign {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Outcome:
    seed: int
    seconds: float = 0.0
    boosters: int = 0
    verified: int = 0
    sent: int = 0
    cancelled: int = 0
    # boosters that cannot be verified: their cancel, or too many facts of a cancelled one, reached the
    # broker only after the deadline's snapshot could be taken
    ambiguous: list[str] = field(default_factory=list)
    held_back: int = 0  # facts of verified boosters that reached the broker after that: they may count or not
    commands: int = 0
    records_published: int = 0
    faults: list[tuple[float, str, str]] = field(default_factory=list)  # when, kind, what exactly
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    worker_exits: dict[str, int] = field(default_factory=dict)  # exit code -> count
    drain_seconds: float = 0.0  # from the faults' end to the last final report (or giving up)
    read_again: int = 0  # the ledger's last resort (a record held or dropped), from the workers' logs
    liveness_restarts: list[str] = field(default_factory=list)  # workers /live said to restart, and why
    violations: list[str] = field(default_factory=list)
    logs: str = ""  # where the workers' logs are

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class Broker:
    """The broker under the campaign: restarted and killed on plan."""

    def __init__(self, kafka: LocalKafka) -> None:
        self.kafka = kafka
        self.down_since: float | None = None
        self.lock = threading.Lock()

    @property
    def up(self) -> bool:
        return self.down_since is None

    def restart(self, kill: bool, rng: random.Random) -> str:
        with self.lock:
            self.down_since = time.monotonic()
            if kill:
                for node in self.kafka.node_ids:
                    pid = self.kafka.pid(node)
                    if pid is not None:
                        os.killpg(pid, signal.SIGKILL)
                pause = rng.uniform(2, 12)
                time.sleep(pause)
                self.kafka.start(say=lambda _m: None)
                what = f"killed -9, down {pause:.0f} s"
            else:
                self.kafka.stop(say=lambda _m: None)
                self.kafka.start(say=lambda _m: None)
                what = "stopped and started"
            self.down_since = None
            return what

    def kill_leader(self, settings: Settings, rng: random.Random) -> str:
        """The node leading most partitions of booster.commands, killed -9, then started again."""

        async def leaders() -> Counter[int]:
            client = AIOKafkaAdminClient(bootstrap_servers=settings.broker)
            await client.start()
            try:
                described = await client.describe_topics([settings.topic("booster.commands")])
                return Counter(p["leader"] for t in described for p in t["partitions"])
            finally:
                await client.close()

        node = asyncio.run(leaders()).most_common(1)[0][0]
        with self.lock:
            pid = self.kafka.pid(node)
            if pid is None:
                return f"node {node} already down"
            os.killpg(pid, signal.SIGKILL)
            time.sleep(rng.uniform(2, 10))
            self.kafka.start(say=lambda _m: None)
        return f"node {node} killed -9 and started again"


class Workers:
    """The workers, and a supervisor that starts again any that exits (as Kubernetes would)."""

    def __init__(self, settings: Settings, workdir: Path, count: int, env: dict[str, str]) -> None:
        self.settings = settings
        self.workdir = workdir
        self.env = env
        self.running: list[WorkerProcess] = []
        self.every: list[WorkerProcess] = []
        self.exits: Counter[str] = Counter()
        self.bad_exits: list[str] = []
        self.frozen: set[WorkerProcess] = set()
        self.not_live: dict[WorkerProcess, float] = {}  # since when /live has answered 503
        self.liveness_restarts: list[str] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        for _ in range(count):
            self.join()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()

    def join(self) -> WorkerProcess:
        """A new worker with an empty state directory."""
        with self.lock:
            name = f"w{len(self.every)}"
            worker = WorkerProcess(self.settings, self.workdir / name, name=name, **self.env)
            worker.start(wait_ready=False)
            self.running.append(worker)
            self.every.append(worker)
            return worker

    def pick(self, rng: random.Random) -> WorkerProcess | None:
        with self.lock:
            alive = [w for w in self.running if w.alive() and w not in self.frozen]
            return rng.choice(alive) if alive else None

    def leave(self, worker: WorkerProcess) -> None:
        with self.lock:
            self.running.remove(worker)
        worker.stop()
        self._note_exit(worker)

    def kill(self, worker: WorkerProcess) -> None:
        with self.lock:  # the supervisor must not start it again as well
            worker.kill()
            self._note_exit(worker)
            worker.start(wait_ready=False)  # on its state, as a restarted pod would

    def freeze(self, worker: WorkerProcess, seconds: float) -> None:
        assert worker.proc is not None
        with self.lock:
            self.frozen.add(worker)
        os.killpg(worker.proc.pid, signal.SIGSTOP)

        def thaw() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
            with self.lock:
                self.frozen.discard(worker)

        threading.Timer(seconds, thaw).start()

    def _note_exit(self, worker: WorkerProcess) -> None:
        if worker.proc is not None and worker.proc.returncode is not None:
            self.exits[str(worker.proc.returncode)] += 1

    def _supervise(self) -> None:
        while not self._stop.wait(1.0):
            self._probe_liveness()
            with self.lock:
                for worker in [w for w in self.running if w.proc is not None and w.proc.poll() is not None]:
                    code = worker.proc.returncode if worker.proc is not None else None
                    self.exits[str(code)] += 1
                    if code != EXIT_RETRY_LATER:  # 75: the broker was away too long, as documented
                        self.bad_exits.append(f"{worker.log_path.stem} exited with {code}: {worker.log_text()[-1500:]}")
                    worker.start(wait_ready=False)

    def _probe_liveness(self) -> None:
        """As Kubernetes' liveness probe: a worker whose /live answers 503 for 30 s is killed and started
        again (each such restart is reported: in a healthy run there is none)."""
        with self.lock:
            watched = [w for w in self.running if w.alive() and w not in self.frozen]
        for worker in watched:
            status, why = worker.get("/live")
            if status != 503:
                self.not_live.pop(worker, None)
                continue
            since = self.not_live.setdefault(worker, time.monotonic())
            if time.monotonic() - since >= 30:
                self.liveness_restarts.append(f"{worker.log_path.stem}: {why.strip()}")
                self.not_live.pop(worker, None)
                self.kill(worker)

    def count(self) -> int:
        with self.lock:
            return len(self.running)

    def stop(self) -> None:
        self._stop.set()
        self._supervisor.join()
        for worker in self.every:
            if worker.proc is not None and worker.proc.poll() is None:
                os.killpg(worker.proc.pid, signal.SIGCONT)
            worker.stop()

    def logs(self) -> str:
        return "".join(w.log_path.read_text(errors="replace") for w in self.every if w.log_path.exists())


class Publisher:
    """Publishes the plan's records on time with the producer each names, retrying through broker
    outages until each is acknowledged; notes when each was (a record that counts must be on the
    broker before its deadline's snapshot)."""

    def __init__(self, settings: Settings, plan: Plan, start: float) -> None:
        self.settings = settings
        self.plan = plan
        self.start = start  # monotonic
        self.confirmed: dict[int, float] = {}  # id(fact) -> seconds from the start it was acknowledged
        self.errors: list[str] = []
        self.done = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def begin(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _now(self) -> float:
        return time.monotonic() - self.start

    def _librdkafka(self, transactional: bool) -> Producer:
        config: dict[str, Any] = {
            "bootstrap.servers": self.settings.broker,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 600_000,  # through any outage of the campaign
        }
        if transactional:
            config["transactional.id"] = f"campaign-{uuid.uuid4().hex}"
            config["transaction.timeout.ms"] = 600_000
        p = Producer(config)
        if transactional:
            self._retry(lambda: p.init_transactions(30))
        return p

    def _retry(self, call: Any) -> None:
        give_up = time.monotonic() + 600
        while True:
            try:
                call()
                return
            except KafkaException as exc:
                if time.monotonic() > give_up:
                    raise
                self.errors.append(str(exc)[:200])
                time.sleep(1.0)

    async def _run(self) -> None:
        try:
            await self._publish()
        except Exception as exc:
            self.errors.append(f"publisher stopped: {exc!r}")
            raise
        finally:
            self.done.set()

    async def _publish(self) -> None:
        plain = self._librdkafka(False)
        self._tx = self._librdkafka(True)
        self._murmur2 = await self._new_murmur2()
        facts = self.plan.publications()
        i = 0
        try:
            while i < len(facts):
                wait = facts[i].at - self._now()
                if wait > 0:
                    await asyncio.sleep(min(wait, 0.5))
                    plain.poll(0)
                    continue
                due = []
                while i < len(facts) and facts[i].at <= self._now():
                    due.append(facts[i])
                    i += 1
                await self._send(due, plain)
            await asyncio.to_thread(self._flush, plain)
        finally:
            await self._close(self._murmur2)

    async def _new_murmur2(self) -> Any:
        while True:
            producer = aiokafka_producer(self.settings, request_timeout_ms=10_000)
            try:
                await asyncio.wait_for(producer.start(), 30)
                return producer
            except Exception as exc:
                self.errors.append(f"murmur2 producer start: {exc!r}"[:200])
                await self._close(producer)
                await asyncio.sleep(1.0)

    async def _close(self, producer: Any) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 30)

    def _flush(self, plain: Producer) -> None:
        while plain.flush(5) > 0:
            pass

    async def _send(self, due: list[Fact], plain: Producer) -> None:
        by: dict[tuple[str, bool], list[Fact]] = {}
        for f in due:
            by.setdefault((f.producer, f.aborted), []).append(f)
        for (kind, aborted), facts in by.items():
            if kind == "murmur2":
                await self._send_murmur2(facts)
            elif kind == "librdkafka":
                for f in facts:
                    self._send_plain(f, plain)
            else:
                await asyncio.to_thread(self._send_transaction, facts, aborted)

    async def _send_murmur2(self, facts: list[Fact]) -> None:
        for f in facts:
            failures = 0
            while True:
                try:
                    # bounded: aiokafka's send can wait for ever on a batch lost in a broker restart
                    topic, value, key = (
                        self.settings.topic(f.topic),
                        codec().encode(f.topic, f.value),
                        key_of(f.topic, f.value),
                    )
                    await asyncio.wait_for(self._murmur2.send_and_wait(topic, value, key=key), 30)
                    self.confirmed[id(f)] = self._now()
                    break
                except Exception as exc:  # the broker away: the same record again (a duplicate counts once)
                    self.errors.append(f"murmur2: {exc!r}"[:200])
                    failures += 1
                    if failures % 3 == 0:  # a producer a broker restart left in a state it cannot leave
                        await self._close(self._murmur2)
                        self._murmur2 = await self._new_murmur2()
                    await asyncio.sleep(0.5)

    def _send_plain(self, f: Fact, plain: Producer) -> None:
        def delivered(err: Any, _msg: Any) -> None:
            if err is None:
                self.confirmed[id(f)] = self._now()
            else:  # only after message.timeout.ms: the campaign's outages are shorter
                self.errors.append(f"librdkafka delivery failed: {err}")

        while True:
            try:
                plain.produce(
                    self.settings.topic(f.topic),
                    codec().encode(f.topic, f.value),
                    key_of(f.topic, f.value),
                    on_delivery=delivered,
                )
                break
            except BufferError:
                plain.poll(0.5)
        plain.poll(0)

    def _send_transaction(self, facts: list[Fact], aborted: bool) -> None:
        """One transaction of these facts, committed (or aborted, for facts that must never count),
        tried again until it is: a transaction the broker's restart interrupted is aborted, or, when
        the producer can no longer go on (a fatal error), a new producer fences it and starts over.
        A commit whose answer was lost may have happened: the facts may then be there twice, which
        changes nothing (G5)."""
        while True:
            tx = self._tx
            try:
                tx.begin_transaction()
                for f in facts:
                    tx.produce(self.settings.topic(f.topic), codec().encode(f.topic, f.value), key_of(f.topic, f.value))
                if aborted:
                    tx.abort_transaction(60)
                else:
                    tx.commit_transaction(60)
                    now = self._now()
                    for f in facts:
                        self.confirmed[id(f)] = now
                return
            except KafkaException as exc:
                error = exc.args[0]
                self.errors.append(f"transaction: {error}"[:200])
                time.sleep(1.0)
                if not error.fatal() and error.txn_requires_abort():
                    try:
                        tx.abort_transaction(60)
                        continue
                    except KafkaException as again:
                        self.errors.append(f"transaction abort: {again.args[0]}"[:200])
                self._tx = self._librdkafka(True)


async def read_back(settings: Settings) -> Written:
    commands: dict[str, list[dict[str, Any]]] = {}
    async for msg in read_topic(settings, "booster.commands", until_end=True):
        record = codec().decode("booster.commands", msg.value)
        commands.setdefault(record["booster_id"], []).append(record)
    reports: dict[str, dict[str, Any]] = {}
    async for msg in read_topic(settings, "booster.reports", until_end=True):
        report = codec().decode("booster.reports", msg.value)
        reports[report["campaign_id"]] = report
    outcomes: dict[str, list[dict[str, Any]]] = {}
    async for msg in read_topic(settings, "booster.audience", until_end=True):
        if msg.value is None:
            continue
        outcome = codec().decode("booster.audience", msg.value)
        outcomes.setdefault(outcome["booster_id"], []).append(outcome)
    return Written(commands, reports, outcomes)


FINAL = frozenset({"SENT", "CANCELLED", "REJECTED"})


async def finals(settings: Settings) -> dict[str, str]:
    found: dict[str, str] = {}
    async for msg in read_topic(settings, "booster.reports", until_end=True):
        report = codec().decode("booster.reports", msg.value)
        found[report["campaign_id"]] = report["status"]
    return {c: s for c, s in found.items() if s in FINAL}


def run_campaign(
    plan: Plan,
    settings: Settings,
    kafka: LocalKafka,
    workdir: Path,
    *,
    workers: int,
    max_workers: int,
    session_timeout: float,
    drain_seconds: float,
    start: float,
    drain_cap_seconds: float | None = None,
) -> Outcome:
    """Run the plan (its clock started at `start`, monotonic); return what was found. Once the faults
    and the publishing end, the workers drain what the faults left behind for as long as boosters keep
    reaching their final report: a booster fails only once none has for `drain_seconds` (or after
    `drain_cap_seconds` in all), so a long campaign's backlog is told apart from a booster stuck."""
    outcome = Outcome(plan.seed, boosters=len(plan.boosters))
    rng = random.Random(plan.seed * 7919 + 1)
    asyncio.run(admin.create(settings))
    broker = Broker(kafka)
    pool = Workers(settings, workdir, workers, {})
    publisher = Publisher(settings, plan, start)
    publisher.begin()
    try:
        for fault in plan.faults:
            wait = fault.at - (time.monotonic() - start)
            if wait > 0:
                time.sleep(wait)
            struck = round(time.monotonic() - start, 1)  # a broker restart delays the faults after it
            what = _strike(fault, pool, broker, settings, rng, max_workers, session_timeout)
            outcome.faults.append((struck, fault.kind, what))
            say(f"fault at {struck:.0f} s: {fault.kind}: {what}")
        publisher.join(timeout=max(0.0, plan.timing.seconds + 60 - (time.monotonic() - start)) + 120)
        if not publisher.done.is_set():
            outcome.violations.append(f"the publisher did not finish; its last errors: {publisher.errors[-5:]}")
        if pool.count() == 0:
            pool.join()
        drained_from = time.monotonic()
        cap = drained_from + (drain_seconds if drain_cap_seconds is None else drain_cap_seconds)
        deadline = min(cap, drained_from + drain_seconds)
        wanted = {b.campaign_id for b in plan.boosters}
        left = wanted
        while time.monotonic() < deadline:
            done = asyncio.run(finals(settings))
            if len(wanted - set(done)) < len(left):  # progress: the backlog is being worked through
                deadline = min(cap, time.monotonic() + drain_seconds)
            left = wanted - set(done)
            if not left:
                break
            say(f"{len(left)} booster(s) without a final report yet; e.g. {sorted(left)[:3]}")
            time.sleep(5)
        outcome.drain_seconds = round(time.monotonic() - drained_from, 1)
    finally:
        pool.stop()
    outcome.seconds = round(time.monotonic() - start, 1)
    outcome.records_published = len(publisher.confirmed)
    outcome.faults_by_kind = dict(Counter(kind for _, kind, _ in outcome.faults))
    outcome.worker_exits = dict(pool.exits)
    outcome.liveness_restarts = pool.liveness_restarts
    logs = pool.logs()
    outcome.read_again = logs.count("reading the partition again")
    outcome.violations += pool.bad_exits
    outcome.violations += [e for e in publisher.errors if e.startswith("publisher stopped")]
    written = asyncio.run(read_back(settings))
    outcome.commands = sum(len(c) for c in written.commands.values())
    snapshot_after = plan.timing.lateness  # a fact on the broker by deadline + lateness counts for sure
    for b in plan.boosters:
        counted = [f for f in b.facts if not f.aborted]
        confirmed = {id(f): publisher.confirmed.get(id(f)) for f in (*counted, *([b.cancel] if b.cancel else []))}
        if any(c is None for c in confirmed.values()):
            outcome.violations.append(f"{b.campaign_id}: a record was never acknowledged by the broker")
            continue
        late = {i for i, c in confirmed.items() if c is not None and c > b.deadline_at + snapshot_after}
        if b.cancel is not None and id(b.cancel) in late:
            outcome.ambiguous.append(b.campaign_id)  # the whole booster may be cancelled or not
            continue
        account_at = publisher.confirmed.get(id(b.account))
        if account_at is None or account_at > b.deadline_at + snapshot_after:
            outcome.ambiguous.append(b.campaign_id)  # its launch may be REJECTED for an unknown account
            continue
        held_back = [f for f in counted if id(f) in late]
        facts = admissible(b, [f for f in counted if id(f) not in late], held_back, written)
        if facts is None:
            outcome.ambiguous.append(b.campaign_id)
            continue
        outcome.held_back += len(held_back)
        expected = expected_of(b, facts, cancelled=b.cancel is not None)
        problems = check(b, expected, written, settings.partitions)
        outcome.violations += problems
        outcome.verified += 1
        outcome.sent += expected.status == "SENT"
        outcome.cancelled += expected.status == "CANCELLED"
    known = {f"{b.campaign_id}" for b in plan.boosters}
    strays = [c for c in written.reports if c not in known]
    if strays:
        outcome.violations.append(f"reports of campaigns not in the plan: {strays[:5]}")
    for worker in pool.every:  # their state; their logs stay, for a failure to be read
        shutil.rmtree(worker.data_dir, ignore_errors=True)
    outcome.logs = str(workdir)
    return outcome


def _strike(
    fault: Fault,
    pool: Workers,
    broker: Broker,
    settings: Settings,
    rng: random.Random,
    max_workers: int,
    session_timeout: float,
) -> str:
    kind = fault.kind
    if kind in BROKER_FAULTS:
        return broker.restart(kill=kind == "broker_kill9", rng=rng)
    if kind in CLUSTER_FAULTS:
        return broker.kill_leader(settings, rng)
    if kind == "join" or (kind == "leave" and pool.count() <= 1):
        if pool.count() >= max_workers:
            kind = "leave"
        else:
            return f"{pool.join().log_path.stem} joined"
    worker = pool.pick(rng)
    if worker is None:
        return "no worker to strike"
    name = worker.log_path.stem
    if kind == "leave":
        pool.leave(worker)
        return f"{name} left (SIGTERM)"
    if kind == "kill9":
        pool.kill(worker)
        return f"{name} killed -9 and started again"
    seconds = session_timeout + rng.uniform(3, 10)
    pool.freeze(worker, seconds)
    return f"{name} frozen (SIGSTOP) for {seconds:.0f} s"
