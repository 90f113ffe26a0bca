"""Campaign scenarios with a known answer: the demo and the integration tests feed these.

Each recipient is given one role; the role says which facts are published for it and whether it
should get the booster, so the expected audience is known by construction, not computed by the
code under test.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from booster.processors.boosters import booster_id_of
from booster.processors.uplift import holdout_of

HOUR_MS = 3600 * 1000


def launched_for_deadline(deadline: int, delay_seconds: int = 2 * 3600) -> int:
    """The launch time that gives a booster of this delay this deadline.

    Tests that are not about timing use a deadline already past: the facts are published first, the
    launch last, and the lag gate guarantees every fact published before the launch counts.
    """
    return deadline - delay_seconds * 1000


# role -> (expected exclusion reason or None for eligible)
ROLES: dict[str, str | None] = {
    "eligible": None,
    "clicked": "CLICKED",
    "opened": "OPENED",
    "machine_open": None,  # a machine open is not an open (R6): boosted
    "deleted": "DELETED",
    "blocked": "BLOCKED",
    "unblocked": None,  # blocked, then unblocked later: eligible again
    "unsub_channel": "UNSUBSCRIBED",
    "unsub_all": "UNSUBSCRIBED",
    "unsub_other": None,  # unsubscribed from another channel only
    "waiting": "WAITING",
    "error": "ERROR",
    "clicked_and_deleted": "DELETED",  # R11: the first reason in order counts
    "late_click": None,  # clicked after the deadline: does not count (R5)
    "bot_click": None,  # only a link scanner clicked (flagged `bot` by the sender): boosted
    "scanner_click": None,  # unflagged, 5 s after delivery: a scanner's within the window (none: CLICKED)
    "scanner_then_click": "CLICKED",  # a scanner's click, then the person's an hour later
    # unreachable on the booster's channel: excluded when the booster's channel is not the campaign's
    "unreachable": "UNREACHABLE",
    "reachable_again": None,  # unreachable on the booster's channel, then reachable again before the deadline
}
SCANNER_CLICK_MS = 5_000  # after the delivery report

NOT_CLICKED_ROLES = {"opened": None, "machine_open": None}


@dataclass
class Scenario:
    campaign_id: str
    account_id: str
    name: str
    channel: str
    booster_channel: str | None
    criterion: str | None
    launched_at: int
    delay_seconds: int
    count_machine_opens: bool = False  # the booster's policy: machine opens count as opens
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # contact -> role
    expected_audience: set[str] = field(default_factory=set)
    expected_excluded: Counter[str] = field(default_factory=Counter)
    expected_outcome: dict[str, str] = field(default_factory=dict)  # contact -> INCLUDED or its exclusion (R16)
    expected_machine_opened: int = 0  # of the audience: boosted despite a machine open
    scanner_window_seconds: int | None = None  # the booster's; None: the campaign channel's default
    expected_scanner_clicked: int = 0  # of the audience: boosted despite a link scanner's click
    # the account's quiet hours ([{"channel", "start", "end"}]) and time zone, on account.channels
    quiet_hours: list[dict[str, str]] = field(default_factory=list)
    time_zone: str = "UTC"
    time_zones: dict[str, str] = field(default_factory=dict)  # contact -> its contact.time-zone fact
    frequency_cap: dict[str, int] | None = None  # the account's ({"max_boosters", "window_hours"})
    holdout_percent: int = 0  # the booster's: expected_audience leaves the held-out contacts out
    measurement_hours: int | None = None  # the booster's measurement window; None: the default (72)

    @property
    def deadline(self) -> int:
        return self.launched_at + self.delay_seconds * 1000

    def add(self, topic: str, value: dict[str, Any]) -> None:
        self.records.setdefault(topic, []).append(value)

    def launch_record(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "account_id": self.account_id,
            "name": self.name,
            "channel": self.channel,
            "group_size": len(self.roles),
            "launched_at": self.launched_at,
            "booster": {
                "delay_seconds": self.delay_seconds,
                "channel": self.booster_channel,
                "criterion": self.criterion,
                "content_ref": f"content/{self.campaign_id}/booster",
                "count_machine_opens": self.count_machine_opens,
                "scanner_window_seconds": self.scanner_window_seconds,
                "holdout_percent": self.holdout_percent,
                "measurement_hours": self.measurement_hours,
            },
        }

    def account_channels(self) -> dict[str, Any]:
        """The account.channels record that enables every channel for the scenario's account."""
        return {
            "account_id": self.account_id,
            "channels": ["EMAIL", "SMS", "PUSH"],
            "updated_at": self.launched_at - HOUR_MS,
            "quiet_hours": self.quiet_hours,
            "time_zone": self.time_zone,
            "frequency_cap": self.frequency_cap,
        }

    @property
    def event_count(self) -> int:
        return sum(len(v) for v in self.records.values())


def build(
    campaign_id: str,
    recipients: int,
    *,
    launched_at: int,
    delay_seconds: int = 2 * 3600,
    channel: str = "EMAIL",
    booster_channel: str | None = None,
    criterion: str | None = None,
    account_id: str = "acct-demo",
    name: str | None = None,
    roles: list[str] | None = None,
    contact_prefix: str | None = None,
    count_machine_opens: bool = False,
    scanner_window_seconds: int | None = None,
    time_zones: list[str | None] | None = None,
    holdout_percent: int = 0,
) -> Scenario:
    """A campaign whose recipients cycle through `roles` (all of ROLES by default) and, when given,
    through `time_zones` (None: no contact.time-zone fact)."""
    cycle = roles or list(ROLES)
    sc = Scenario(
        campaign_id=campaign_id,
        account_id=account_id,
        name=name or f"Campaign {campaign_id}",
        channel=channel,
        booster_channel=booster_channel,
        criterion=criterion,
        launched_at=launched_at,
        delay_seconds=delay_seconds,
        count_machine_opens=count_machine_opens,
        scanner_window_seconds=scanner_window_seconds,
        holdout_percent=holdout_percent,
    )
    held_out = holdout_of(booster_id_of(campaign_id), holdout_percent)
    window_ms = 1000 * (
        scanner_window_seconds if scanner_window_seconds is not None else 60 if channel == "EMAIL" else 0
    )
    effective_channel = booster_channel or channel
    effective_criterion = criterion or ("NOT_CLICKED" if channel == "SMS" else "NOT_OPENED")
    other_channel = next(c for c in ("EMAIL", "SMS", "PUSH") if c != effective_channel)
    deadline = sc.deadline
    prefix = contact_prefix or f"{campaign_id}-c"
    for i in range(recipients):
        role = cycle[i % len(cycle)]
        contact = f"{prefix}{i:07d}"
        sc.roles[contact] = role
        msg = f"{campaign_id}-m{i}"
        t = launched_at + (i % 1000)  # sent within a second of the launch
        base = {"campaign_id": campaign_id, "contact_id": contact, "message_id": msg}
        sc.add("message.sent", {**base, "channel": channel, "sent_at": t})
        zone_name = time_zones[i % len(time_zones)] if time_zones else None
        if zone_name is not None:
            sc.time_zones[contact] = zone_name
            fact = {"contact_id": contact, "account_id": account_id, "time_zone": zone_name, "changed_at": t + 500}
            sc.add("contact.time-zone", fact)
        if role != "waiting":
            status = "ERROR" if role == "error" else "DELIVERED"
            sc.add("message.delivered", {**base, "status": status, "reported_at": t + 60_000})
        if role == "opened":
            sc.add("message.opened", {**base, "opened_at": t + HOUR_MS})
        if role == "machine_open":
            sc.add("message.opened", {**base, "opened_at": t + HOUR_MS, "machine_open": True})
        if role in ("clicked", "clicked_and_deleted"):
            sc.add("message.opened", {**base, "opened_at": t + HOUR_MS})
            sc.add("message.clicked", {**base, "clicked_at": t + HOUR_MS + 1000, "url": "https://example.com/x"})
        if role == "bot_click":
            sc.add("message.clicked", {**base, "clicked_at": t + 60_000, "url": "https://example.com/x", "bot": True})
        if role in ("scanner_click", "scanner_then_click"):
            scanned_at = t + 60_000 + SCANNER_CLICK_MS
            sc.add("message.clicked", {**base, "clicked_at": scanned_at, "url": "https://example.com/x"})
        if role == "scanner_then_click":
            sc.add("message.clicked", {**base, "clicked_at": t + HOUR_MS, "url": "https://example.com/x"})
        if role == "late_click":
            sc.add("message.clicked", {**base, "clicked_at": deadline + 1, "url": "https://example.com/late"})
        if role in ("deleted", "clicked_and_deleted"):
            sc.add(
                "contact.deleted",
                {"contact_id": contact, "account_id": account_id, "deleted_at": t + 2 * HOUR_MS - 5000},
            )
        if role in ("blocked", "unblocked"):
            sc.add(
                "contact.blocked",
                {"contact_id": contact, "account_id": account_id, "blocked": True, "changed_at": t + 1000},
            )
        if role == "unblocked":
            sc.add(
                "contact.blocked",
                {"contact_id": contact, "account_id": account_id, "blocked": False, "changed_at": t + 2000},
            )
        if role == "unsub_channel":
            sc.add(
                "contact.unsubscribed",
                {
                    "contact_id": contact,
                    "account_id": account_id,
                    "channel": effective_channel,
                    "unsubscribed_at": t + 5000,
                },
            )
        if role == "unsub_all":
            sc.add(
                "contact.unsubscribed",
                {"contact_id": contact, "account_id": account_id, "channel": None, "unsubscribed_at": t + 5000},
            )
        if role in ("unreachable", "reachable_again"):
            reach = {"contact_id": contact, "account_id": account_id, "channel": effective_channel}
            sc.add("contact.reachability", {**reach, "reachable": False, "changed_at": t + 1000})
        if role == "reachable_again":
            reach = {"contact_id": contact, "account_id": account_id, "channel": effective_channel}
            sc.add("contact.reachability", {**reach, "reachable": True, "changed_at": t + 2000})
        if role == "unsub_other":
            sc.add(
                "contact.unsubscribed",
                {
                    "contact_id": contact,
                    "account_id": account_id,
                    "channel": other_channel,
                    "unsubscribed_at": t + 5000,
                },
            )
        reason = ROLES[role]
        if role == "machine_open" and count_machine_opens:
            reason = "OPENED"  # the booster counts machine opens as opens
        if effective_criterion == "NOT_CLICKED" and role in NOT_CLICKED_ROLES:
            reason = NOT_CLICKED_ROLES[role]
        if role == "unreachable" and effective_channel == channel:
            reason = None  # the original reached the contact on this channel: reachability is not asked
        if role == "scanner_click" and window_ms < SCANNER_CLICK_MS:
            reason = "CLICKED"  # no scanner window that long: the click is the person's
        if reason is None and holdout_percent and held_out(contact):
            reason = "HOLDOUT"
        if reason is None:
            sc.expected_audience.add(contact)
            if role == "machine_open" and effective_criterion == "NOT_OPENED":
                sc.expected_machine_opened += 1
            if role in ("bot_click", "scanner_click"):
                sc.expected_scanner_clicked += 1
        else:
            sc.expected_excluded[reason] += 1
        sc.expected_outcome[contact] = reason or "INCLUDED"
    return sc
