"""Per-recipient and per-contact state, folded from events, and the eligibility decision.

`evolve_*` keep the earliest timestamp of each fact, or every distinct fact where the latest one
at a moment decides (delivery reports, blocks), and ignore duplicates, so any order and any
repetition of the same events gives the same state (G5). `exclusion` reads the state as of a
deadline: only facts whose event time is at or before the deadline count (R5, G1).

Delivery (R6): each message's status is its latest report at or before the deadline (at a tie,
ERROR). A recipient sent several messages of the campaign (multipart SMS, resends) is delivered if
any message's status is DELIVERED; otherwise Waiting while any message it was sent has no report,
or when it has no report at all; otherwise (every message ended in ERROR) Error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import assert_never

from booster.processors.events import (
    Channel,
    ContactBlocked,
    ContactDeleted,
    ContactEvent,
    ContactReachability,
    ContactTimeZone,
    ContactUnsubscribed,
    Criterion,
    MessageClicked,
    MessageDelivered,
    MessageEvent,
    MessageOpened,
    MessageSent,
)
from booster.processors.text import format_timestamp


class Exclusion(StrEnum):
    """Why a recipient gets no booster, in the order R11 counts them: the first that applies."""

    DELETED = "DELETED"
    BLOCKED = "BLOCKED"
    UNSUBSCRIBED = "UNSUBSCRIBED"
    UNREACHABLE = "UNREACHABLE"  # a booster on another channel than its campaign's cannot reach the contact there
    ERROR = "ERROR"
    WAITING = "WAITING"
    CLICKED = "CLICKED"
    OPENED = "OPENED"
    # would be boosted, but the contact got its account's most boosters in a window already
    FREQUENCY_CAP = "FREQUENCY_CAP"
    # eligible, and held out as the control group of the booster's uplift measurement
    HOLDOUT = "HOLDOUT"


EXCLUSION_ORDER: tuple[Exclusion, ...] = tuple(Exclusion)
ALL_CHANNELS = "ALL"


def _earliest(a: int | None, b: int) -> int:
    return b if a is None or b < a else a


class Delivery(StrEnum):
    DELIVERED = "DELIVERED"
    ERROR = "ERROR"
    WAITING = "WAITING"


Report = tuple[str, int, bool]  # (message_id, reported_at, error)


@dataclass(frozen=True, slots=True)
class RecipientState:
    """One contact as a recipient of one campaign."""

    sent_at: int | None = None  # the earliest `sent` fact
    opened_at: int | None = None  # the earliest open by the person (rows of older workers: any open)
    clicked_at: int | None = None
    messages: tuple[str, ...] = ()  # ids of the messages with a `sent` fact, sorted
    reports: tuple[Report, ...] = ()  # every distinct delivery report, sorted
    # the earliest machine open (a privacy proxy such as Apple Mail Privacy Protection, or a prefetch):
    # kept apart, because it says nothing of the person's engagement and is not an open (R6)
    machine_opened_at: int | None = None
    # the earliest click the sender flagged as a link scanner's (`bot`): kept apart, never excludes
    bot_clicked_at: int | None = None
    # unflagged clicks after `clicked_at`: the earliest of each later second, at most
    # MAX_KEPT_CLICKS - 1, so that a person's click after a scanner's within the scanner window counts
    later_clicks: tuple[int, ...] = ()
    # the latest unflagged click, kept only once clicks came in more seconds than are kept
    last_click: int | None = None

    @property
    def clicks(self) -> tuple[int, ...]:
        """The unflagged clicks kept, earliest first: the earliest of each of the first MAX_KEPT_CLICKS
        seconds, then the latest click when there were more."""
        if self.clicked_at is None:
            return ()
        tail = () if self.last_click is None else (self.last_click,)
        return (self.clicked_at, *self.later_clicks, *tail)


# A scanner clicks every link of a message within a few seconds: 16 distinct seconds of clicks keep a
# person's click after several scanners' and cost 8 bytes each, only for recipients who clicked.
MAX_KEPT_CLICKS = 16


def _with_click(s: RecipientState, at: int) -> RecipientState:
    """The earliest click of each second, the first MAX_KEPT_CLICKS seconds, and the latest click if
    there were more seconds: a function of the set of clicks seen, whatever their order and repeats
    (G5), since the earliest seconds of a set and its latest click are those of their own parts."""
    by_second: dict[int, int] = {}
    for t in (s.clicked_at, *s.later_clicks, at):
        if t is None:
            continue
        second = t // 1000
        if second not in by_second or t < by_second[second]:
            by_second[second] = t
    earliest = sorted(by_second.values())
    last = s.last_click
    if len(earliest) > MAX_KEPT_CLICKS or last is not None:
        last = max(t for t in (last, at, earliest[-1]) if t is not None)
        earliest = earliest[:MAX_KEPT_CLICKS]  # `last` is in a later second than all of these
    return replace(s, clicked_at=earliest[0], later_clicks=tuple(earliest[1:]), last_click=last)


def delivery(state: RecipientState, deadline: int) -> tuple[Delivery, int | None]:
    """The recipient's delivery status at the deadline (R6), and when its deciding report came."""
    latest: dict[str, tuple[int, bool]] = {}
    for message_id, at, error in state.reports:  # sorted: a message's later reports (ERROR at a tie) win
        if at <= deadline:
            latest[message_id] = (at, error)
    delivered = [at for at, error in latest.values() if not error]
    if delivered:
        return Delivery.DELIVERED, min(delivered)
    if not latest or any(m not in latest for m in state.messages):
        return Delivery.WAITING, None
    return Delivery.ERROR, max(at for at, _ in latest.values())


@dataclass(frozen=True, slots=True)
class ContactState:
    """Facts about a contact that hold across campaigns."""

    deleted_at: int | None = None
    # (channel or "ALL", earliest unsubscribed_at), sorted by channel
    unsubscribed: tuple[tuple[str, int], ...] = ()
    # every distinct (changed_at, blocked) seen, sorted: the latest one at a moment decides
    blocks: tuple[tuple[int, bool], ...] = ()
    # every distinct (channel, changed_at, reachable) seen, sorted: per channel, the latest at a moment decides
    reachability: tuple[tuple[str, int, bool], ...] = ()
    # every distinct (changed_at, IANA time zone) seen, sorted: the latest one at a moment is its local time
    time_zones: tuple[tuple[int, str], ...] = ()


def evolve_recipient(state: RecipientState | None, event: MessageEvent) -> RecipientState:
    s = state or RecipientState()
    match event:
        # the two facts every recipient has: the state built directly, not with `replace` (a third of
        # the cost of folding one fact)
        case MessageSent():
            messages = s.messages if event.message_id in s.messages else tuple(sorted((*s.messages, event.message_id)))
            sent_at = _earliest(s.sent_at, event.sent_at)
            if sent_at == s.sent_at and messages is s.messages:
                return s
            return RecipientState(
                sent_at=sent_at, opened_at=s.opened_at, clicked_at=s.clicked_at, messages=messages,
                reports=s.reports, machine_opened_at=s.machine_opened_at, bot_clicked_at=s.bot_clicked_at,
                later_clicks=s.later_clicks, last_click=s.last_click,
            )  # fmt: skip
        case MessageDelivered():
            report = (event.message_id, event.reported_at, event.error)
            if report in s.reports:
                return s
            return RecipientState(
                sent_at=s.sent_at, opened_at=s.opened_at, clicked_at=s.clicked_at, messages=s.messages,
                reports=tuple(sorted((*s.reports, report))), machine_opened_at=s.machine_opened_at,
                bot_clicked_at=s.bot_clicked_at, later_clicks=s.later_clicks, last_click=s.last_click,
            )  # fmt: skip
        case MessageOpened() if event.machine:
            return replace(s, machine_opened_at=_earliest(s.machine_opened_at, event.opened_at))
        case MessageOpened():
            return replace(s, opened_at=_earliest(s.opened_at, event.opened_at))
        case MessageClicked() if event.bot:
            return replace(s, bot_clicked_at=_earliest(s.bot_clicked_at, event.clicked_at))
        case MessageClicked():
            return _with_click(s, event.clicked_at)
        case _:
            assert_never(event)  # a new message event is a type error until it is folded here


def evolve_contact(state: ContactState | None, event: ContactEvent) -> ContactState:
    s = state or ContactState()
    match event:
        case ContactDeleted():
            return replace(s, deleted_at=_earliest(s.deleted_at, event.deleted_at))
        case ContactUnsubscribed():
            channel = event.channel or ALL_CHANNELS
            current = dict(s.unsubscribed)
            current[channel] = _earliest(current.get(channel), event.unsubscribed_at)
            return replace(s, unsubscribed=tuple(sorted(current.items())))
        case ContactBlocked():
            entry = (event.changed_at, event.blocked)
            if entry in s.blocks:
                return s
            return replace(s, blocks=tuple(sorted((*s.blocks, entry))))
        case ContactReachability():
            fact = (event.channel, event.changed_at, event.reachable)
            if fact in s.reachability:
                return s
            return replace(s, reachability=tuple(sorted((*s.reachability, fact))))
        case ContactTimeZone():
            zone_fact = (event.changed_at, event.time_zone)
            if zone_fact in s.time_zones:
                return s
            return replace(s, time_zones=tuple(sorted((*s.time_zones, zone_fact))))
        case _:
            assert_never(event)  # a new contact event is a type error until it is folded here


@dataclass(frozen=True, slots=True)
class Folded:
    """Every recipient (by campaign and contact) and contact state that a set of events folds into."""

    recipients: dict[tuple[str, str], RecipientState] = field(default_factory=dict)
    contacts: dict[str, ContactState] = field(default_factory=dict)


def fold(events: Iterable[MessageEvent | ContactEvent], into: Folded | None = None) -> Folded:
    """The state a worker's tables hold after these events, in any order and with any repeats (G5)."""
    out = into or Folded()
    for event in events:
        match event:
            case MessageSent() | MessageDelivered() | MessageOpened() | MessageClicked():
                key = (event.campaign_id, event.contact_id)
                out.recipients[key] = evolve_recipient(out.recipients.get(key), event)
            case (
                ContactUnsubscribed() | ContactDeleted() | ContactBlocked() | ContactReachability() | ContactTimeZone()
            ):
                out.contacts[event.contact_id] = evolve_contact(out.contacts.get(event.contact_id), event)
            case _:
                assert_never(event)
    return out


def _at_or_before(ts: int | None, deadline: int) -> bool:
    return ts is not None and ts <= deadline


def is_blocked(contact: ContactState, deadline: int) -> bool:
    """The latest block fact at or before the deadline decides; at a tie, blocked wins."""
    latest: bool | None = None
    for changed_at, blocked in contact.blocks:  # sorted: later entries win
        if changed_at > deadline:
            break
        latest = blocked
    return bool(latest)


def _reachability_changes(contact: ContactState, channel: Channel, deadline: int) -> list[tuple[int, bool]]:
    """(changed_at, reachable) on the channel at or before the deadline, one per moment, in time order;
    facts of the same moment that disagree count as unreachable (as a block does at a tie)."""
    changes: dict[int, bool] = {}
    for ch, changed_at, reachable in contact.reachability:
        if ch == channel and changed_at <= deadline:
            changes[changed_at] = changes.get(changed_at, True) and reachable
    return sorted(changes.items())


def is_unreachable(contact: ContactState, channel: Channel, deadline: int) -> bool:
    """The latest reachability fact on the channel at or before the deadline says unreachable; with
    none, the contact counts as reachable."""
    changes = _reachability_changes(contact, channel, deadline)
    return bool(changes) and not changes[-1][1]


def unreachable_since(contact: ContactState, channel: Channel, deadline: int) -> int | None:
    """Since when the contact has been unreachable on the channel as of the deadline, or None."""
    since = None
    for changed_at, reachable in _reachability_changes(contact, channel, deadline):
        since = None if reachable else (changed_at if since is None else since)
    return since


def time_zone_at(contact: ContactState | None, at: int) -> str | None:
    """The contact's time zone at `at`: its latest fact then (at a tie, the greatest name, so that any
    order of arrival agrees); None without one."""
    latest = None
    for changed_at, name in contact.time_zones if contact is not None else ():  # sorted
        if changed_at > at:
            break
        latest = name
    return latest


def is_unsubscribed(contact: ContactState, channel: Channel, deadline: int) -> bool:
    return any(ch in (channel, ALL_CHANNELS) and at <= deadline for ch, at in contact.unsubscribed)


def exclusion(
    recipient: RecipientState,
    contact: ContactState | None,
    *,
    channel: Channel,
    criterion: Criterion,
    deadline: int,
    count_machine_opens: bool,
    scanner_window_ms: int = 0,
    campaign_channel: Channel | None = None,
) -> Exclusion | None:
    """The first reason of R11 that excludes this recipient at the deadline, or None: eligible.

    The caller only asks for recipients of the campaign (those with a `sent` fact, R4).
    `channel` is the booster's channel: an unsubscribe from that channel or from all excludes.
    `count_machine_opens` is the booster's policy: whether a machine open counts as an open (R6).
    `scanner_window_ms`: an unflagged click this long after the delivery or sooner is a scanner's.
    `campaign_channel`: the original campaign's; a booster on another channel excludes a contact
    unreachable on the booster's channel (None: not checked, as in schedules of older workers).
    """
    if contact is not None:
        if _at_or_before(contact.deleted_at, deadline):
            return Exclusion.DELETED
        if contact.blocks and is_blocked(contact, deadline):
            return Exclusion.BLOCKED
        if contact.unsubscribed and is_unsubscribed(contact, channel, deadline):
            return Exclusion.UNSUBSCRIBED
        if (
            contact.reachability
            and campaign_channel not in (None, channel)
            and is_unreachable(contact, channel, deadline)
        ):
            return Exclusion.UNREACHABLE
    status, delivered_at = delivery(recipient, deadline)
    if status is Delivery.ERROR:
        return Exclusion.ERROR
    if status is Delivery.WAITING:
        return Exclusion.WAITING
    if _at_or_before(first_click(recipient, delivered_at, scanner_window_ms), deadline):
        return Exclusion.CLICKED
    if criterion == "NOT_OPENED" and _at_or_before(first_open(recipient, count_machine_opens), deadline):
        return Exclusion.OPENED
    return None


def first_click(recipient: RecipientState, delivered_at: int | None, scanner_window_ms: int) -> int | None:
    """The person's first click: the first unflagged one later than `scanner_window_ms` after the
    delivery (earlier ones, before the delivery report too, are a link scanner's)."""
    if scanner_window_ms <= 0 or delivered_at is None:
        return recipient.clicked_at
    after = delivered_at + scanner_window_ms
    return next((at for at in recipient.clicks if at > after), None)


def scanner_clicked(recipient: RecipientState, delivered_at: int | None, scanner_window_ms: int, at: int) -> int | None:
    """The first click by `at` that a link scanner made (flagged `bot`, or within the window), if any."""
    flagged = recipient.bot_clicked_at if _at_or_before(recipient.bot_clicked_at, at) else None
    windowed = None
    if scanner_window_ms > 0 and delivered_at is not None:
        windowed = next((t for t in recipient.clicks if t <= delivered_at + scanner_window_ms and t <= at), None)
    return min((t for t in (flagged, windowed) if t is not None), default=None)


def first_open(recipient: RecipientState, count_machine_opens: bool) -> int | None:
    """When the recipient first opened the original message, as the booster's policy counts opens."""
    human, machine = recipient.opened_at, recipient.machine_opened_at
    if count_machine_opens and machine is not None:
        return _earliest(human, machine)
    return human


def is_recipient(state: RecipientState) -> bool:
    """R4: only contacts with a `sent` fact for the campaign are its recipients."""
    return state.sent_at is not None


def explain(
    recipient: RecipientState | None,
    contact: ContactState | None,
    *,
    campaign_id: str,
    channel: Channel,
    criterion: Criterion,
    at: int,
    count_machine_opens: bool,
    scanner_window_ms: int = 0,
    campaign_channel: Channel | None = None,
) -> tuple[Exclusion | None, bool, str]:
    """(reason, in the audience, why in words) for one contact, as of `at`."""
    if recipient is None or not is_recipient(recipient):
        return None, False, f"not a recipient of campaign {campaign_id}: no `sent` fact for it (R4)"
    reason = exclusion(
        recipient, contact, channel=channel, criterion=criterion, deadline=at,
        count_machine_opens=count_machine_opens, scanner_window_ms=scanner_window_ms,
        campaign_channel=campaign_channel,
    )  # fmt: skip
    c = contact or ContactState()
    r = recipient
    _, reported_at = delivery(r, at)
    if reason is None:
        why = f"eligible: delivered at {format_timestamp(reported_at or 0)}, no exclusion applies"
        if criterion == "NOT_OPENED" and _at_or_before(r.machine_opened_at, at):
            why += f" (its open at {format_timestamp(r.machine_opened_at or 0)} was a machine open, not the person's)"
        if (scanned := scanner_clicked(r, reported_at, scanner_window_ms, at)) is not None:
            how = "flagged bot" if scanned == r.bot_clicked_at else f"within {scanner_window_ms // 1000} s of delivery"
            why += f" (its click at {format_timestamp(scanned)} was a link scanner's, {how}, not the person's)"
        return None, True, why
    if reason is Exclusion.DELETED:
        why = f"deleted at {format_timestamp(c.deleted_at or 0)}"
    elif reason is Exclusion.BLOCKED:
        since = max((t for t, blocked in c.blocks if blocked and t <= at), default=0)
        why = f"blocked since {format_timestamp(since)}"
    elif reason is Exclusion.UNSUBSCRIBED:
        hits = [(ch, t) for ch, t in c.unsubscribed if ch in (channel, ALL_CHANNELS) and t <= at]
        ch, t = min(hits, key=lambda h: h[1])
        where = "every channel" if ch == ALL_CHANNELS else ch
        why = f"unsubscribed from {where} at {format_timestamp(t)}"
    elif reason is Exclusion.UNREACHABLE:
        unreachable_at = format_timestamp(unreachable_since(c, channel, at) or 0)
        why = f"cannot be reached on {channel} since {unreachable_at} (the campaign went out on {campaign_channel})"
    elif reason is Exclusion.ERROR:
        why = f"the original message ended in Error at {format_timestamp(reported_at or 0)}"
    elif reason is Exclusion.WAITING:
        why = "the original message has no final delivery report (Waiting)"
    elif reason is Exclusion.CLICKED:
        clicked = first_click(r, reported_at, scanner_window_ms) or 0
        later = " (after a link scanner's)" if clicked != r.clicked_at else ""
        why = f"clicked the original message at {format_timestamp(clicked)}{later}"
    else:
        opened = first_open(r, count_machine_opens) or 0
        machine = " (a machine open, which this booster counts)" if opened != r.opened_at else ""
        why = f"opened the original message at {format_timestamp(opened)}{machine} (criterion {criterion})"
    return reason, False, f"excluded, {reason.value}: {why}"
