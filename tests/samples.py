"""One valid record of every topic of the contract, for the codec, the broker tests and bad-input tests."""

from __future__ import annotations

from typing import Any

SAMPLES: dict[str, dict[str, Any]] = {
    "campaign.launched": {
        "campaign_id": "cmp-1", "account_id": "acct-1", "name": "Spring sale", "channel": "EMAIL",
        "group_size": 1000, "launched_at": 1767225600000,
        "booster": {
            "delay_seconds": 7200, "channel": "SMS", "criterion": None, "content_ref": "tpl/9",
            "count_machine_opens": True, "scanner_window_seconds": 30, "holdout_percent": 10,
            "measurement_hours": 48,
        },
    },
    "campaign.booster-cancelled": {"campaign_id": "cmp-1", "cancelled_at": 1767229200000},
    "account.channels": {
        "account_id": "acct-1", "channels": ["EMAIL", "SMS"], "updated_at": 1767225600000,
        "quiet_hours": [{"channel": "SMS", "start": "21:00", "end": "08:00"}], "time_zone": "Europe/Paris",
        "frequency_cap": {"max_boosters": 2, "window_hours": 168},
    },
    "message.sent": {"campaign_id": "c1", "contact_id": "k", "message_id": "m", "channel": "SMS", "sent_at": 1767225600000},
    "message.delivered": {"campaign_id": "c1", "contact_id": "k", "message_id": "m", "status": "ERROR", "reported_at": 1767225601000},
    "message.opened": {"campaign_id": "c1", "contact_id": "k", "message_id": "m", "opened_at": 1767225602000, "machine_open": True},
    "message.clicked": {"campaign_id": "c1", "contact_id": "k", "message_id": "m", "clicked_at": 1767225603000, "url": "https://x.test/a", "bot": True},
    "contact.unsubscribed": {"contact_id": "k", "account_id": "acct-1", "channel": None, "unsubscribed_at": 1767225604000},
    "contact.deleted": {"contact_id": "k", "account_id": "acct-1", "deleted_at": 1767225605000},
    "contact.blocked": {"contact_id": "k", "account_id": "acct-1", "blocked": False, "changed_at": 1767225606000},
    "contact.time-zone": {"contact_id": "k", "account_id": "acct-1", "time_zone": "America/New_York", "changed_at": 1767225608000},
    "contact.reachability": {"contact_id": "k", "account_id": "acct-1", "channel": "SMS", "reachable": False, "changed_at": 1767225607000},
    "booster.commands": {
        "command_id": "5d2c", "booster_id": "c1:booster", "booster_name": "Booster for X", "campaign_id": "c1",
        "account_id": "acct-1", "contact_id": "k", "channel": "PUSH", "content_ref": "tpl/1",
        "deadline": 1767232800000, "issued_at": 1767232801000, "send_after": 1767254400000,
    },
    "booster.reports": {
        "booster_id": "c1:booster", "booster_name": "Booster for X", "campaign_id": "c1", "account_id": "acct-1",
        "status": "CANCELLED", "reason": "cancelled before its window expired", "deadline": 1767232800000,
        "audience": 0, "excluded": {"OPENED": 3, "CLICKED": 1}, "billable": 0, "reason_code": "CANCEL_REQUESTED",
        "boosted_despite_machine_open": 0, "boosted_despite_scanner_click": 0, "deferred": 0,
    },
    "booster.notices": {
        "notice_id": "0b7c2c9e-7d1e-5f3a-9c43-2f7a4f6f0d11", "account_id": "acct-1", "campaign_id": "c1",
        "booster_id": "c1:booster", "kind": "BOOSTER_REJECTED", "reason_code": "SETTING_OUT_OF_RANGE",
        "text": "Booster for X was cancelled: cancelled before its window expired", "at": 1767232800000,
    },
    "booster.audience": {
        "contact_id": "ct-1", "outcome": "UNREACHABLE", "command_id": None,
        "booster_id": "c1:booster", "campaign_id": "c1", "account_id": "acct-1", "deadline": 1767232800000,
        "decided_at": 1767232805000, "frequency_capped": True,
    },
    "booster.dead-letter": {
        "source_topic": "message.sent", "partition": 3, "offset": 42, "key": b"k", "value": b"\x01\x02",
        "error": "wrong magic byte", "kind": "not_wire_format", "failed_at": 1767232800000,
    },
    "booster.control": {
        "kind": "SCHEDULE", "campaign_id": "c1", "at": 1767225600000,
        "schedule": {
            "booster_id": "c1:booster", "booster_name": "Booster for X", "account_id": "acct-1", "channel": "SMS",
            "criterion": "NOT_CLICKED", "content_ref": "tpl/1", "deadline": 1767232800000,
            "count_machine_opens": False, "scanner_window_seconds": 60, "campaign_channel": "EMAIL",
            "quiet_hours": {"start_minute": 1260, "end_minute": 480, "time_zone": "Europe/Paris"},
            "frequency_cap": {"max_boosters": 1, "window_ms": 86400000}, "holdout_percent": 20,
            "measurement_ms": 259200000,
        },
        "cancelled_at": None, "reason": None, "from_partition": None, "all_opened": None, "enabled": None,
        "account_id": None,
    },
    "booster.summaries": {
        "campaign_id": "c1", "partition": 2, "partitions": 4,
        "schedule": {
            "booster_id": "c1:booster", "booster_name": "Booster for X", "account_id": "acct-1", "channel": "SMS",
            "criterion": "NOT_CLICKED", "content_ref": "tpl/1", "deadline": 1767232800000,
            "count_machine_opens": True, "scanner_window_seconds": 60, "campaign_channel": None,
            "quiet_hours": None, "frequency_cap": None, "holdout_percent": 5, "measurement_ms": 3600000,
        },
        "cancelled_at": None, "audience": 3, "excluded": {"DELETED": 1}, "cancel_reason": None, "machine_opened": 2,
        "marks": {"MACHINE_OPEN": 2, "SCANNER_CLICK": 1},
    },
    "booster.fanout-progress": {
        "campaign_id": "c1", "partition": 2, "last_key": "contact-9", "done": False, "audience": 3, "excluded": {},
        "machine_opened": 1, "marks": {"MACHINE_OPEN": 1}, "outcomes_from": 1200,
    },
    "booster.measurements": {
        "campaign_id": "c1", "partition": 2, "partitions": 4, "booster_id": "c1:booster",
        "booster_name": "Booster for X", "account_id": "acct-1", "deadline": 1767232800000,
        "measurement_ms": 259200000, "holdout_percent": 10, "boosted": 900, "boosted_engaged": 120,
        "held_out": 100, "held_out_engaged": 9, "measured_at": 1767492001000,
    },
    "booster.results": {
        "booster_id": "c1:booster", "booster_name": "Booster for X", "campaign_id": "c1", "account_id": "acct-1",
        "deadline": 1767232800000, "measured_until": 1767492000000, "holdout_percent": 10, "boosted": 3600,
        "boosted_engaged": 480, "held_out": 400, "held_out_engaged": 36, "boosted_rate": 0.13333333333333333,
        "held_out_rate": 0.09, "difference": 0.043333333333333335, "difference_low": 0.0123,
        "difference_high": 0.0743, "extra_engagements": 156.0, "extra_engagements_low": 44.3,
        "extra_engagements_high": 267.5, "detectable_difference": 0.0416, "measured_at": 1767492002000,
    },
}  # fmt: skip
