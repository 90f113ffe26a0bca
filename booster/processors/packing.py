"""Compact bytes for state values kept in tables (RocksDB and changelogs), and the plain dicts the
Avro records of the internal topics are made of.

Recipient rows are the bulk of the state (one per recipient of every live campaign), so they are a
compact struct: about 56 bytes for one message with one report; the rarer values use JSON.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any, NamedTuple

from booster.processors.audience import Mark, Tally
from booster.processors.boosters import LaunchStatus, Schedule, launch_status_of, reason_code_of
from booster.processors.campaigns import CampaignPartition, Decided, LiveBooster
from booster.processors.events import AccountChannels
from booster.processors.frequency import FrequencyCap
from booster.processors.quiet import QuietHours
from booster.processors.recipients import ContactState, RecipientState, Report
from booster.processors.summaries import PartitionSummary, SummaryState
from booster.processors.uplift import GroupCounts, Measuring, PartitionMeasurement

_NONE = -1
_RECIPIENT_V1 = struct.Struct("<5q")  # sent, earliest delivered, earliest error, opened, clicked: 40 bytes
_RECIPIENT_HEAD = struct.Struct("<B3qHHH")  # version, sent, opened, clicked, ids, messages, reports
_RECIPIENT_V2 = 2
# version 2's, then the earliest machine open and the earliest bot click after clicked
_RECIPIENT_HEAD_V3 = struct.Struct("<B5qHHH")
_RECIPIENT_V3 = 3  # written only for a recipient with a machine open or a bot click: the others keep version 2's size
# version 3's head, then after the reports the times of `later_clicks` and `last_click` (only when
# there are later clicks); the count's high bit says whether `last_click` follows them
_RECIPIENT_HEAD_V4 = struct.Struct("<B5qHHHB")
_LAST_CLICK_BIT = 0x80
_RECIPIENT_V4 = 4
_CLICK = struct.Struct("<q")
_ID_LEN = struct.Struct("<H")
_REPORT = struct.Struct("<Hq?")  # message id index, reported_at, error
_CONTACT_HEAD = struct.Struct("<qBB")
_UNSUB = struct.Struct("<Bq")
_BLOCK = struct.Struct("<q?")
# after the blocks, in rows with reachability or time-zone facts only: the count of reachability facts,
# then each (channel, changed_at, reachable); then, with time-zone facts, their count and each
# (changed_at, name length) and the name
_COUNT = struct.Struct("<B")
_REACH = struct.Struct("<Bq?")
_ZONE = struct.Struct("<qB")
_CHANNEL_CODES = {"ALL": 0, "EMAIL": 1, "SMS": 2, "PUSH": 3}
_CHANNEL_NAMES = {v: k for k, v in _CHANNEL_CODES.items()}


def _opt(v: int | None) -> int:
    return _NONE if v is None else v


def _unopt(v: int) -> int | None:
    return None if v == _NONE else v


def pack_recipient(s: RecipientState) -> bytes:
    # the usual row, one message and its reports, nothing else: the bytes of the general layout below,
    # without its sorting and indexing (ingest packs a row per fact)
    if (
        len(s.messages) == 1
        and not s.later_clicks
        and s.last_click is None
        and s.machine_opened_at is None
        and s.bot_clicked_at is None
    ):
        message = s.messages[0]
        if all(m == message for m, _, _ in s.reports):
            raw = message.encode()
            head = _RECIPIENT_HEAD.pack(
                _RECIPIENT_V2, _opt(s.sent_at), _opt(s.opened_at), _opt(s.clicked_at), 1, 1, len(s.reports)
            )
            data = b"".join(
                [
                    head,
                    _ID_LEN.pack(len(raw)),
                    raw,
                    _ID_LEN.pack(0),
                    *(_REPORT.pack(0, at, e) for _, at, e in s.reports),
                ]
            )
            return data + b"\0" if len(data) == _RECIPIENT_V1.size else data
    return pack_recipient_general(s)


def pack_recipient_general(s: RecipientState) -> bytes:
    """Any row: the message ids once, sorted; the sent ones and the reports by index into them."""
    ids = sorted({*s.messages, *(m for m, _, _ in s.reports)})
    index = {m: i for i, m in enumerate(ids)}
    counts = (len(ids), len(s.messages), len(s.reports))
    times = (_opt(s.sent_at), _opt(s.opened_at), _opt(s.clicked_at))
    machines = (_opt(s.machine_opened_at), _opt(s.bot_clicked_at))
    if s.later_clicks:
        n_clicks = len(s.later_clicks) | (0 if s.last_click is None else _LAST_CLICK_BIT)
        parts = [_RECIPIENT_HEAD_V4.pack(_RECIPIENT_V4, *times, *machines, *counts, n_clicks)]
    elif s.machine_opened_at is None and s.bot_clicked_at is None:
        parts = [_RECIPIENT_HEAD.pack(_RECIPIENT_V2, *times, *counts)]
    else:
        parts = [_RECIPIENT_HEAD_V3.pack(_RECIPIENT_V3, *times, *machines, *counts)]
    for m in ids:
        raw = m.encode()
        parts += [_ID_LEN.pack(len(raw)), raw]
    parts += [_ID_LEN.pack(index[m]) for m in s.messages]
    parts += [_REPORT.pack(index[m], at, error) for m, at, error in s.reports]
    parts += [_CLICK.pack(at) for at in s.later_clicks]
    if s.last_click is not None:
        parts.append(_CLICK.pack(s.last_click))
    data = b"".join(parts)
    # 40 bytes is the length of the first layout, still read from older tables and changelogs
    return data + b"\0" if len(data) == _RECIPIENT_V1.size else data


def unpack_recipient(data: bytes) -> RecipientState:
    # the fan-out's hottest call, once per row: no closures (they would make `pos` a cell) and the
    # usual row, one message and at most one report, read without loops
    if len(data) == _RECIPIENT_V1.size:
        return _unpack_recipient_v1(data)
    layout = data[0]
    machine = bot = _NONE
    n_clicks = 0
    if layout == _RECIPIENT_V4:
        _, sent, opened, clicked, machine, bot, n_ids, n_messages, n_reports, n_clicks = _RECIPIENT_HEAD_V4.unpack_from(
            data, 0
        )
        pos = _RECIPIENT_HEAD_V4.size
    elif layout == _RECIPIENT_V3:
        _, sent, opened, clicked, machine, bot, n_ids, n_messages, n_reports = _RECIPIENT_HEAD_V3.unpack_from(data, 0)
        pos = _RECIPIENT_HEAD_V3.size
    else:
        _, sent, opened, clicked, n_ids, n_messages, n_reports = _RECIPIENT_HEAD.unpack_from(data, 0)
        pos = _RECIPIENT_HEAD.size
    if n_ids == 1 and n_messages == 1 and n_reports <= 1 and not n_clicks:
        length = data[pos] | data[pos + 1] << 8
        message = data[pos + 2 : pos + 2 + length].decode()
        pos += 4 + length  # past the id and the message's index (0, the only id)
        report: tuple[Report, ...] = ()
        if n_reports:
            _, at, error = _REPORT.unpack_from(data, pos)
            report = ((message, at, error),)
        return RecipientState(
            None if sent == _NONE else sent,
            None if opened == _NONE else opened,
            None if clicked == _NONE else clicked,
            (message,),
            report,
            None if machine == _NONE else machine,
            None if bot == _NONE else bot,
        )
    ids = []
    for _ in range(n_ids):
        length = data[pos] | data[pos + 1] << 8
        ids.append(data[pos + 2 : pos + 2 + length].decode())
        pos += 2 + length
    messages = []
    for _ in range(n_messages):
        messages.append(ids[data[pos] | data[pos + 1] << 8])
        pos += 2
    reports = []
    for _ in range(n_reports):
        i, at, error = _REPORT.unpack_from(data, pos)
        reports.append((ids[i], at, error))
        pos += _REPORT.size
    later_clicks = []
    for _ in range(n_clicks & ~_LAST_CLICK_BIT):
        later_clicks.append(_CLICK.unpack_from(data, pos)[0])
        pos += _CLICK.size
    last_click = _CLICK.unpack_from(data, pos)[0] if n_clicks & _LAST_CLICK_BIT else None
    return RecipientState(
        None if sent == _NONE else sent,
        None if opened == _NONE else opened,
        None if clicked == _NONE else clicked,
        tuple(messages),
        tuple(reports),
        None if machine == _NONE else machine,
        None if bot == _NONE else bot,
        tuple(later_clicks),
        last_click,
    )


def _unpack_recipient_v1(data: bytes) -> RecipientState:
    """The first layout kept only the earliest DELIVERED and the earliest ERROR, without message ids:
    read as one message with those reports, which decides as that layout did."""
    sent, delivered, error, opened, clicked = _RECIPIENT_V1.unpack(data)
    reports = [("", at, err) for at, err in ((delivered, False), (error, True)) if at != _NONE]
    messages = ("",) if sent != _NONE else ()
    return RecipientState(_unopt(sent), _unopt(opened), _unopt(clicked), messages, tuple(sorted(reports)))


def pack_contact(s: ContactState) -> bytes:
    parts = [_CONTACT_HEAD.pack(_opt(s.deleted_at), len(s.unsubscribed), min(len(s.blocks), 255))]
    parts += [_UNSUB.pack(_CHANNEL_CODES[ch], at) for ch, at in s.unsubscribed]
    # more than 255 block changes of one contact: keep the latest, they decide
    parts += [_BLOCK.pack(at, blocked) for at, blocked in s.blocks[-255:]]
    if s.reachability or s.time_zones:
        # more than 255 changes: keep each channel's latest, they decide
        kept = s.reachability if len(s.reachability) <= 255 else _latest_reachability(s.reachability)
        parts.append(_COUNT.pack(len(kept)))
        parts += [_REACH.pack(_CHANNEL_CODES[ch], at, ok) for ch, at, ok in kept]
    if s.time_zones:
        zones = s.time_zones[-255:]  # the latest decide
        parts.append(_COUNT.pack(len(zones)))
        for at, name in zones:
            raw = name.encode()
            parts += [_ZONE.pack(at, len(raw)), raw]
    return b"".join(parts)


def _latest_reachability(facts: tuple[tuple[str, int, bool], ...]) -> tuple[tuple[str, int, bool], ...]:
    by_channel: dict[str, list[tuple[str, int, bool]]] = {}
    for fact in facts:
        by_channel.setdefault(fact[0], []).append(fact)
    return tuple(sorted(f for channel_facts in by_channel.values() for f in channel_facts[-80:]))


def unpack_contact(data: bytes) -> ContactState:
    deleted_at, n_unsub, n_blocks = _CONTACT_HEAD.unpack_from(data, 0)
    pos = _CONTACT_HEAD.size
    unsub = []
    for _ in range(n_unsub):
        code, at = _UNSUB.unpack_from(data, pos)
        unsub.append((_CHANNEL_NAMES[code], at))
        pos += _UNSUB.size
    blocks = []
    for _ in range(n_blocks):
        at, blocked = _BLOCK.unpack_from(data, pos)
        blocks.append((at, blocked))
        pos += _BLOCK.size
    reachability = []
    if pos < len(data):  # rows of older workers end with the blocks
        (n_reach,) = _COUNT.unpack_from(data, pos)
        pos += _COUNT.size
        for _ in range(n_reach):
            code, at, ok = _REACH.unpack_from(data, pos)
            reachability.append((_CHANNEL_NAMES[code], at, ok))
            pos += _REACH.size
    zones = []
    if pos < len(data):
        (n_zones,) = _COUNT.unpack_from(data, pos)
        pos += _COUNT.size
        for _ in range(n_zones):
            at, length = _ZONE.unpack_from(data, pos)
            pos += _ZONE.size
            zones.append((at, data[pos : pos + length].decode()))
            pos += length
    return ContactState(_unopt(deleted_at), tuple(unsub), tuple(blocks), tuple(reachability), tuple(zones))


def schedule_to_dict(s: Schedule) -> dict[str, Any]:
    return {
        "campaign_id": s.campaign_id,
        "booster_id": s.booster_id,
        "booster_name": s.booster_name,
        "account_id": s.account_id,
        "channel": s.channel,
        "criterion": s.criterion,
        "content_ref": s.content_ref,
        "deadline": s.deadline,
        "count_machine_opens": s.count_machine_opens,
        "scanner_window_seconds": s.scanner_window_seconds,
        "campaign_channel": s.campaign_channel,
        "quiet_hours": None if s.quiet_hours is None else quiet_hours_to_dict(s.quiet_hours),
        "frequency_cap": None if s.frequency_cap is None else frequency_cap_to_dict(s.frequency_cap),
        "holdout_percent": s.holdout_percent,
        "measurement_ms": s.measurement_ms,
    }


def frequency_cap_to_dict(c: FrequencyCap) -> dict[str, Any]:
    return {"max_boosters": c.max_boosters, "window_ms": c.window_ms}


def quiet_hours_to_dict(q: QuietHours) -> dict[str, Any]:
    return {"start_minute": q.start_minute, "end_minute": q.end_minute, "time_zone": q.time_zone}


def schedule_from_dict(d: Mapping[str, Any]) -> Schedule:
    return Schedule(
        d["campaign_id"],
        d["booster_id"],
        d["booster_name"],
        d["account_id"],
        d["channel"],
        d["criterion"],
        d["content_ref"],
        d["deadline"],
        bool(d.get("count_machine_opens", False)),  # absent from older records and rows
        d.get("scanner_window_seconds", 0),  # absent from older ones: no scanner window, as they were made
        d.get("campaign_channel"),
        None if d.get("quiet_hours") is None else QuietHours(**d["quiet_hours"]),
        None if d.get("frequency_cap") is None else FrequencyCap(**d["frequency_cap"]),
        d.get("holdout_percent", 0),  # absent from older ones: no holdout, not measured
        d.get("measurement_ms", 0),
    )


_MOMENT = struct.Struct(">q")


def pack_moment(at: int) -> bytes:
    """A single time (epoch ms): an `engagement` row's first engagement."""
    return _MOMENT.pack(at)


def unpack_moment(data: bytes) -> int:
    at: int = _MOMENT.unpack(data)[0]
    return at


def pack_campaign(s: CampaignPartition) -> bytes:
    return json.dumps(
        {
            "schedule": None if s.schedule is None else schedule_to_dict(s.schedule),
            "scheduled_at": s.scheduled_at,
            "cancelled_at": s.cancelled_at,
            "no_booster": s.no_booster,
            "fired": s.fired,
            "first_seen_at": s.first_seen_at,
            "decision": None if s.decision is None else _decision_list(s.decision),
            "counts": {str(p): v for p, v in s.counts.items()},
            "access": [list(change) for change in s.access],
            "outcomes": None if s.outcomes is None else list(s.outcomes),
            "measured": s.measured,
        },
        separators=(",", ":"),
    ).encode()


def unpack_campaign(data: bytes, campaign_id: str) -> CampaignPartition:
    d = json.loads(data)
    decision = d.get("decision")  # absent in rows written before decisions were kept
    return CampaignPartition(
        schedule=None if d["schedule"] is None else schedule_from_dict(d["schedule"]),
        scheduled_at=d.get("scheduled_at"),  # absent in rows written before launches were ranked
        cancelled_at=d["cancelled_at"],
        no_booster=d["no_booster"],
        fired=d["fired"],
        first_seen_at=d["first_seen_at"],
        decision=None if decision is None else _decision_of(campaign_id, decision),
        counts={int(p): v for p, v in d.get("counts", {}).items()},
        # a state kept before changes named their account has (at, enabled) entries
        access=tuple((change[0], change[1], change[2] if len(change) > 2 else "") for change in d.get("access", [])),
        # absent in rows of older workers, which do not measure
        outcomes=None if d.get("outcomes") is None else (d["outcomes"][0], d["outcomes"][1]),
        measured=d.get("measured", False),
    )


def _decision_list(d: Decided) -> list[Any]:
    return [d.at, d.cancelled_at, None if d.reason is None else d.reason.value]


def _decision_of(campaign_id: str, d: list[Any]) -> Decided:
    # kept without its schedule: the state's is the decided one
    return Decided(campaign_id, d[0], d[1], reason_code_of(d[2] if len(d) > 2 else None))


def schedule_record(s: Schedule) -> dict[str, Any]:
    """A schedule as the internal topics carry it: the campaign id is in the enclosing record."""
    d = schedule_to_dict(s)
    del d["campaign_id"]
    return d


def summary_to_dict(s: PartitionSummary) -> dict[str, Any]:
    """A summary as booster.summaries carries it (and as the summaries table keeps it)."""
    return {
        "campaign_id": s.campaign_id,
        "partition": s.partition,
        "partitions": s.partitions,
        "schedule": schedule_record(s.schedule),
        "cancelled_at": s.cancelled_at,
        "audience": s.tally.audience,
        "excluded": dict(s.tally.excluded),
        "cancel_reason": None if s.cancel_reason is None else s.cancel_reason.value,
        "marks": dict(s.tally.marks),
        "machine_opened": s.tally.marked(Mark.MACHINE_OPEN),  # as older workers read it
    }


def summary_from_dict(r: Mapping[str, Any]) -> PartitionSummary:
    return PartitionSummary(
        campaign_id=r["campaign_id"],
        partition=r["partition"],
        partitions=r["partitions"],
        schedule=schedule_from_dict({"campaign_id": r["campaign_id"], **r["schedule"]}),
        cancelled_at=r["cancelled_at"],
        tally=tally_of_record(r),
        cancel_reason=reason_code_of(r.get("cancel_reason")),  # absent in rows of older versions
    )


def tally_of_record(r: Mapping[str, Any]) -> Tally:
    """The tally in a summary or fan-out progress record: `marks` since summaries v4 and progress v3;
    records of the versions before have `machine_opened` alone (read into v4's schema: empty marks)."""
    marks = dict(r.get("marks") or {})
    if r.get("machine_opened"):
        marks[Mark.MACHINE_OPEN.value] = r["machine_opened"]
    return Tally(r["audience"], dict(r["excluded"]), marks)


def pack_summaries(s: SummaryState) -> bytes:
    # {"done": ..., "parts": {"<partition>": summary record}, "deadline": ...}; rows written before
    # retention came have no "deadline"
    parts = {str(p): summary_to_dict(summary) for p, summary in s.parts.items()}
    d: dict[str, Any] = {"done": s.done, "parts": parts}
    if s.deadline is not None:
        d["deadline"] = s.deadline
    return json.dumps(d, separators=(",", ":")).encode()


def unpack_summaries(data: bytes) -> SummaryState:
    d = json.loads(data)
    return SummaryState({int(p): summary_from_dict(r) for p, r in d["parts"].items()}, d["done"], d.get("deadline"))


def pack_account(a: AccountChannels) -> bytes:
    d: dict[str, Any] = {"channels": sorted(a.channels), "updated_at": a.updated_at}
    if a.quiet_hours or a.time_zone != "UTC":  # rows of accounts without them stay as older workers wrote
        d["quiet_hours"] = [list(q) for q in a.quiet_hours]
        d["time_zone"] = a.time_zone
    if a.frequency_cap is not None:
        d["frequency_cap"] = frequency_cap_to_dict(a.frequency_cap)
    return json.dumps(d).encode()


def unpack_account(account_id: str, raw: bytes) -> AccountChannels:
    d = json.loads(raw)
    quiet = tuple((q[0], q[1], q[2]) for q in d.get("quiet_hours", ()))
    cap = None if d.get("frequency_cap") is None else FrequencyCap(**d["frequency_cap"])
    return AccountChannels(account_id, frozenset(d["channels"]), d["updated_at"], quiet, d.get("time_zone", "UTC"), cap)


class DecidedRow(NamedTuple):
    """What is kept of a decided launch (see `pack_launch_decision`)."""

    status: LaunchStatus
    fingerprint: str | None
    moment: int | None
    quiet_hours: QuietHours | None = None
    frequency_cap: FrequencyCap | None = None


def pack_launch_decision(
    status: LaunchStatus,
    fingerprint: str,
    moment: int,
    quiet_hours: QuietHours | None = None,
    frequency_cap: FrequencyCap | None = None,
) -> bytes:
    """What is kept of a decided launch: its status, its fingerprint to tell a retry of it from another
    launch of the same campaign, its `launch_moment`, from which it is kept (retention), and the
    account's quiet hours and frequency cap its schedule got, so that a schedule broadcast again is the
    same one: `STATUS:fingerprint:moment:q=START-END@ZONE;c=MAX/WINDOW_MS`."""
    settings = []
    if quiet_hours is not None:
        settings.append(f"q={quiet_hours.start_minute}-{quiet_hours.end_minute}@{quiet_hours.time_zone}")
    if frequency_cap is not None:
        settings.append(f"c={frequency_cap.max_boosters}/{frequency_cap.window_ms}")
    return f"{status}:{fingerprint}:{moment}:{';'.join(settings)}".encode()


def unpack_launch_decision(raw: bytes) -> DecidedRow:
    """Rows of older workers have the status alone, or no moment, or no settings."""
    status, _, rest = raw.decode().partition(":")
    fingerprint, _, rest = rest.partition(":")
    moment, _, settings = rest.partition(":")
    quiet_hours, frequency_cap = None, None
    for setting in filter(None, settings.split(";")):
        name, _, value = setting.partition("=")
        if name == "q":
            minutes, _, time_zone = value.partition("@")
            start, _, end = minutes.partition("-")
            quiet_hours = QuietHours(int(start), int(end), time_zone)
        elif name == "c":
            max_boosters, _, window_ms = value.partition("/")
            frequency_cap = FrequencyCap(int(max_boosters), int(window_ms))
    return DecidedRow(
        launch_status_of(status), fingerprint or None, int(moment) if moment else None, quiet_hours, frequency_cap
    )


def pack_live_booster(b: LiveBooster) -> bytes:
    return json.dumps({"channel": b.channel, "deadline": b.deadline}, separators=(",", ":")).encode()


def unpack_live_booster(campaign_id: str, raw: bytes) -> LiveBooster:
    d = json.loads(raw)
    return LiveBooster(campaign_id, d["channel"], d["deadline"])


def pack_measuring(s: Measuring) -> bytes:
    """The `measurements` table's row of a booster: its partitions' counts so far, or the done marker."""
    parts = [
        [p.partition, p.partitions, p.booster_id, p.booster_name, p.account_id, p.deadline, p.measurement_ms,
         p.holdout_percent, p.counts.boosted, p.counts.boosted_engaged, p.counts.held_out,
         p.counts.held_out_engaged, p.measured_at]
        for p in s.parts
    ]  # fmt: skip
    return json.dumps({"parts": parts, "done": s.done, "deadline": s.deadline}, separators=(",", ":")).encode()


def unpack_measuring(data: bytes, campaign_id: str) -> Measuring:
    d = json.loads(data)
    parts = tuple(
        PartitionMeasurement(campaign_id, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], GroupCounts(*p[8:12]), p[12])
        for p in d["parts"]
    )
    return Measuring(parts, d["done"], d["deadline"])
