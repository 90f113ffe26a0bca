"""The facts upstream services publish, as small frozen values.

Timestamps are integer epoch milliseconds (UTC). Values come from decoded Avro records through
`from_record`; nothing here knows about Kafka.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from booster.errors import BoosterError, DecodeError
from booster.processors.frequency import MAX_CAP_WINDOW_MS, FrequencyCap
from booster.processors.quiet import parse_clock, zone

Channel = Literal["EMAIL", "SMS", "PUSH"]
Criterion = Literal["NOT_OPENED", "NOT_CLICKED"]
CHANNELS: tuple[Channel, ...] = ("EMAIL", "SMS", "PUSH")


@dataclass(frozen=True, slots=True)
class BoosterSettings:
    delay_seconds: int
    channel: Channel | None
    criterion: Criterion | None
    content_ref: str
    count_machine_opens: bool = False  # a machine open counts as the person's open (R6: not by default)
    # clicks this many seconds after delivery or sooner are a link scanner's; None: the campaign
    # channel's default (`boosters.default_scanner_window`)
    scanner_window_seconds: int | None = None
    # the share of the eligible recipients held out as the uplift measurement's control group
    holdout_percent: int = 0
    # how long after the deadline engagement is measured; None: `boosters.DEFAULT_MEASUREMENT_HOURS`
    measurement_hours: int | None = None


@dataclass(frozen=True, slots=True)
class CampaignLaunched:
    campaign_id: str
    account_id: str
    name: str
    channel: Channel
    group_size: int
    launched_at: int
    booster: BoosterSettings | None


@dataclass(frozen=True, slots=True)
class BoosterCancelled:
    campaign_id: str
    cancelled_at: int


@dataclass(frozen=True, slots=True)
class AccountChannels:
    account_id: str
    channels: frozenset[Channel]
    updated_at: int
    # (channel, start minute, end minute) of the local day when the account sends nothing on it, by channel
    quiet_hours: tuple[tuple[Channel, int, int], ...] = ()
    time_zone: str = "UTC"  # the local time of contacts without a `contact.time-zone` fact
    frequency_cap: FrequencyCap | None = None  # at most so many boosters per contact per rolling window


@dataclass(frozen=True, slots=True)
class MessageSent:
    campaign_id: str
    contact_id: str
    sent_at: int
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class MessageDelivered:
    campaign_id: str
    contact_id: str
    error: bool
    reported_at: int
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class MessageOpened:
    campaign_id: str
    contact_id: str
    opened_at: int
    machine: bool = False  # `machine_open`: a privacy proxy or a prefetch opened it, not the person


@dataclass(frozen=True, slots=True)
class MessageClicked:
    campaign_id: str
    contact_id: str
    clicked_at: int
    bot: bool = False  # the sender found a link scanner or another machine made it, not the person


@dataclass(frozen=True, slots=True)
class ContactUnsubscribed:
    contact_id: str
    channel: Channel | None  # None: from every channel
    unsubscribed_at: int


@dataclass(frozen=True, slots=True)
class ContactDeleted:
    contact_id: str
    deleted_at: int


@dataclass(frozen=True, slots=True)
class ContactBlocked:
    contact_id: str
    blocked: bool
    changed_at: int


@dataclass(frozen=True, slots=True)
class ContactReachability:
    """Whether the contact can be sent messages on a channel from `changed_at` on: an address or a
    number, and consent, for that channel (the account's contact service decides)."""

    contact_id: str
    channel: Channel
    reachable: bool
    changed_at: int


@dataclass(frozen=True, slots=True)
class ContactTimeZone:
    """The contact's IANA time zone from `changed_at` on (its local time for quiet hours)."""

    contact_id: str
    time_zone: str
    changed_at: int


MessageEvent = MessageSent | MessageDelivered | MessageOpened | MessageClicked
ContactEvent = ContactUnsubscribed | ContactDeleted | ContactBlocked | ContactReachability | ContactTimeZone


def launch_from_record(r: Mapping[str, Any]) -> CampaignLaunched:
    b = r.get("booster")
    booster = (
        None
        if b is None
        else BoosterSettings(
            b["delay_seconds"],
            b.get("channel"),
            b.get("criterion"),
            b["content_ref"],
            bool(b.get("count_machine_opens", False)),
            b.get("scanner_window_seconds"),  # since campaign.launched v3
            b.get("holdout_percent", 0),  # since v4
            b.get("measurement_hours"),
        )
    )
    return CampaignLaunched(
        r["campaign_id"],
        r["account_id"],
        r["name"],
        r["channel"],
        r["group_size"],
        r["launched_at"],
        booster,
    )


def message_event_from_record(topic: str, r: Mapping[str, Any]) -> MessageEvent:
    if topic == "message.sent":
        return MessageSent(r["campaign_id"], r["contact_id"], r["sent_at"], r["message_id"])
    if topic == "message.delivered":
        return MessageDelivered(
            r["campaign_id"], r["contact_id"], r["status"] == "ERROR", r["reported_at"], r["message_id"]
        )
    if topic == "message.opened":
        return MessageOpened(r["campaign_id"], r["contact_id"], r["opened_at"], bool(r.get("machine_open", False)))
    if topic == "message.clicked":
        return MessageClicked(r["campaign_id"], r["contact_id"], r["clicked_at"], bool(r.get("bot", False)))
    raise ValueError(f"{topic} is not a message topic")


def contact_event_from_record(topic: str, r: Mapping[str, Any]) -> ContactEvent:
    if topic == "contact.unsubscribed":
        return ContactUnsubscribed(r["contact_id"], r.get("channel"), r["unsubscribed_at"])
    if topic == "contact.deleted":
        return ContactDeleted(r["contact_id"], r["deleted_at"])
    if topic == "contact.blocked":
        return ContactBlocked(r["contact_id"], r["blocked"], r["changed_at"])
    if topic == "contact.reachability":
        return ContactReachability(r["contact_id"], r["channel"], r["reachable"], r["changed_at"])
    if topic == "contact.time-zone":
        return ContactTimeZone(r["contact_id"], _time_zone(r["time_zone"]), r["changed_at"])
    raise ValueError(f"{topic} is not a contact topic")


def account_from_record(account_id: str, r: Mapping[str, Any]) -> AccountChannels:
    """An account.channels record (version 2 adds quiet hours and the account's time zone); a time of
    day or a zone that makes no sense is a DecodeError, so the record goes to the dead-letter topic."""
    quiet: list[tuple[Channel, int, int]] = []
    for q in r.get("quiet_hours") or ():
        try:
            quiet.append((q["channel"], parse_clock(q["start"]), parse_clock(q["end"])))
        except ValueError as exc:
            raise DecodeError(f"quiet hours of {q['channel']}: {exc}", kind="bad_value") from None
    if len({channel for channel, _, _ in quiet}) != len(quiet):
        raise DecodeError("quiet hours name a channel twice: give each channel one window", kind="bad_value")
    time_zone = _time_zone(r.get("time_zone") or "UTC")
    cap = r.get("frequency_cap")
    frequency_cap = None
    if cap is not None:
        if cap["max_boosters"] < 1 or not 1 <= cap["window_hours"] <= MAX_CAP_WINDOW_MS // 3_600_000:
            raise DecodeError(
                f"frequency cap {cap['max_boosters']} per {cap['window_hours']} h: at least 1 booster, "
                f"in a window of 1 to {MAX_CAP_WINDOW_MS // 3_600_000} hours",
                kind="bad_value",
            )
        frequency_cap = FrequencyCap(cap["max_boosters"], cap["window_hours"] * 3_600_000)
    quiet_hours = tuple(sorted(quiet))
    return AccountChannels(account_id, frozenset(r["channels"]), r["updated_at"], quiet_hours, time_zone, frequency_cap)


def _time_zone(name: str) -> str:
    try:
        zone(name)
    except BoosterError as exc:
        raise DecodeError(str(exc), kind="bad_value") from None
    return name
