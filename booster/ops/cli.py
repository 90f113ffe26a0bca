"""The `booster` command line: broker, topics, publish and tail, worker, demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from booster import __version__
from booster.config import DEFAULTS, DOCS, SECRETS, Settings
from booster.errors import BoosterError
from booster.ops import acls

EXIT_OK = 0
EXIT_ERROR = 1  # a BoosterError: the message says what to do
EXIT_USAGE = 2  # argparse's own
EXIT_NOT_FOUND = 4  # `booster audience`: no booster scheduled for that campaign


def _settings() -> Settings:
    return Settings.from_env()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- kafka ---------------------------------------------------------------------------------------


def cmd_kafka(args: argparse.Namespace) -> int:
    from booster.broker.local import LocalKafka, kafka_version

    kafka = LocalKafka(_settings(), secure=args.secure, nodes=args.nodes)
    if args.action == "env":
        if kafka.nodes > 1:
            print(f"export BOOSTER_BROKER={kafka.bootstrap} BOOSTER_REPLICATION_FACTOR={kafka.nodes}")
            return EXIT_OK
        if not args.secure:
            print(f"export BOOSTER_BROKER={kafka.bootstrap}")
            return EXIT_OK
        if args.user not in kafka.secrets.users():
            raise BoosterError(
                f"no user {args.user!r} on the secure broker; its users: {', '.join(kafka.secrets.users())}"
            )
        env = {"BOOSTER_BROKER": kafka.bootstrap, **kafka.secrets.client_env(args.user)}
        print("export " + " ".join(f"{k}={v}" for k, v in env.items()))
        return EXIT_OK
    if args.action == "start":
        started = time.monotonic()
        kafka.start(say=lambda m: print(m, file=sys.stderr))
        print(f"ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
        if kafka.nodes > 1:
            print('connect to it with: eval "$(booster kafka env --nodes 3)"', file=sys.stderr)
        if args.secure:
            print(
                f"users: {', '.join(kafka.secrets.users())} (passwords in {kafka.secrets.password_file('x').parent}); "
                f'connect as one with: eval "$(booster kafka env --secure --user booster-worker)"',
                file=sys.stderr,
            )
    elif args.action == "stop":
        kafka.stop(say=lambda m: print(m, file=sys.stderr))
    elif args.action == "fetch":
        kafka.fetch(say=lambda m: print(m, file=sys.stderr))
        print(f"Kafka {kafka_version()} jars in {kafka.libs}")
    else:
        print(kafka.status())
        return EXIT_OK if all(kafka.pid(n) is not None for n in kafka.node_ids) else 3
    return EXIT_OK


# -- registry ------------------------------------------------------------------------------------


def cmd_registry(args: argparse.Namespace) -> int:
    from booster.broker.registry import APICURIO_VERSION, LocalRegistry

    registry = LocalRegistry(_settings())
    if args.action == "env":
        print(f"export BOOSTER_SCHEMA_REGISTRY_URL={registry.url}")
    elif args.action == "start":
        started = time.monotonic()
        registry.start(say=lambda m: print(m, file=sys.stderr))
        print(f"ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
        print(
            'point Booster at it with: eval "$(booster registry env)"; then `booster topics create` registers '
            "the contract's schemas",
            file=sys.stderr,
        )
    elif args.action == "stop":
        registry.stop(say=lambda m: print(m, file=sys.stderr))
    elif args.action == "fetch":
        registry.fetch(say=lambda m: print(m, file=sys.stderr))
        print(f"Apicurio Registry {APICURIO_VERSION} in {registry.install}")
    else:
        print(registry.status())
        return EXIT_OK if registry.pid() is not None else 3
    return EXIT_OK


# -- topics --------------------------------------------------------------------------------------


def cmd_topics(args: argparse.Namespace) -> int:
    from booster.ops import admin

    settings = _settings()
    if args.action == "acls":
        for acl in acls.all_acls(settings, args.worker, args.producer, args.operator):
            print(acl.describe())
        return EXIT_OK
    if args.action == "create":
        created = _run(admin.create(settings))
        for name in created:
            print(f"created {name}", file=sys.stderr)
        print(
            f"{len(created)} topic(s) created, {len(admin.all_topics(settings)) - len(created)} already there",
            file=sys.stderr,
        )
        if args.acls:
            wanted = acls.all_acls(settings, args.worker, args.producer, args.operator)
            _run(acls.write(settings, wanted))
            print(f"{len(wanted)} ACL(s) in place for {args.worker}, {args.producer}, {args.operator}", file=sys.stderr)
    states = _run(admin.describe(settings))
    problems = admin.copartition_problems(states)
    if getattr(args, "json", False):
        print(
            json.dumps(
                [
                    {
                        "topic": s.real_name,
                        "exists": s.exists,
                        "partitions": s.partitions,
                        "cleanup_policy": s.cleanup_policy,
                        "problems": list(s.problems),
                    }
                    for s in states
                ],
                indent=2,
            )
        )
    elif args.action == "describe":
        width = max(len(s.real_name) for s in states)
        for s in states:
            status = "ok" if not s.problems else "; ".join(s.problems)
            print(
                f"{s.real_name:<{width}}  partitions={s.partitions or '-':<3} "
                f"cleanup={s.cleanup_policy or '-':<14} {status}"
            )
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    bad = problems or any(s.problems for s in states)
    return EXIT_ERROR if bad else EXIT_OK


# -- publish / tail ------------------------------------------------------------------------------


def cmd_publish(args: argparse.Namespace) -> int:
    from booster.ops.clients import PublishRefused, publish_lines

    stream = open(args.file) if args.file else sys.stdin  # noqa: SIM115
    try:
        sent = _run(publish_lines(_settings(), args.topic, stream, progress=sys.stderr))
    except PublishRefused as exc:
        print(f"booster publish: refused {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if args.file:
            stream.close()
    print(f"published {sent} record(s) to {args.topic}", file=sys.stderr)
    return EXIT_OK


def cmd_tail(args: argparse.Namespace) -> int:
    from booster.ops.clients import tail

    count = _run(
        tail(
            _settings(),
            args.topic,
            from_beginning=args.from_beginning,
            idle_timeout=args.idle_timeout,
            max_records=args.max,
            until_end=args.until_end,
            epoch_ms=args.epoch_ms,
        )
    )
    print(f"{count} record(s)", file=sys.stderr)
    return EXIT_OK


# -- dead letters --------------------------------------------------------------------------------


def _selection(args: argparse.Namespace) -> Any:
    from booster.ops.deadletters import Selection

    return Selection(
        source_topic=args.source_topic,
        kind=args.kind,
        sources=frozenset(args.source or []),
        everything=getattr(args, "all", False),
    )


def cmd_dead_letter(args: argparse.Namespace) -> int:
    from booster.ops import deadletters
    from booster.ops.jsonio import record_to_json

    settings = _settings()
    if args.action == "list":
        selection = _selection(args)
        letters = [d for d in _run(deadletters.dead_letters(settings)) if selection.matches(d)]
        if args.json:
            for d in letters:
                shown = record_to_json("booster.dead-letter", d.record)
                print(json.dumps({"dead_letter_offset": d.offset, "dead_letter_partition": d.partition, **shown}))
        else:
            for d in letters[-args.limit :] if args.limit else letters:
                print(f"{d.source:<40} {d.record['kind']:<16} {d.record['error']}")
            print(json.dumps(deadletters.summary(letters)), file=sys.stderr)
        return EXIT_OK
    chosen = _run(deadletters.replay(settings, _selection(args), dry_run=args.dry_run))
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {len(chosen)} dead letter(s) to their source topics", file=sys.stderr)
    return EXIT_OK


# -- operators' views -----------------------------------------------------------------------------


def cmd_boosters(args: argparse.Namespace) -> int:
    from booster.ops import views

    rows = _run(views.boosters(_settings()))
    if args.status:
        rows = [r for r in rows if r["status"] == args.status]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(views.render_boosters(rows))
    return EXIT_OK


def cmd_lag(args: argparse.Namespace) -> int:
    from booster.ops import views

    report = _run(views.lag(_settings()))
    print(json.dumps(report, indent=2) if args.json else views.render_lag(report))
    return EXIT_OK


def cmd_audience(args: argparse.Namespace) -> int:
    from booster.ops import clients, views

    settings = _settings()
    final = _run(clients.final_report(settings, args.campaign_id))
    report = final[0] if final is not None and views.fired(final[0]) else None
    if final is not None and report is None:  # decided, and it never fired
        status, code = final[0]["status"], final[0].get("reason_code")
        print(
            f"the booster of {args.campaign_id} was {status}"
            + (f" ({code})" if code else "")
            + ": it never fired, so no recipient has an outcome",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    if args.export:
        if report is None:
            print(
                f"campaign {args.campaign_id} has no booster that fired yet: its audience is written when it "
                "fires (`booster boosters` shows its status)",
                file=sys.stderr,
            )
            return EXIT_NOT_FOUND
        return _export_audience(settings, report, args.export)
    if report is not None:  # fired: the rows are gone, booster.audience has each recipient's outcome
        contact = None if args.contact is None else _run(views.contact_outcome(settings, report, args.contact))
        fired = views.fired_audience(report, contact, args.contact)
        print(json.dumps(fired, indent=2) if args.json else views.render_fired_audience(fired))
        return EXIT_OK
    worker = args.worker or f"http://127.0.0.1:{settings.web_port}"
    result = views.audience(worker, args.campaign_id, args.contact, settings.web.token)
    print(json.dumps(result, indent=2) if args.json else views.render_audience(result))
    return EXIT_OK if result["scheduled"] else EXIT_NOT_FOUND


def cmd_results(args: argparse.Namespace) -> int:
    from booster.ops import clients, views
    from booster.processors.text import format_timestamp

    settings = _settings()
    results = _run(clients.booster_results(settings, args.campaign_id))
    if results is not None:
        print(json.dumps(results, indent=2) if args.json else views.render_results(results))
        return EXIT_OK
    final = _run(clients.final_report(settings, args.campaign_id))
    if final is None:
        why = "has no final report yet: its results come once it was SENT and its measurement window ended"
    elif final[0]["status"] != "SENT":
        why = f"was {final[0]['status']}: a booster that was not sent has no results"
    else:
        why = (
            "was SENT and its measurement window has not ended yet (launch setting measurement_hours, 72 by "
            "default, after the deadline " + format_timestamp(final[0]["deadline"]) + ")"
        )
    print(f"the booster of {args.campaign_id} {why}", file=sys.stderr)
    return EXIT_NOT_FOUND


def _export_audience(settings: Settings, report: dict[str, Any], target: str) -> int:
    from booster.ops import views

    def progress(read: int, written: int) -> None:
        print(f"  read {read} outcome record(s), {written} of this booster", file=sys.stderr, flush=True)

    if target == "-":
        counts = _run(views.export_audience(settings, report, sys.stdout, progress))
    else:
        path = Path(target)
        partial = path.with_name(path.name + ".partial")  # a failed export leaves no half file behind
        with open(partial, "w", newline="") as out:
            counts = _run(views.export_audience(settings, report, out, progress))
        partial.replace(path)
    detail = ", ".join(f"{outcome} {n}" for outcome, n in sorted(counts.items()))
    print(f"{sum(counts.values())} recipient(s) of {report['campaign_id']} ({detail}) to {target}", file=sys.stderr)
    return EXIT_OK


# -- worker --------------------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:

    from booster.streams.app import BoosterApp
    from booster.streams.records import EXIT_RETRY_LATER, is_broker_trouble

    settings = _settings()
    if args.web_port:
        settings = Settings.from_env({**os.environ, "BOOSTER_WEB_PORT": str(args.web_port)})
    loop: asyncio.AbstractEventLoop
    if settings.event_loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if not _wait_for_the_broker(loop, settings):
        return EXIT_RETRY_LATER
    booster = BoosterApp(settings, Path(args.data_dir) if args.data_dir else None)
    print(
        f"booster worker {booster.app_id}: broker {settings.broker}, {settings.partitions} partitions, "
        f"state in {booster.datadir}, web on {settings.web.bind}:{settings.web_port}",
        file=sys.stderr,
    )
    worker = _worker_class()(booster.app, loglevel=args.loglevel, loop=loop)
    try:
        worker.execute_from_commandline()
    except SystemExit as exit:
        failed = worker.failed_to_start
        if exit.code not in (None, 0) and failed is not None and is_broker_trouble(failed):
            # the broker went away between the checks above and the worker's clients starting
            print(
                f"booster worker: the broker went away while the worker started ({type(failed).__name__}: "
                f"{failed}): exiting with {EXIT_RETRY_LATER} for the supervisor to start it again later",
                file=sys.stderr,
            )
            return EXIT_RETRY_LATER
        raise
    return EXIT_OK


def _worker_class() -> type:
    """Faust's worker, remembering why it failed to start: mode's worker exits 1 whatever the reason,
    and a broker that went away is no configuration error (the worker should exit 75)."""
    import faust

    class Worker(faust.Worker):
        failed_to_start: BaseException | None = None

        async def start(self) -> None:
            try:
                await super().start()
            except Exception as exc:
                self.failed_to_start = exc
                raise

    return Worker


def _wait_for_the_broker(loop: asyncio.AbstractEventLoop, settings: Settings) -> bool:
    """The worker's checks before it joins its group (topics there and co-partitioned, internal topics
    made, its ACLs). A broker that does not answer, or not yet, is waited for with backoff for up to
    BOOSTER_RETRY_SECONDS, as a broker away during a running worker's writes is: a worker restarted by
    its supervisor while the broker is away (an outage, a rolling restart) comes up once the broker
    does, instead of exiting 1 in a crash loop. False when it did not come back by then (exit 75:
    start again later). What a restart cannot fix (bad settings, refused credentials, topics that are
    not co-partitioned) raises at once (exit 1)."""
    from booster.errors import BrokerUnreachable
    from booster.ops import admin
    from booster.schemas.registry import use_registry
    from booster.streams.records import EXIT_RETRY_LATER, is_broker_trouble

    give_up_at = time.monotonic() + settings.retry_seconds
    pause = 1.0
    while True:
        try:
            loop.run_until_complete(admin.check_ready(settings))
            loop.run_until_complete(admin.create_internal(settings))
            loop.run_until_complete(admin.check_access(settings))
            use_registry(settings, every_topic=True)  # a schema registry away is waited for as the broker is
            return True
        except Exception as exc:
            if not (isinstance(exc, BrokerUnreachable) or is_broker_trouble(exc)):
                raise
            if time.monotonic() + pause > give_up_at:
                print(
                    f"booster worker: {exc}; still unreachable after BOOSTER_RETRY_SECONDS={settings.retry_seconds:g}: "
                    f"exiting with {EXIT_RETRY_LATER} for the supervisor to start the worker again later",
                    file=sys.stderr,
                )
                return False
            print(
                f"booster worker: waiting for the broker ({exc}); trying again in {pause:.0f} s, for up to "
                f"BOOSTER_RETRY_SECONDS={settings.retry_seconds:g} in all",
                file=sys.stderr,
            )
            time.sleep(pause)
            pause = min(pause * 2, 15.0)


# -- demo ----------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from booster.broker.local import LocalKafka
    from booster.testing.demo import run_demo

    settings = _settings()
    kafka = LocalKafka(settings)
    started_kafka = kafka.start(say=lambda m: print(m, file=sys.stderr))
    try:
        return run_demo(settings, recipients=args.recipients, wait_seconds=args.timeout)
    finally:
        if started_kafka and not args.keep_kafka:
            kafka.stop(say=lambda m: print(m, file=sys.stderr))
        elif not started_kafka:
            print("Kafka was already running; left running", file=sys.stderr)


def cmd_config(args: argparse.Namespace) -> int:
    settings = _settings()
    for name, default in DEFAULTS.items():
        value = os.environ.get(name, default)
        if name in SECRETS:  # never printed: whether it is set is all an operator needs to see
            value = "(set, hidden)" if value else ""
        print(f"{name}={value}\n    {DOCS[name]} (default: {default or '(empty)'})")
    print(f"# effective topic prefix: {settings.topic_prefix!r}")
    print(f"# connection: {settings.security.describe()}")
    return EXIT_OK


# -- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="booster",
        description="Booster: sends one follow-up to the recipients who did not engage with a campaign.",
        epilog="Configuration comes from BOOSTER_* environment variables; `booster config` lists them.",
    )
    parser.add_argument("--version", action="version", version=f"booster {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log client details to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("kafka", help="start, stop or check the local Apache Kafka broker")
    p.add_argument("action", choices=["start", "stop", "status", "fetch", "env"])
    p.add_argument(
        "--secure",
        action="store_true",
        help="the secure broker: SASL_SSL with SCRAM users, a CA made on the spot, ACLs enforced (its own log dir)",
    )
    p.add_argument("--user", default="admin", help="`env --secure`: the user whose settings to print (default: admin)")
    p.add_argument(
        "--nodes",
        type=int,
        choices=[1, 3],
        default=1,
        help="3: a KRaft cluster of three nodes on this machine (ports BOOSTER_KAFKA_PORT to +5, its own log "
        "dirs), topics replicated 3 times with min.insync.replicas 2; `env --nodes 3` prints its settings",
    )
    p.set_defaults(func=cmd_kafka)

    p = sub.add_parser(
        "registry",
        help="start, stop or check a local schema registry (Apicurio Registry, Confluent-compatible API)",
        description="A local Apicurio Registry on 127.0.0.1:BOOSTER_REGISTRY_PORT, fetched from Maven Central "
        "on first use, its schemas kept on disk. `env` prints the BOOSTER_SCHEMA_REGISTRY_URL that points at it.",
    )
    p.add_argument("action", choices=["start", "stop", "status", "fetch", "env"])
    p.set_defaults(func=cmd_registry)

    p = sub.add_parser("topics", help="create or describe the contract's topics; print or write their ACLs")
    p.add_argument("action", choices=["create", "describe", "acls"])
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.add_argument(
        "--acls", action="store_true", help="`create`: also write the ACLs of the worker, producer and operator"
    )
    p.add_argument("--worker", default=acls.WORKER, help=f"the workers' principal (default {acls.WORKER})")
    p.add_argument("--producer", default=acls.PRODUCER, help=f"upstream producers' principal (default {acls.PRODUCER})")
    p.add_argument("--operator", default=acls.OPERATOR, help=f"operators' principal (default {acls.OPERATOR})")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser(
        "publish",
        help="encode JSON lines from stdin with the topic's schema and produce them",
        description=(
            'Reads one record per line: the value alone, or {"key": ..., "value": {...}}. Without a key, '
            "the key is taken from the value (contact_id, campaign_id or account_id). Timestamps are epoch "
            "milliseconds or ISO-8601 strings. Stops at the first bad line, naming it; the lines before it "
            "are on the topic."
        ),
    )
    p.add_argument("topic", help="contract topic name, e.g. message.sent (the prefix is added)")
    p.add_argument("--file", help="read lines from this file instead of stdin")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("tail", help="print a topic's committed records as JSON lines")
    p.add_argument("topic")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    p.add_argument("--idle-timeout", type=float, metavar="SECONDS", help="stop after this long without records")
    p.add_argument("--max", type=int, help="stop after this many records")
    p.add_argument("--until-end", action="store_true", help="stop once every record there when it started is read")
    p.add_argument("--epoch-ms", action="store_true", help="timestamps in values as epoch milliseconds")
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser(
        "dead-letter",
        help="list the records the workers refused, or re-publish chosen ones to their source topic",
        description=(
            "list: every dead letter with its source (topic:partition:offset), kind and reason. replay: produce "
            "the original key and value bytes of the chosen dead letters to their source topic again, for "
            "example after a schema or worker fix."
        ),
    )
    p.add_argument("action", choices=["list", "replay"])
    p.add_argument("--source-topic", help="only dead letters from this contract topic")
    p.add_argument(
        "--kind",
        help="only this kind (not_wire_format, unknown_schema, unresolvable_schema, corrupt, bad_timestamp, ...)",
    )
    p.add_argument("--source", action="append", metavar="TOPIC:PARTITION:OFFSET", help="only this original record")
    p.add_argument("--all", action="store_true", help="replay: every dead letter")
    p.add_argument("--dry-run", action="store_true", help="replay: show how many would be replayed")
    p.add_argument("--json", action="store_true", help="list: one JSON object per dead letter")
    p.add_argument("--limit", type=int, default=0, help="list: only the last N")
    p.set_defaults(func=cmd_dead_letter)

    p = sub.add_parser("boosters", help="the known boosters: status, deadline, time left, audience")
    p.add_argument(
        "--status", choices=["PENDING", "SCHEDULED", "REJECTED", "CANCELLED", "SENT"], help="only this status"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_boosters)

    p = sub.add_parser(
        "audience",
        help="who a booster reaches and why the others are left out: a live preview, or after firing its outcomes",
        description=(
            "Before the booster fires, asks a worker (it gathers every worker's partitions) who would get it if it "
            "fired now, with the exclusions of R11. Once it was SENT, answers from its report and from "
            "booster.audience, which keeps each recipient's outcome (INCLUDED or the exclusion); --export writes "
            "that group as CSV for the campaign report. Exit code 4 when the campaign has no such booster."
        ),
    )
    p.add_argument("campaign_id")
    p.add_argument("--contact", help="explain why this contact is in or out")
    p.add_argument(
        "--export", metavar="FILE", help="after firing: write every recipient's outcome as CSV ('-': stdout)"
    )
    p.add_argument("--worker", help="a worker's web address (default http://127.0.0.1:$BOOSTER_WEB_PORT)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audience)

    p = sub.add_parser(
        "results",
        help="what a booster earned: its boosted and held-out groups' engagement and the difference",
        description=(
            "Once a SENT booster's measurement window has ended (measurement_hours after its deadline, 72 by "
            "default), prints its results from booster.results: the boosted group and the held-out group (launch "
            "setting holdout_percent), how many of each engaged (a person's open or click of the original or the "
            "booster), the difference with its 95 % confidence interval and the extra engagements. Exit code 4 "
            "when it has none yet."
        ),
    )
    p.add_argument("campaign_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("lag", help="how far the workers are behind, per topic and partition; due deadlines waiting")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_lag)

    p = sub.add_parser("worker", help="run a booster worker (several share the partitions)")
    p.add_argument("--web-port", type=int, help="web port (default BOOSTER_WEB_PORT); one per worker on a host")
    p.add_argument("--data-dir", help="where this worker keeps its RocksDB state")
    p.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("demo", help="broker, topics, a worker and a campaign whose booster fires within a minute")
    p.add_argument("--recipients", type=int, default=300)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the final report")
    p.add_argument("--keep-kafka", action="store_true", help="leave the broker running afterwards")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("config", help="show the BOOSTER_* settings and their defaults")
    p.set_defaults(func=cmd_config)
    return parser


def _reads_or_writes_records(args: argparse.Namespace) -> bool:
    """The command encodes or decodes records (with a schema registry set, it speaks the registry's ids).
    A worker connects to the registry itself, waiting for it as for the broker."""
    if args.command in ("kafka", "registry", "config", "worker", "lag"):
        return False
    return bool(args.command != "topics" or args.action == "create")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if args.command != "worker":
        # `booster tail ... | head` ends quietly. Not a worker: it keeps Python's SIGPIPE ignored, or a
        # socket whose peer went away (a broker killed, a scraper that hung up) ends it at once
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        if _reads_or_writes_records(args):
            from booster.schemas.registry import use_registry

            # `topics create` registers the contract's schemas, with each subject's compatibility level
            creating = args.command in ("topics", "demo")  # the demo makes its topics as `topics create` does
            registered = use_registry(_settings(), register=creating, set_compatibility=creating)
            if registered:
                print(f"{len(registered)} contract schema(s) registered at {_settings().registry.url}", file=sys.stderr)
        result: int = args.func(args)
        return result
    except BoosterError as exc:
        print(f"booster {args.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
