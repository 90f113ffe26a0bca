"""The benchmark: `python -m bench [--recipients N] [--out PATH]`. See bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.workload import Workload, produce
from booster.broker.local import LocalKafka, kafka_version
from booster.config import Settings
from booster.ops import admin
from booster.ops.clients import final_report, read_topic
from booster.processors.boosters import booster_id_of
from booster.schemas import codec
from booster.schemas.catalog import CONTACT_INPUT_TOPICS, REROUTED, audience_key
from booster.schemas.templates import CommandTemplate
from booster.streams.connect import client_options
from booster.testing.workers import WorkerProcess, free_port, free_ports, worker_env

HOUR_MS = 3_600_000


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fresh_settings(partitions: int, **env: str) -> Settings:
    return Settings.from_env(
        {
            **os.environ,
            "BOOSTER_TOPIC_PREFIX": f"bench-{uuid.uuid4().hex[:8]}.",
            "BOOSTER_PARTITIONS": str(partitions),
            "BOOSTER_ALLOWED_LATENESS_SECONDS": "1",
            "BOOSTER_TICK_INTERVAL_SECONDS": "0.5",
            **env,
        }
    )


@dataclass
class Progress:
    """Committed offsets of a consumer group over the contact-keyed input topics (and booster.rerouted),
    sampled over time."""

    settings: Settings
    group: str
    samples: list[tuple[float, int]] = field(default_factory=list)
    committed: dict[TopicPartition, int] = field(default_factory=dict)  # at the last sample

    async def sample(self, admin_client: AIOKafkaAdminClient) -> int:
        tps = [
            TopicPartition(self.settings.topic(t), p)
            for t in [*CONTACT_INPUT_TOPICS, REROUTED]
            for p in range(self.settings.partitions)
        ]
        committed = await admin_client.list_consumer_group_offsets(self.group, partitions=tps)
        self.committed = {tp: m.offset for tp, m in committed.items()}
        total: int = sum(max(0, m.offset) for m in committed.values())
        self.samples.append((time.monotonic(), total))
        return total

    async def behind(self) -> str:
        """The partitions whose commits are short of their end, for the message of a stalled run."""
        consumer = AIOKafkaConsumer(**client_options(self.settings), isolation_level="read_committed")
        await consumer.start()
        try:
            ends = await consumer.end_offsets(list(self.committed))
        finally:
            await consumer.stop()
        short = [
            f"{tp.topic}[{tp.partition}] committed {self.committed[tp]} of {end}"
            for tp, end in sorted(ends.items())
            if max(0, self.committed[tp]) < end
        ]
        return "; ".join(short) or "none"

    def rate(self) -> float:
        """Events/s between the first commit and the last sample: startup and recovery are left out."""
        moving = [(t, n) for t, n in self.samples if n > 0]
        if len(moving) < 2:
            return 0.0
        (t0, n0), (t1, n1) = moving[0], moving[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


async def follow(settings: Settings, group: str, target: int, timeout: float, alive: Any) -> Progress:
    progress = Progress(settings, group)
    client = AIOKafkaAdminClient(**client_options(settings))
    await client.start()
    try:
        deadline = time.monotonic() + timeout
        last_note = time.monotonic()
        while time.monotonic() < deadline:
            done = await progress.sample(client)
            if done >= target:
                break
            if not alive():
                raise RuntimeError(f"the process of group {group} died or crashed; see its log")
            if time.monotonic() - last_note > 15:
                say(f"  {group}: {done:,}/{target:,} events processed ({progress.rate():,.0f}/s)")
                last_note = time.monotonic()
            await asyncio.sleep(0.25)
        else:
            behind = await progress.behind()
            raise RuntimeError(
                f"{group} processed fewer than {target:,} events within {timeout:.0f} s; behind: {behind}"
            )
    finally:
        await client.close()
    return progress


async def ceiling(settings: Settings, total: int) -> float:
    """A plain aiokafka consumer that only decodes: the most a Python consumer of these topics can do."""
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    names = {settings.topic(t): t for t in CONTACT_INPUT_TOPICS}
    tps = [TopicPartition(real, p) for real in names for p in range(settings.partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    decode = codec().decode
    seen = 0
    started = time.monotonic()
    try:
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for tp, records in batch.items():
                name = names[tp.topic]
                for r in records:
                    decode(name, r.value)
                seen += len(records)
    finally:
        await consumer.stop()
    return seen / (time.monotonic() - started)


async def plain_producer(settings: Settings, n: int) -> float:
    """A plain aiokafka producer writing n command records, one send() each, acks=all."""
    topic = settings.topic("booster.commands")
    template = CommandTemplate(
        booster_id="baseline:booster", booster_name="Booster for baseline", campaign_id="baseline",
        account_id="bench-account", channel="EMAIL", content_ref="content/baseline", deadline=1_800_000_000_000,
        issued_at=1_800_000_000_000,
    )  # fmt: skip
    values = [(f"baseline-{i:08d}".encode(), template.encode(f"id-{i}", f"baseline-{i:08d}")) for i in range(n)]
    producer = AIOKafkaProducer(**client_options(settings), acks="all", linger_ms=5, max_batch_size=512 * 1024)
    await producer.start()
    started = time.monotonic()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in values]
        await producer.flush()
        for f in futures:
            await f
    finally:
        await producer.stop()
    return n / (time.monotonic() - started)


async def fanout_figures(settings: Settings, w: Workload, deadline: int, timeout: float) -> dict[str, Any]:
    """Wait for the final report, then read the committed commands of the booster."""
    campaign_id = w.campaign_id
    started = time.monotonic()
    report = None
    while time.monotonic() - started < timeout and report is None:
        report = await final_report(settings, campaign_id)
        if report is None:
            await asyncio.sleep(0.2)
    if report is None:
        raise RuntimeError(f"no final report for {campaign_id} within {timeout:.0f} s")
    booster_id = booster_id_of(campaign_id).encode()
    count = 0
    first = last = 0
    async for msg in read_topic(settings, "booster.commands", until_end=True):
        if booster_id in msg.value[:200]:
            count += 1
            first = msg.timestamp if first == 0 else min(first, msg.timestamp)
            last = max(last, msg.timestamp)
    span = max((last - first) / 1000, 1e-3)
    # R16: every recipient's outcome goes out in the same transactions as the commands
    prefix = audience_key(booster_id.decode(), "")
    outcomes = 0
    async for msg in read_topic(settings, "booster.audience", until_end=True):
        outcomes += msg.key is not None and msg.key.startswith(prefix)
    return {
        "commands": count,
        "outcomes": outcomes,
        "fanout_records_per_s": round((count + outcomes) / span, 1),
        "expected_commands": w.eligible,
        "report_status": report[0]["status"],
        "report_audience": report[0]["audience"],
        "fanout_commands_per_s": round(count / span, 1),
        "deadline_to_last_command_s": round((last - deadline) / 1000, 2),
        "deadline_to_report_s": round((report[1] - deadline) / 1000, 2),
    }


def run_faust_baseline(mode: str, settings: Settings, workdir: Path, cap: int, timeout: float) -> float:
    group = f"{settings.topic_prefix}bench-{mode}"
    if mode == "naive":
        # Faust creates a table's changelog itself and uses it at once; on a busy broker its metadata
        # may not list the topic yet and the agent crashes (PartitionsMismatch): create it first
        asyncio.run(admin.create_named(settings, {f"{group}-naive-changelog": True}))
    log_path = workdir / f"{mode}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    env = worker_env(settings, BOOSTER_WEB_PORT=str(free_port()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.faust_baselines", mode, str(workdir / f"{mode}-data")],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip

    def alive() -> bool:  # a crashed Faust agent leaves its worker running: fail instead of waiting
        return proc.poll() is None and b"Crashed reason=" not in log_path.read_bytes()

    try:
        progress = asyncio.run(follow(settings, group, cap, timeout, alive))
        return progress.rate()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def measure_size(
    n: int,
    partitions: int,
    workdir: Path,
    baselines: bool,
    caps: dict[str, int],
    timeout: float,
    lead_s: float,
    keep_topics: bool = False,
    features: str = "none",
) -> dict[str, Any]:
    settings = fresh_settings(partitions)
    asyncio.run(admin.create(settings))
    try:
        return _measure_size(settings, n, workdir, baselines, caps, timeout, lead_s, features)
    finally:
        if not keep_topics:  # a large workload's topics take disk, and every client reads their metadata
            asyncio.run(admin.delete_topics(settings, own_topics(settings)))


def _measure_size(
    settings: Settings,
    n: int,
    workdir: Path,
    baselines: bool,
    caps: dict[str, int],
    timeout: float,
    lead_s: float,
    features: str,
) -> dict[str, Any]:
    figures: dict[str, Any] = {"recipients": n, "topic_prefix": settings.topic_prefix, "features": features}
    campaign_id = f"bench-{n}"
    launched_at = int(time.time() * 1000) - 2 * HOUR_MS  # moved to the real launch below
    say(f"N={n:,}: producing the workload ...")
    started = time.monotonic()
    on = features != "none"
    w = asyncio.run(produce(settings, campaign_id, n, launched_at, features=on, cap=features == "all"))
    figures["events"] = w.events
    figures["produce_s"] = round(time.monotonic() - started, 1)
    say(f"N={n:,}: {w.events:,} events produced in {figures['produce_s']} s; ingesting with one booster worker ...")

    group = settings.group_id
    w1 = WorkerProcess(settings, workdir / f"n{n}-w1", name=f"n{n}-w1").start(timeout=timeout)
    progress = asyncio.run(follow(settings, group, w.events, timeout, w1.alive))
    figures["ingest_events_per_s"] = round(progress.rate(), 1)
    figures["ingest_total_s"] = round(progress.samples[-1][0] - w1.ready_at, 1)
    figures["rss_after_ingest_bytes"] = w1.peak_rss_bytes()
    say(f"N={n:,}: ingest {figures['ingest_events_per_s']:,.0f} events/s; kill -9 and restart on the same state ...")

    w1.kill()
    w2 = WorkerProcess(settings, workdir / f"n{n}-w1", name=f"n{n}-w2")
    figures["recovery_same_state_s"] = round(w2.start(timeout=timeout).ready_at - w2.started_at, 2)
    w2.stop()
    say(
        f"N={n:,}: recovery on the same state {figures['recovery_same_state_s']} s; "
        "a fresh worker restores from changelogs ..."
    )
    w3 = WorkerProcess(settings, workdir / f"n{n}-w3", name=f"n{n}-w3").start(timeout=timeout)
    figures["recovery_from_changelog_s"] = round(w3.wait_recovered(timeout), 2)
    say(f"N={n:,}: recovery from changelogs {figures['recovery_from_changelog_s']} s; launching the booster ...")

    try:
        # on SMS after the email campaign with every feature on: reachability and the SMS quiet hours count
        deadline = launch_booster(settings, w, lead_s, sms=on)
        figures.update(asyncio.run(fanout_figures(settings, w, deadline, timeout)))
        figures["peak_rss_bytes"] = max(w3.peak_rss_bytes(), figures["rss_after_ingest_bytes"])
    finally:
        w3.stop()
    say(
        f"N={n:,}: {figures['commands']:,} commands at {figures['fanout_commands_per_s']:,.0f}/s, last one "
        f"{figures['deadline_to_last_command_s']} s after the deadline"
    )
    if baselines:
        say("baselines: a plain aiokafka consumer that only decodes ...")
        figures["ceiling_events_per_s"] = round(asyncio.run(ceiling(settings, w.events)), 1)
        say(f"  {figures['ceiling_events_per_s']:,.0f} events/s; a do-nothing Faust agent ...")
        figures["faust_nothing_events_per_s"] = round(
            run_faust_baseline("nothing", settings, workdir, min(w.events, caps["nothing"]), timeout), 1
        )
        say(
            f"  {figures['faust_nothing_events_per_s']:,.0f} events/s; "
            "a naive Faust agent (table write per event, JSON) ..."
        )
        figures["faust_naive_events_per_s"] = round(
            run_faust_baseline("naive", settings, workdir, min(w.events, caps["naive"]), timeout), 1
        )
        say(f"  {figures['faust_naive_events_per_s']:,.0f} events/s; a plain aiokafka producer ...")
        figures["plain_producer_commands_per_s"] = round(
            asyncio.run(plain_producer(settings, figures["commands"] or n)), 1
        )
    return figures


def ingest_with_workers(
    settings: Settings, n: int, workdir: Path, workers: int, timeout: float, label: str
) -> tuple[Workload, list[WorkerProcess], Progress]:
    """Fresh topics' workload of n recipients ingested by `workers` booster workers (left running)."""
    w = asyncio.run(produce(settings, f"{label}-{n}", n, int(time.time() * 1000) - 2 * HOUR_MS))
    say(f"{label}: {w.events:,} events produced; ingesting with {workers} worker(s) ...")
    procs = [WorkerProcess(settings, workdir / f"{label}-w{i}", name=f"{label}-w{i}") for i in range(workers)]
    for proc in procs:
        proc.start(wait_ready=False)
    for proc in procs:
        proc.wait_recovered(timeout)

    def alive() -> bool:
        return all(p.alive() for p in procs)

    progress = asyncio.run(follow(settings, settings.group_id, w.events, timeout, alive))
    return w, procs, progress


def measure_restore(n: int, partitions: int, workdir: Path, timeout: float, baseline: bool) -> dict[str, Any]:
    """A fresh worker (empty state directory) restoring n recipients' state from the changelogs: with the
    bulk restore, and (the baseline) with Faust's recovery alone."""
    settings = fresh_settings(partitions)
    asyncio.run(admin.create(settings))
    figures: dict[str, Any] = {"recipients": n}
    try:
        w, procs, progress = ingest_with_workers(settings, n, workdir, 1, timeout, "restore")
        figures["events"] = w.events
        figures["ingest_events_per_s"] = round(progress.rate(), 1)
        for proc in procs:
            proc.stop()
        figures["changelog_records"] = asyncio.run(admin.changelog_records(settings))
        say(f"restore: {figures['changelog_records']:,} changelog records; a fresh worker restores them ...")
        modes = [("bulk", "on"), ("faust", "off")] if baseline else [("bulk", "on")]
        for mode, switch in modes:
            worker = WorkerProcess(
                settings, workdir / f"restore-{mode}", name=f"restore-{mode}", BOOSTER_BULK_RESTORE=switch
            ).start(wait_ready=False)
            try:
                seconds = worker.wait_recovered(timeout)
                figures[f"{mode}_ready_s"] = round(seconds, 2)
                figures[f"{mode}_peak_rss_bytes"] = worker.peak_rss_bytes()
                figures[f"{mode}_records_per_s"] = round(figures["changelog_records"] / seconds, 1)
                if mode == "bulk":
                    restored = worker.metric("booster_restored_records_total")
                    spent = worker.metric("booster_restore_seconds_total")
                    figures["bulk_restored_records"] = int(restored)
                    figures["bulk_restore_s"] = round(spent, 2)
                    figures["bulk_restore_records_per_s"] = round(restored / spent, 1) if spent else 0.0
            finally:
                worker.stop()
            say(f"restore, {mode}: ready in {seconds:.1f} s ({figures[f'{mode}_records_per_s']:,.0f} records/s)")
        if baseline:
            figures["bulk_vs_faust_recovery_speed_ratio"] = round(figures["faust_ready_s"] / figures["bulk_ready_s"], 2)
    finally:
        asyncio.run(admin.delete_topics(settings, own_topics(settings)))
    return figures


def measure_scale_out(n: int, partitions: int, workdir: Path, timeout: float, counts: list[int]) -> dict[str, Any]:
    """The same workload ingested and fanned out by 1, 2, ... workers, each count on fresh topics."""
    figures: dict[str, Any] = {"recipients": n, "partitions": partitions, "runs": {}}
    for workers in counts:
        settings = fresh_settings(partitions)
        asyncio.run(admin.create(settings))
        label = f"scale{workers}"
        try:
            w, procs, progress = ingest_with_workers(settings, n, workdir, workers, timeout, label)
            run: dict[str, Any] = {"ingest_events_per_s": round(progress.rate(), 1)}
            try:
                deadline = launch_booster(settings, w, lead_s=8.0)
                run.update(asyncio.run(fanout_figures(settings, w, deadline, timeout)))
                run["peak_rss_bytes"] = [p.peak_rss_bytes() for p in procs]
            finally:
                for proc in procs:
                    proc.stop()
            if run["commands"] != w.eligible:
                raise RuntimeError(f"{workers} worker(s): {run['commands']} commands, {w.eligible} expected")
            figures["runs"][str(workers)] = run
            say(
                f"{workers} worker(s): ingest {run['ingest_events_per_s']:,.0f} events/s, fan-out "
                f"{run['fanout_commands_per_s']:,.0f} commands/s, last command {run['deadline_to_last_command_s']} s "
                "after the deadline"
            )
        finally:
            asyncio.run(admin.delete_topics(settings, own_topics(settings)))
    one = figures["runs"].get("1")
    for workers, run in figures["runs"].items():
        if one and workers != "1":
            k = int(workers)
            for figure, key in (("ingest_events_per_s", "ingest"), ("fanout_commands_per_s", "fanout")):
                # a run too small for two samples has no rate (0): no efficiency either
                base = k * one[figure]
                run[f"{key}_scaling_efficiency_ratio"] = round(run[figure] / base, 3) if base else 0.0
    return figures


def launch_booster(settings: Settings, w: Workload, lead_s: float, sms: bool = False) -> int:
    """Publish the campaign's launch with its deadline `lead_s` from now; returns the deadline (ms)."""
    deadline = int(time.time() * 1000) + int(lead_s * 1000)
    launch = {
        "campaign_id": w.campaign_id, "account_id": w.account_id, "name": f"Bench {w.recipients}", "channel": "EMAIL",
        "group_size": w.recipients, "launched_at": deadline - 2 * HOUR_MS,
        "booster": {"delay_seconds": 7200, "channel": "SMS" if sms else None, "criterion": None,
                    "content_ref": "content/bench"},
    }  # fmt: skip

    async def publish() -> None:
        producer = AIOKafkaProducer(**client_options(settings), acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                settings.topic("campaign.launched"),
                codec().encode("campaign.launched", launch),
                key=w.campaign_id.encode(),
            )
        finally:
            await producer.stop()

    asyncio.run(publish())
    return deadline


def own_topics(settings: Settings) -> Callable[[str], bool]:
    """The topics of one run's prefix."""
    return lambda topic: topic.startswith(settings.topic_prefix)


def measure_misrouting(n: int, partitions: int, workdir: Path, timeout: float) -> dict[str, Any]:
    """Ingestion of the same workload with every fact in its contact's partition, then with every fact
    in another one (each forwarded through booster.rerouted and consumed twice): facts per second."""
    figures: dict[str, Any] = {"recipients": n}
    for label, misroute in (("home", False), ("misrouted", True)):
        settings = fresh_settings(partitions)
        asyncio.run(admin.create(settings))
        try:
            say(f"misrouting, {label}: producing {n:,} recipients' facts ...")
            w = asyncio.run(produce(settings, f"route-{label}-{n}", n, int(time.time() * 1000), misroute=misroute))
            worker = WorkerProcess(settings, workdir / f"route-{label}", name=f"route-{label}").start(timeout=timeout)
            try:
                target = w.events * (2 if misroute else 1)  # a forwarded fact is consumed again
                progress = asyncio.run(follow(settings, settings.group_id, target, timeout, worker.alive))
            finally:
                worker.stop()
            figures[f"{label}_facts_per_s"] = round(progress.rate() * w.events / target, 1)
            say(f"misrouting, {label}: {figures[f'{label}_facts_per_s']:,.0f} facts/s")
        finally:
            asyncio.run(admin.delete_topics(settings, own_topics(settings)))
    home = figures["home_facts_per_s"]
    figures["misrouted_to_home"] = round(figures["misrouted_facts_per_s"] / home, 3) if home else 0.0
    return figures


def measure_registry(n: int, partitions: int, workdir: Path, timeout: float, rounds: int = 2) -> dict[str, Any]:
    """Ingestion of the same workload with the contract's own schema ids, then through a schema registry
    (a local Apicurio Registry: the upstream serialized with the registry's id of the contract's schema,
    the worker asks for it once), alternated `rounds` times: facts per second, and their ratio."""
    from booster.broker.registry import LocalRegistry
    from booster.schemas.registry import use_registry

    port = free_ports(2)
    local = Settings.from_env({**os.environ, "BOOSTER_REGISTRY_PORT": str(port)})
    registry = LocalRegistry(local, workdir / "registry")
    registry.start(say=say)
    figures: dict[str, Any] = {"recipients": n, "rounds": rounds, "catalog_facts_per_s": [], "registry_facts_per_s": []}
    try:
        for round_ in range(rounds):
            for label in ("catalog", "registry"):
                env = {"BOOSTER_SCHEMA_REGISTRY_URL": registry.url} if label == "registry" else {}
                settings = fresh_settings(partitions, **env)
                asyncio.run(admin.create(settings))
                if env:
                    use_registry(settings, register=True)  # the workload is written with its ids
                else:
                    codec().use_catalog()
                try:
                    say(f"registry, {label} ({round_ + 1}/{rounds}): producing {n:,} recipients' facts ...")
                    w = asyncio.run(produce(settings, f"sr-{label}-{n}", n, int(time.time() * 1000)))
                    name = f"sr-{label}-{round_}"
                    worker = WorkerProcess(settings, workdir / name, name=name).start(timeout=timeout)
                    try:
                        progress = asyncio.run(follow(settings, settings.group_id, w.events, timeout, worker.alive))
                    finally:
                        worker.stop()
                    figures[f"{label}_facts_per_s"].append(round(progress.rate(), 1))
                    say(f"registry, {label}: {progress.rate():,.0f} facts/s")
                finally:
                    codec().use_catalog()
                    asyncio.run(admin.delete_topics(settings, own_topics(settings)))
    finally:
        registry.stop(say=say)
    catalog = sum(figures["catalog_facts_per_s"]) / rounds
    through = sum(figures["registry_facts_per_s"]) / rounds
    figures["registry_vs_catalog_ratio"] = round(through / catalog, 3) if catalog else 0.0
    return figures


def ratios(big: dict[str, Any], small: dict[str, Any]) -> dict[str, float]:
    def r(a: float, b: float) -> float:
        return round(a / b, 3) if b else 0.0

    growth_n = big["recipients"] / small["recipients"]
    return {
        "ingest_vs_ceiling_ratio": r(big["ingest_events_per_s"], big["ceiling_events_per_s"]),
        "ingest_vs_naive_faust_ratio": r(big["ingest_events_per_s"], big["faust_naive_events_per_s"]),
        "ingest_vs_do_nothing_faust_ratio": r(big["ingest_events_per_s"], big["faust_nothing_events_per_s"]),
        "fanout_vs_plain_producer_ratio": r(big["fanout_commands_per_s"], big["plain_producer_commands_per_s"]),
        # per record written: the fan-out also writes each recipient's outcome (R16)
        "fanout_records_vs_plain_producer_ratio": r(
            big.get("fanout_records_per_s", 0.0), big["plain_producer_commands_per_s"]
        ),
        "peak_rss_growth_ratio": r(big["peak_rss_bytes"], small["peak_rss_bytes"]),
        "recipients_growth_ratio": round(growth_n, 3),
        "rss_growth_per_recipient_growth_ratio": r(r(big["peak_rss_bytes"], small["peak_rss_bytes"]), growth_n),
    }


def table(results: dict[str, Any]) -> str:
    big, small, rat = results["large"], results["small"], results["ratios"]
    mib = 1024 * 1024
    rows = [
        ("recipients", f"{small['recipients']:,}", f"{big['recipients']:,}"),
        ("events", f"{small['events']:,}", f"{big['events']:,}"),
        (
            "ingest, booster worker (events/s)",
            f"{small['ingest_events_per_s']:,.0f}",
            f"{big['ingest_events_per_s']:,.0f}",
        ),
        ("ingest, plain consumer + decode (events/s)", "", f"{big['ceiling_events_per_s']:,.0f}"),
        ("ingest, do-nothing Faust agent (events/s)", "", f"{big['faust_nothing_events_per_s']:,.0f}"),
        ("ingest, naive Faust agent (events/s)", "", f"{big['faust_naive_events_per_s']:,.0f}"),
        ("fan-out (commands/s)", f"{small['fanout_commands_per_s']:,.0f}", f"{big['fanout_commands_per_s']:,.0f}"),
        (
            "fan-out, commands + outcomes (records/s)",
            f"{small['fanout_records_per_s']:,.0f}",
            f"{big['fanout_records_per_s']:,.0f}",
        ),
        ("plain producer (commands/s)", "", f"{big['plain_producer_commands_per_s']:,.0f}"),
        (
            "deadline to last command (s)",
            f"{small['deadline_to_last_command_s']}",
            f"{big['deadline_to_last_command_s']}",
        ),
        (
            "peak RSS of the worker (MiB)",
            f"{small['peak_rss_bytes'] / mib:,.0f}",
            f"{big['peak_rss_bytes'] / mib:,.0f}",
        ),
        (
            "peak RSS per recipient (bytes)",
            f"{small['peak_rss_bytes'] / small['recipients']:,.0f}",
            f"{big['peak_rss_bytes'] / big['recipients']:,.0f}",
        ),
        ("recovery, same state (s)", f"{small['recovery_same_state_s']}", f"{big['recovery_same_state_s']}"),
        (
            "recovery, fresh worker from changelogs (s)",
            f"{small['recovery_from_changelog_s']}",
            f"{big['recovery_from_changelog_s']}",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':<{width}}  {'small':>12}  {'large':>12}"]
    lines += [f"{a:<{width}}  {b:>12}  {c:>12}" for a, b, c in rows]
    lines.append("")
    lines += [f"{k:<{width}}  {v:>12}" for k, v in rat.items()]
    return "\n".join(lines)


def sizes_results(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    return {
        "small": small,
        "large": large,
        "ratios": ratios(large, small),
        "memory": {
            "peak_rss_bytes_at_n": large["peak_rss_bytes"],
            "bytes_per_recipient_at_n": round(large["peak_rss_bytes"] / large["recipients"], 1),
            # what one more tracked recipient costs, from the two sizes of the same run
            "marginal_bytes_per_recipient": round(
                (large["peak_rss_bytes"] - small["peak_rss_bytes"]) / max(1, large["recipients"] - small["recipients"]),
                1,
            ),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--recipients", type=int, default=1_000_000, help="N, the large campaign (default 1,000,000)")
    parser.add_argument("--small", type=int, help="the small campaign (default N/10, at least 1,000)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--out", default="bench/results/latest.json", help="where to write every figure as JSON")
    parser.add_argument(
        "--nothing-cap", type=int, default=400_000, help="events the do-nothing Faust agent is timed on"
    )
    parser.add_argument("--naive-cap", type=int, default=150_000, help="events the naive Faust agent is timed on")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds any one step may take")
    parser.add_argument("--keep-topics", action="store_true", help="leave each run's topics on the broker")
    parser.add_argument("--workdir", help="keep the workers' state and logs here (default: a temporary directory)")
    parser.add_argument(
        "--lead", type=float, default=8.0, help="seconds from the launch to the deadline (the worker waits for it)"
    )
    parser.add_argument(
        "--all-features",
        action="store_true",
        help="every audience policy on (machine opens, scanner clicks, reachability, time zones and quiet "
        "hours, a frequency cap; see bench/workload.py)",
    )
    parser.add_argument(
        "--without-cap",
        action="store_true",
        help="with --all-features: no frequency cap (to tell what the cap's history costs)",
    )
    parser.add_argument(
        "--misrouting",
        type=int,
        metavar="N",
        help="also ingest N recipients' facts all in their contact's partition, then all in another (the cost "
        "of booster.rerouted)",
    )
    parser.add_argument(
        "--registry",
        type=int,
        metavar="N",
        help="also ingest N recipients' facts with the contract's own schema ids and through a local schema "
        "registry (Apicurio), alternated twice: the cost of registry mode",
    )
    parser.add_argument(
        "--restore",
        action="store_true",
        help="also measure a fresh worker restoring N recipients from the changelogs: the bulk restore, then "
        "Faust's recovery alone as the baseline",
    )
    parser.add_argument(
        "--no-faust-restore", action="store_true", help="with --restore: leave out the (slow) Faust-only baseline"
    )
    parser.add_argument(
        "--scale-out",
        metavar="K,K",
        help="also ingest and fan out N recipients with each of these numbers of workers (e.g. 1,2) on "
        "--partitions partitions, and report the scaling efficiency",
    )
    parser.add_argument(
        "--skip-sizes", action="store_true", help="only the --restore, --scale-out, --misrouting and --registry ones"
    )
    args = parser.parse_args(argv)
    counts = [int(k) for k in args.scale_out.split(",")] if args.scale_out else []
    if args.skip_sizes and not (args.restore or counts or args.registry or args.misrouting):
        parser.error("--skip-sizes leaves nothing to measure: add --restore, --scale-out, --registry or --misrouting")
    n = args.recipients
    small_n = args.small or max(1000, n // 10)
    kafka = LocalKafka(Settings.from_env())
    started_kafka = kafka.start(say=say)
    began = time.monotonic()
    misrouting: dict[str, Any] | None = None
    registry: dict[str, Any] | None = None
    restore: dict[str, Any] | None = None
    scale_out: dict[str, Any] | None = None
    small = large = None
    try:
        with tempfile.TemporaryDirectory(prefix="booster-bench-") as tmp:
            workdir = Path(args.workdir) if args.workdir else Path(tmp)
            caps = {"nothing": args.nothing_cap, "naive": args.naive_cap}
            features = "all" if args.all_features else "none"
            if args.all_features and args.without_cap:
                features = "all-but-cap"
            common = (caps, args.timeout, args.lead, args.keep_topics, features)
            if not args.skip_sizes:
                small = measure_size(small_n, args.partitions, workdir, False, *common)
                large = measure_size(n, args.partitions, workdir, True, *common)
            if args.restore:
                restore = measure_restore(n, args.partitions, workdir, args.timeout, not args.no_faust_restore)
            if counts:
                scale_out = measure_scale_out(n, args.partitions, workdir, args.timeout, counts)
            if args.misrouting:
                misrouting = measure_misrouting(args.misrouting, args.partitions, workdir, args.timeout)
            if args.registry:
                registry = measure_registry(args.registry, args.partitions, workdir, args.timeout)
    finally:
        if started_kafka:
            kafka.stop(say=say)
    results: dict[str, Any] = {
        "kafka_version": kafka_version(),
        "partitions": args.partitions,
        "machine": {"cpus": os.cpu_count()},
        "seconds": round(time.monotonic() - began, 1),
    }
    if small is not None and large is not None:
        results.update(sizes_results(small, large))
    if restore is not None:
        results["restore"] = restore
    if scale_out is not None:
        results["scale_out"] = scale_out
    if misrouting is not None:
        results["misrouting"] = misrouting
    if registry is not None:
        results["registry"] = registry
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    if "large" in results:
        print(table(results))
    for key in ("restore", "scale_out", "misrouting", "registry"):
        if key in results:
            print(f"\n{key}: {json.dumps(results[key], indent=2)}")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
