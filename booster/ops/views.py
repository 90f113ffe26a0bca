"""What operators ask: which boosters exist and when they fire, how far the workers are behind, who a
booster would reach now (from a worker's preview endpoint), and, once it fired, who it reached and why
the others were left out (from booster.audience)."""

from __future__ import annotations

import csv
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from booster.config import Settings
from booster.errors import BoosterError
from booster.ops.clients import latest_reports, read_topic
from booster.processors.text import format_timestamp, human_duration
from booster.schemas.catalog import CONTACT_INPUT_TOPICS, LAUNCHES_BY_ACCOUNT, audience_key
from booster.schemas.codec import codec
from booster.streams.connect import client_options, connected
from booster.streams.gate import only_markers_left, probe_consumer
from booster.streams.records import contact_partition

# every topic the workers consume, in the order an operator reads them
CONSUMED = [
    *CONTACT_INPUT_TOPICS,
    "campaign.launched",
    "campaign.booster-cancelled",
    "account.channels",
    LAUNCHES_BY_ACCOUNT,
    "booster.control",
    "booster.summaries",
]


def _human_duration(ms: int) -> str:
    return human_duration(abs(ms) // 1000)


async def boosters(settings: Settings) -> list[dict[str, Any]]:
    """The latest report of every booster (booster.reports is compacted by campaign: its state)."""
    latest = {cid: {**report, "reported_at": ts} for cid, (report, ts) in (await latest_reports(settings)).items()}
    now = int(time.time() * 1000)
    rows = []
    for report in sorted(latest.values(), key=lambda r: (r["deadline"] or 0, r["campaign_id"])):
        left = None if report["deadline"] is None else report["deadline"] - now
        waiting = report["status"] in ("SCHEDULED", "PENDING")
        if not waiting:
            when = "-"
        elif left is not None and left > 0:
            when = f"in {_human_duration(left)}"
        else:
            when = f"due {_human_duration(-(left or 0))} ago"
        rows.append({**report, "time_left_ms": left if waiting else None, "when": when})
    return rows


def render_boosters(rows: list[dict[str, Any]]) -> str:
    header = f"{'CAMPAIGN':<28} {'STATUS':<10} {'DEADLINE':<25} {'WHEN':<16} {'AUDIENCE':>9}  NAME / REASON"
    lines = [header]
    for r in rows:
        deadline = "-" if r["deadline"] is None else format_timestamp(r["deadline"])
        code = r.get("reason_code")
        why = f"{code}: {r['reason']}" if code and r["reason"] else r["reason"]
        detail = r["booster_name"] + (f" ({why})" if why else "")
        lines.append(
            f"{r['campaign_id']:<28} {r['status']:<10} {deadline:<25} {r['when']:<16} {r['audience']:>9}  {detail}"
        )
    return "\n".join(lines)


async def lag(settings: Settings, lateness_ms: int | None = None) -> dict[str, Any]:
    """Per topic and partition: end offset, the workers' committed offset, and the difference;
    and the due boosters that have no final report yet (held by the lag gate, or firing)."""
    group = settings.group_id
    tps = [TopicPartition(settings.topic(t), p) for t in CONSUMED for p in range(settings.partitions)]
    async with (
        connected(settings, probe_consumer(client_options(settings))) as consumer,
        connected(settings, AIOKafkaAdminClient(**client_options(settings))) as client,
    ):
        # end_offsets of a topic that does not exist retries until it times out, with a traceback
        missing = sorted({tp.topic for tp in tps} - set(await client.list_topics()))
        if missing:
            raise BoosterError(f"topics missing: {', '.join(missing)}; run `booster topics create`")
        ends = await consumer.end_offsets(tps)
        committed = await client.list_consumer_group_offsets(group, partitions=tps)
        positions = {tp: max(0, meta.offset) if (meta := committed.get(tp)) is not None else 0 for tp in tps}
        # transaction markers and aborted records take offsets no consumer processes
        settled = await only_markers_left(consumer, positions, ends)
    names = {settings.topic(t): t for t in CONSUMED}
    partitions = [
        {
            "topic": names[tp.topic],
            "partition": tp.partition,
            "end_offset": ends[tp],
            "committed": positions[tp],
            "lag": 0 if tp in settled else max(0, ends[tp] - positions[tp]),
        }
        for tp in tps
    ]
    lateness = settings.allowed_lateness_ms if lateness_ms is None else lateness_ms
    now = int(time.time() * 1000)
    waiting = [
        {
            "campaign_id": b["campaign_id"],
            "deadline": b["deadline"],
            "due_for_ms": now - (b["deadline"] + lateness),
        }
        for b in await boosters(settings)
        if b["status"] == "SCHEDULED" and b["deadline"] is not None and b["deadline"] + lateness <= now
    ]
    by_topic: dict[str, int] = {}
    for row in partitions:
        by_topic[row["topic"]] = by_topic.get(row["topic"], 0) + row["lag"]
    return {
        "group": group,
        "total_lag": sum(r["lag"] for r in partitions),
        "by_topic": by_topic,
        "partitions": partitions,
        "waiting_deadlines": waiting,
    }


def render_lag(report: dict[str, Any]) -> str:
    lines = [f"consumer group {report['group']}: {report['total_lag']} record(s) behind"]
    lines.append(f"{'TOPIC':<30} {'PARTITION':>9} {'END':>10} {'COMMITTED':>10} {'LAG':>8}")
    for r in report["partitions"]:
        lines.append(f"{r['topic']:<30} {r['partition']:>9} {r['end_offset']:>10} {r['committed']:>10} {r['lag']:>8}")
    if report["waiting_deadlines"]:
        lines.append("due deadlines without a final report (held by the lag gate, or firing):")
        for w in report["waiting_deadlines"]:
            lines.append(
                f"  {w['campaign_id']}: deadline {format_timestamp(w['deadline'])}, "
                f"due for {_human_duration(w['due_for_ms'])}"
            )
    else:
        lines.append("no due deadline is waiting")
    return "\n".join(lines)


def audience(worker_url: str, campaign_id: str, contact_id: str | None = None, token: str = "") -> dict[str, Any]:
    """Ask a worker for the live preview; it gathers the other workers' partitions itself. `token`: the
    workers' BOOSTER_WEB_TOKEN, when their pages need it."""
    query = urllib.parse.urlencode({"contact": contact_id} if contact_id else {})
    url = f"{worker_url.rstrip('/')}/booster/audience/{urllib.parse.quote(campaign_id)}/" + (
        f"?{query}" if query else ""
    )
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            result: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise BoosterError(
                f"the worker at {worker_url} requires its web token; set BOOSTER_WEB_TOKEN (or "
                "BOOSTER_WEB_TOKEN_FILE) to the workers' token"
            ) from None
        raise BoosterError(f"the worker at {worker_url} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise BoosterError(
            f"no worker answered at {worker_url} ({exc}); start one with `booster worker` or pass --worker URL"
        ) from None
    return result


def render_audience(a: dict[str, Any]) -> str:
    if not a["scheduled"]:
        return (
            f"campaign {a['campaign_id']} has no scheduled booster on the workers "
            f"(partitions {a['partitions']}); `booster boosters` shows what was decided"
        )
    lines = [
        f"booster of {a['campaign_id']}: deadline {format_timestamp(a['deadline'])}, "
        f"as of {format_timestamp(a['evaluated_at'])}",
        f"  would reach {a['audience']} of {a['recipients']} recipient(s)",
    ]
    if a.get("machine_opened"):  # absent from older workers' answers
        lines.append(f"  of them {a['machine_opened']} whose only opens were machine opens")
    if a.get("scanner_clicked"):
        lines.append(f"  of them {a['scanner_clicked']} whose only clicks were a link scanner's")
    if a.get("deferred"):
        lines.append(f"  of them {a['deferred']} inside the quiet hours at the deadline: their commands would wait")
    if a["cancelled"]:
        lines.append("  cancelled: it will not be sent")
    if a["fired_partitions"]:
        lines.append(f"  already fired in partitions {a['fired_partitions']} (their rows are gone)")
    for reason, count in a["excluded"].items():
        lines.append(f"  excluded {reason:<13} {count}")
    if a["contact"] is not None:
        c = a["contact"]
        lines.append(f"contact {c['contact_id']} (partition {c['partition']}): {c['why']}")
    return "\n".join(lines)


# -- after firing: booster.audience (R16) -----------------------------------------------------------


def fired(report: dict[str, Any]) -> bool:
    """Whether a final report's booster walked its recipients, so booster.audience holds their outcomes:
    SENT, or CANCELLED because nobody was left (R7)."""
    return report["status"] == "SENT" or report.get("reason_code") == "EMPTY_AUDIENCE"


EXPORT_COLUMNS = (
    "contact_id",
    "outcome",
    "command_id",
    "booster_id",
    "campaign_id",
    "account_id",
    "deadline",
    "decided_at",
)


async def contact_outcome(settings: Settings, report: dict[str, Any], contact_id: str) -> dict[str, Any] | None:
    """A contact's outcome in a fired booster: read from the contact's partition of booster.audience."""
    key = audience_key(report["booster_id"], contact_id)
    partition = contact_partition(contact_id, settings.partitions)
    found: dict[str, Any] | None = None
    async for msg in read_topic(settings, "booster.audience", until_end=True, partitions=[partition]):
        if msg.key == key:
            found = codec().decode("booster.audience", msg.value)  # compacted: the last one counts
    return None if found is None else {**found, "partition": partition}


def fired_audience(report: dict[str, Any], contact: dict[str, Any] | None, contact_id: str | None) -> dict[str, Any]:
    """What `booster audience` says once the booster was sent: its report's counts, and one contact."""
    return {
        "campaign_id": report["campaign_id"],
        "booster_id": report["booster_id"],
        "status": report["status"],
        "deadline": report["deadline"],
        "audience": report["audience"],
        "excluded": report["excluded"],
        "boosted_despite_machine_open": report["boosted_despite_machine_open"],
        "boosted_despite_scanner_click": report["boosted_despite_scanner_click"],
        "deferred": report["deferred"],
        "contact_id": contact_id,
        "contact": contact,
    }


def render_fired_audience(a: dict[str, Any]) -> str:
    recipients = a["audience"] + sum(a["excluded"].values())
    lines = [
        f"booster of {a['campaign_id']}: {a['status']}, deadline {format_timestamp(a['deadline'])}",
        f"  reached {a['audience']} of {recipients} recipient(s)",
    ]
    if a["boosted_despite_machine_open"]:
        lines.append(f"  of them {a['boosted_despite_machine_open']} whose only opens were machine opens")
    if a["boosted_despite_scanner_click"]:
        lines.append(f"  of them {a['boosted_despite_scanner_click']} whose only clicks were a link scanner's")
    if a["deferred"]:
        lines.append(f"  of them {a['deferred']} whose commands wait for the end of the quiet hours (send_after)")
    for reason, count in a["excluded"].items():
        if count:
            lines.append(f"  excluded {reason:<13} {count}")
    if a["contact_id"] is not None:
        c = a["contact"]
        if c is None:
            lines.append(f"contact {a['contact_id']}: not a recipient of the campaign (no outcome on booster.audience)")
        elif c["outcome"] == "INCLUDED":
            lines.append(f"contact {a['contact_id']}: INCLUDED, command {c['command_id']}")
        else:
            lines.append(f"contact {a['contact_id']}: left out, {c['outcome']}")
    lines.append(f"the whole group: booster audience {a['campaign_id']} --export FILE (CSV)")
    return "\n".join(lines)


async def export_audience(
    settings: Settings, report: dict[str, Any], out: Any, progress: Callable[[int, int], None] | None = None
) -> dict[str, int]:
    """Every outcome of a fired booster, as CSV rows (EXPORT_COLUMNS) on `out`; counts per outcome.
    `progress(read, written)` is called every 100,000 records read."""
    prefix = audience_key(report["booster_id"], "")
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    # one record per recipient: the fan-out writes each in the transaction of its chunk, a resumed
    # fan-out goes on after the last committed chunk, and aborted ones are not read
    counts: dict[str, int] = {}
    read = 0
    async for msg in read_topic(settings, "booster.audience", until_end=True):
        read += 1
        if msg.key is not None and msg.key.startswith(prefix) and msg.value is not None:
            o = codec().decode("booster.audience", msg.value)
            counts[o["outcome"]] = counts.get(o["outcome"], 0) + 1
            row = {**o, "command_id": o["command_id"] or ""}
            row["deadline"] = format_timestamp(o["deadline"])
            row["decided_at"] = format_timestamp(o["decided_at"])
            writer.writerow([row[c] for c in EXPORT_COLUMNS])
        if progress is not None and read % 100_000 == 0:
            progress(read, sum(counts.values()))
    return counts


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.2f} %"


def render_results(r: dict[str, Any]) -> str:
    """A booster's results in words: the groups, their engagement, and what the difference shows."""
    window = human_duration((r["measured_until"] - r["deadline"]) // 1000)
    lines = [
        f"booster of {r['campaign_id']} ({r['booster_name']}): engagement from its deadline "
        f"{format_timestamp(r['deadline'])} for {window}, to {format_timestamp(r['measured_until'])}",
        f"  boosted   {r['boosted']:>10,}  engaged {r['boosted_engaged']:>10,}  {_percent(r['boosted_rate']):>9}",
        f"  held out  {r['held_out']:>10,}  engaged {r['held_out_engaged']:>10,}  {_percent(r['held_out_rate']):>9}"
        f"  ({r['holdout_percent']} % holdout)",
    ]
    if r["difference"] is None:
        lines.append(
            "  no held-out group to compare with: launch the booster with holdout_percent to measure its uplift"
        )
        return "\n".join(lines)
    low, high = r["difference_low"], r["difference_high"]
    lines.append(
        f"  difference {100 * r['difference']:+.2f} points, 95 % confidence interval "
        f"{100 * low:+.2f} to {100 * high:+.2f}"
    )
    lines.append(
        f"  extra engagements from the booster: {r['extra_engagements']:,.0f} "
        f"({r['extra_engagements_low']:,.0f} to {r['extra_engagements_high']:,.0f})"
    )
    if low > 0:
        verdict = "the booster added engagement (the interval is above 0)"
    elif high < 0:
        verdict = "the booster lowered engagement (the interval is below 0)"
    else:
        verdict = (
            "no effect shown: the interval holds 0; groups this size detect a difference of "
            f"{100 * (r['detectable_difference'] or 0):.2f} points or more (80 % power)"
        )
    lines.append(f"  {verdict}")
    return "\n".join(lines)
