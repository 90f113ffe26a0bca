"""Every rule end to end: a real worker process, scenarios fed through the contract, outputs checked
exactly.

One worker serves every scenario of this module (they use different campaigns and accounts), so the
broker and the worker start once. Every booster but one is already due when it is launched; `late` has
its deadline a few seconds ahead, for R5 and the timing checks.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.ops import admin
from booster.ops.clients import publish_lines, read_topic
from booster.processors.boosters import booster_id_of, command_id_of
from booster.processors.quiet import format_clock
from booster.schemas.catalog import CONTACT_INPUT_TOPICS, audience_key
from booster.schemas.codec import codec
from booster.streams.records import contact_partition
from booster.streams.store import recipient_prefix
from booster.testing.demo import publish_scenario
from booster.testing.scenario import HOUR_MS, Scenario, build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.helpers import changelog_latest, decisions, group_lag, read_all, reports_by_campaign, wait_for

LATE_LEAD_MS = 12_000  # the one booster about timing: its deadline falls this long after it is published
FINAL = {"SENT", "CANCELLED", "REJECTED"}


def lines(records: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(r) for r in records]


@dataclass
class Run:
    settings: Settings
    scenarios: dict[str, Scenario]
    rejected: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> launch record
    extra: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, list[tuple[dict[str, Any], int]]] = field(default_factory=dict)
    commands: list[dict[str, Any]] = field(default_factory=list)
    command_keys: list[bytes | None] = field(default_factory=list)
    worker_log: str = ""

    def cid(self, name: str) -> str:
        return f"{self.extra['run']}-{name}"

    def final(self, name: str) -> dict[str, Any]:
        reports = self.reports.get(self.cid(name), [])
        assert reports, f"no report for {name}"
        return reports[-1][0]

    def commanded(self, name: str) -> list[str]:
        booster_id = booster_id_of(self.cid(name))
        return [c["contact_id"] for c in self.commands if c["booster_id"] == booster_id]


# quiet hours of 12 hours centred on the test's start in London (UTC in winter): contacts in London,
# Kolkata and New York are inside them when the booster fires, those in Los Angeles, Auckland and
# Sydney outside, each by 30 minutes or more
QUIET_INSIDE = {"Europe/London", "Asia/Kolkata", "America/New_York"}
QUIET_ZONES: list[str | None] = [
    None,
    "Asia/Kolkata",
    "America/New_York",
    "America/Los_Angeles",
    "Pacific/Auckland",
    "Australia/Sydney",
]


def quiet_hours_scenario(tag: str, launched_at: int, start: int) -> Scenario:
    now = datetime.fromtimestamp(start / 1000, ZoneInfo("Europe/London"))
    minute = now.hour * 60 + now.minute
    window = [(minute - 6 * 60) % 1440, (minute + 6 * 60) % 1440]
    sc = build(
        f"{tag}-quiet-hours", 48, launched_at=launched_at, account_id=f"acct-{tag}-quiet", channel="SMS",
        roles=["eligible"], time_zones=QUIET_ZONES,
    )  # fmt: skip
    sc.quiet_hours = [{"channel": "SMS", "start": format_clock(window[0]), "end": format_clock(window[1])}]
    sc.time_zone = "Europe/London"
    return sc


# boosters whose recipient rows must be gone once they fired
ROWS_GONE = ("email", "sms", "all-opened", "cancelled")


def capped_scenario(tag: str, short: str, launched_at: int, roles: list[str]) -> Scenario:
    sc = build(
        f"{tag}-capped-{short}", 40, launched_at=launched_at, account_id=f"acct-{tag}-capped", roles=roles,
        contact_prefix=f"{tag}-capped-",
    )  # fmt: skip
    sc.frequency_cap = {"max_boosters": 1, "window_hours": 7 * 24}
    return sc


@pytest.fixture(scope="module")
def run(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    base: Path = tmp_path_factory.mktemp("engine")
    worker = WorkerProcess(settings, base / "w1").start()
    tag = uuid.uuid4().hex[:6]
    start = int(time.time() * 1000)
    # every booster but `late` is already due: its facts are published first and its launch last, and
    # the lag gate makes every fact published before the launch count
    due = launched_for_deadline(start - 60_000)

    def sc(short: str, n: int, **kw: Any) -> Scenario:
        return build(f"{tag}-{short}", n, launched_at=due, account_id=f"acct-{tag}", **kw)

    scenarios = {
        "email": sc("email", 1300, name="Spring sale"),
        "sms": sc("sms", 140, channel="SMS"),
        "push": sc("push", 140, channel="PUSH"),
        "email-sms": sc("email-sms", 140, channel="EMAIL", booster_channel="SMS"),
        "all-opened": sc("all-opened", 60, roles=["opened"]),
        "machine-opens": sc("machine-opens", 60, roles=["opened", "machine_open"]),
        "bot-clicks": sc("bot-clicks", 40, roles=["clicked", "bot_click"]),
        "scanner-clicks": sc("scanner-clicks", 60, roles=["scanner_click", "scanner_then_click", "bot_click"]),
        "reachability": sc(
            "reachability", 60, booster_channel="SMS", roles=["unreachable", "reachable_again", "eligible"]
        ),
        "quiet-hours": quiet_hours_scenario(tag, due, start),
        # one account with a cap of one booster a week; two boosters for the same 40 contacts
        "capped-a": capped_scenario(tag, "a", due, ["eligible", "opened"]),
        "capped-b": capped_scenario(tag, "b", due, ["eligible"]),
        "scanner-window-off": sc(
            "scanner-window-off", 40, roles=["scanner_click", "eligible"], scanner_window_seconds=0
        ),
        "machine-opens-counted": sc(
            "machine-opens-counted", 60, roles=["opened", "machine_open"], count_machine_opens=True
        ),
        # 30 % of the eligible held out; the others' exclusions first
        "holdout": sc("holdout", 240, roles=["eligible", "eligible", "opened"], holdout_percent=30),
        "empty": sc("empty", 60, roles=["opened", "deleted"]),
        "cancelled": sc("cancelled", 60, roles=["eligible"]),
        "shared-a": sc("shared-a", 80, roles=["clicked", "eligible"], contact_prefix=f"{tag}-shared-"),
        "shared-b": sc("shared-b", 50, roles=["eligible"], contact_prefix=f"{tag}-shared-"),
        "early-events": sc("early-events", 40, roles=["eligible", "opened"]),
        "no-booster": sc("no-booster", 30, roles=["eligible"]),
        "exact-7d": build(f"{tag}-exact-7d", 5, launched_at=start, delay_seconds=7 * 86400, account_id=f"acct-{tag}"),
    }
    r = Run(settings, scenarios, extra={"run": tag})

    async def publish_all() -> None:
        # R9: cancelled before its deadline, published before its launch
        cancel = {"campaign_id": f"{tag}-cancelled", "cancelled_at": scenarios["cancelled"].deadline - 1000}
        await publish_lines(settings, "campaign.booster-cancelled", lines([cancel]))
        for name, scenario in scenarios.items():
            if name == "no-booster":  # R1: launched without Booster settings
                await publish_scenario(settings, scenario, launch=False)
                await publish_lines(
                    settings, "campaign.launched", lines([{**scenario.launch_record(), "booster": None}])
                )
            elif name != "early-events":
                await publish_scenario(settings, scenario)
        # R12: the events of this campaign are processed before its launch is even published
        await publish_scenario(settings, scenarios["early-events"], launch=False)

    asyncio.run(publish_all())
    wait_for("the early events to be processed", lambda: group_lag(settings, CONTACT_INPUT_TOPICS) == 0, 60, 0.2)
    asyncio.run(publish_lines(settings, "campaign.launched", lines([scenarios["early-events"].launch_record()])))

    # launches that are refused or cancelled at once
    def launch(
        name: str,
        *,
        delay: int = 7200,
        group_size: int = 10,
        account: str | None = None,
        booster_channel: str | None = None,
    ) -> dict[str, Any]:
        return {
            "campaign_id": f"{tag}-{name}", "account_id": account or f"acct-{tag}", "name": name, "channel": "EMAIL",
            "group_size": group_size, "launched_at": due,
            "booster": {"delay_seconds": delay, "channel": booster_channel, "criterion": None, "content_ref": "x"},
        }  # fmt: skip

    refused = {
        "too-short": launch("too-short", delay=2 * 3600 - 1),
        "too-long": launch("too-long", delay=7 * 86400 + 1),
        "no-sms": launch("no-sms", account=f"acct-{tag}-email-only", booster_channel="SMS"),
        "empty-group": launch("empty-group", group_size=0),
    }
    r.rejected = refused
    email_only = {"account_id": f"acct-{tag}-email-only", "channels": ["EMAIL"], "updated_at": start}
    asyncio.run(publish_lines(settings, "account.channels", lines([email_only])))
    asyncio.run(publish_lines(settings, "campaign.launched", lines(list(refused.values()))))

    # R5 and timing: a booster whose deadline is ahead, and a click and a deletion published shortly before it
    late = build(
        f"{tag}-late", 40, roles=["eligible"], account_id=f"acct-{tag}",
        launched_at=int(time.time() * 1000) - 2 * HOUR_MS + LATE_LEAD_MS,
    )  # fmt: skip
    scenarios["late"] = late
    asyncio.run(publish_scenario(settings, late))
    deadline = late.deadline
    wait_for("3 s before the deadline", lambda: time.time() * 1000 >= deadline - 3000, LATE_LEAD_MS / 1000 + 30, 0.1)
    assert time.time() * 1000 < deadline - 1000, "publishing the late booster took longer than its lead"
    contacts = sorted(late.roles)
    clicker, deleted = contacts[0], contacts[1]
    just_before = deadline - 1000
    click = {"campaign_id": late.campaign_id, "contact_id": clicker, "message_id": "m", "clicked_at": just_before,
             "url": "u"}  # fmt: skip
    asyncio.run(publish_lines(settings, "message.clicked", lines([click])))
    deletion = {"contact_id": deleted, "account_id": late.account_id, "deleted_at": just_before}
    asyncio.run(publish_lines(settings, "contact.deleted", lines([deletion])))
    r.extra["late_excluded"] = {clicker: "CLICKED", deleted: "DELETED"}

    firing = [n for n in scenarios if n not in ("exact-7d", "no-booster")]

    def all_final() -> bool:
        reports = reports_by_campaign(settings)
        done = all(any(rep["status"] in FINAL for rep, _ in reports.get(r.cid(n), [])) for n in [*firing, *refused])
        if not worker.alive():
            raise AssertionError("the worker died:\n" + worker.log_text()[-4000:])
        return done

    wait_for("every booster's final report", all_final, 180, 0.5)
    r.reports = reports_by_campaign(settings)
    for key, value, _ts in read_all(settings, "booster.commands"):
        r.command_keys.append(key)
        r.commands.append(value)
    r.extra["outcomes"] = _outcomes(settings)
    # a fired booster's rows go once the worker has no fan-out under way: the last ones a moment later
    fired = [recipient_prefix(r.cid(n)) for n in ROWS_GONE]
    changelog = changelog_latest(settings, "recipients")
    give_up_at = time.monotonic() + 30
    while time.monotonic() < give_up_at and any(
        v is not None for k, v in changelog.items() if k.startswith(tuple(fired))
    ):
        time.sleep(0.5)
        changelog = changelog_latest(settings, "recipients")
    r.extra["changelog"] = changelog
    r.worker_log = worker.log_text()
    worker.stop()
    yield r


def _outcomes(settings: Settings) -> list[tuple[bytes | None, int, dict[str, Any]]]:
    """Every record of booster.audience: (key, partition, value)."""

    async def go() -> list[tuple[bytes | None, int, dict[str, Any]]]:
        return [
            (msg.key, msg.partition, codec().decode("booster.audience", msg.value))
            async for msg in read_topic(settings, "booster.audience", until_end=True)
        ]

    return asyncio.run(go())


# -- R4, R6, R8, R11: the email campaign with every exclusion ---------------------------------------


def test_email_commands_go_to_exactly_the_eligible_recipients(run: Run) -> None:
    sc = run.scenarios["email"]
    got = run.commanded("email")
    assert len(got) == len(set(got)), "a recipient got two commands"
    assert set(got) == sc.expected_audience
    assert len(sc.roles) >= 1000 and run.settings.partitions >= 4


def test_email_report_counts_every_reason(run: Run) -> None:
    sc = run.scenarios["email"]
    report = run.final("email")
    assert report["status"] == "SENT"
    assert report["booster_name"] == "Booster for Spring sale"
    assert report["audience"] == len(sc.expected_audience) == report["billable"]
    assert report["excluded"] == {reason: sc.expected_excluded.get(reason, 0) for reason in report["excluded"]}
    reasons = ["DELETED", "BLOCKED", "UNSUBSCRIBED", "UNREACHABLE", "ERROR", "WAITING", "CLICKED", "OPENED"]
    assert list(report["excluded"]) == [*reasons, "FREQUENCY_CAP", "HOLDOUT"]  # R11's order, the cap, the holdout
    # an EMAIL booster of an EMAIL campaign does not ask reachability: the original reached them; its
    # account has no frequency cap
    assert all(report["excluded"][r] > 0 for r in reasons if r != "UNREACHABLE")
    assert report["excluded"]["UNREACHABLE"] == report["excluded"]["FREQUENCY_CAP"] == 0
    assert report["excluded"]["HOLDOUT"] == 0  # no holdout asked
    assert report["audience"] + sum(report["excluded"].values()) == len(sc.roles)  # R11


def test_email_command_fields(run: Run) -> None:
    sc = run.scenarios["email"]
    booster_id = booster_id_of(sc.campaign_id)
    commands = [c for c in run.commands if c["booster_id"] == booster_id]
    assert len(commands) == len(sc.expected_audience) > 0
    for c in commands:
        assert c["command_id"] == command_id_of(booster_id, c["contact_id"])
        assert c["campaign_id"] == sc.campaign_id and c["account_id"] == sc.account_id
        assert c["booster_name"] == "Booster for Spring sale"
        assert c["channel"] == "EMAIL"
        assert c["content_ref"] == f"content/{sc.campaign_id}/booster"
        assert c["deadline"] == sc.deadline
    keys = [k for k, c in zip(run.command_keys, run.commands, strict=True) if c["booster_id"] == booster_id]
    assert keys == [c["contact_id"].encode() for c in commands]  # keyed by contact_id


def test_r16_each_recipient_s_outcome_is_kept_once_in_its_contact_s_partition(run: Run) -> None:
    sc = run.scenarios["email"]
    booster_id = booster_id_of(sc.campaign_id)
    mine = [(key, p, o) for key, p, o in run.extra["outcomes"] if o["booster_id"] == booster_id]
    assert len(mine) == len(sc.roles)  # once each: every recipient, nothing else
    assert {o["contact_id"]: o["outcome"] for _, _, o in mine} == sc.expected_outcome
    for key, partition, o in mine:
        contact = o["contact_id"]
        assert key == audience_key(booster_id, contact)
        assert partition == contact_partition(contact, run.settings.partitions)
        assert o["command_id"] == (command_id_of(booster_id, contact) if o["outcome"] == "INCLUDED" else None)
        assert (o["campaign_id"], o["account_id"], o["deadline"]) == (sc.campaign_id, sc.account_id, sc.deadline)
        assert o["decided_at"] >= sc.deadline


def test_a_holdout_gets_no_command_and_is_counted_and_kept_as_such(run: Run) -> None:
    """The held-out share of the eligible is the contacts the stable hash picks, no others;
    they get no command, the report counts them under HOLDOUT, booster.audience marks them HOLDOUT."""
    sc = run.scenarios["holdout"]
    held_out = {c for c, outcome in sc.expected_outcome.items() if outcome == "HOLDOUT"}
    eligible = len(sc.expected_audience) + len(held_out)
    assert 0.2 * eligible < len(held_out) < 0.4 * eligible
    got = run.commanded("holdout")
    assert sorted(got) == sorted(sc.expected_audience)
    report = run.final("holdout")
    assert report["status"] == "SENT" and report["audience"] == report["billable"] == len(sc.expected_audience)
    assert report["excluded"]["HOLDOUT"] == len(held_out)
    assert report["excluded"]["OPENED"] == len(sc.roles) // 3
    assert report["audience"] + sum(report["excluded"].values()) == len(sc.roles)
    booster_id = booster_id_of(sc.campaign_id)
    outcomes = {o["contact_id"]: o for _, _, o in run.extra["outcomes"] if o["booster_id"] == booster_id}
    assert {c: o["outcome"] for c, o in outcomes.items()} == sc.expected_outcome
    assert all(outcomes[c]["command_id"] is None for c in held_out)


def test_r16_a_booster_called_off_keeps_no_outcome_and_an_empty_one_says_why_each_was_left_out(run: Run) -> None:
    called_off = {booster_id_of(run.cid(n)) for n in ("cancelled", "all-opened")}
    assert not [o for _, _, o in run.extra["outcomes"] if o["booster_id"] in called_off]
    empty = run.scenarios["empty"]
    outcomes = {
        o["contact_id"]: o["outcome"] for _, _, o in run.extra["outcomes"] if o["campaign_id"] == empty.campaign_id
    }
    assert outcomes == empty.expected_outcome and "INCLUDED" not in outcomes.values()


def test_the_report_life_is_scheduled_then_one_final(run: Run) -> None:
    statuses = [rep["status"] for rep, _ in run.reports[run.cid("email")]]
    assert statuses == ["SCHEDULED", "SENT"]


# -- channels and criteria ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "channel"), [("sms", "SMS"), ("push", "PUSH"), ("email-sms", "SMS")])
def test_other_channels_and_criteria(run: Run, name: str, channel: str) -> None:
    sc = run.scenarios[name]
    got = run.commanded(name)
    assert sorted(got) == sorted(sc.expected_audience)
    report = run.final(name)
    assert report["status"] == "SENT"
    assert report["excluded"] == {k: sc.expected_excluded.get(k, 0) for k in report["excluded"]}
    booster_id = booster_id_of(sc.campaign_id)
    assert {c["channel"] for c in run.commands if c["booster_id"] == booster_id} == {channel}


def test_a_booster_on_another_channel_leaves_out_the_contacts_it_cannot_reach_there(run: Run) -> None:
    """An SMS booster after an email campaign: contacts unreachable on SMS at the deadline get no command
    and the outcome UNREACHABLE; one reachable again before the deadline is boosted. The same facts do not
    touch an EMAIL booster of an EMAIL campaign (the "email" scenario has every role)."""
    sc = run.scenarios["reachability"]
    unreachable = {c for c, role in sc.roles.items() if role == "unreachable"}
    report = run.final("reachability")
    assert report["status"] == "SENT" and report["audience"] == report["billable"] == 40
    assert {k: v for k, v in report["excluded"].items() if v} == {"UNREACHABLE": 20}
    assert set(run.commanded("reachability")) == set(sc.roles) - unreachable
    booster_id = booster_id_of(sc.campaign_id)
    outcomes = {o["contact_id"]: o["outcome"] for _, _, o in run.extra["outcomes"] if o["booster_id"] == booster_id}
    assert {c for c, outcome in outcomes.items() if outcome == "UNREACHABLE"} == unreachable
    email = run.scenarios["email"]
    same_channel = {c for c, role in email.roles.items() if role == "unreachable"}
    assert same_channel and same_channel <= set(run.commanded("email"))


def test_commands_issued_inside_the_quiet_hours_carry_their_end_in_each_recipients_time_zone(run: Run) -> None:
    sc = run.scenarios["quiet-hours"]
    end = sc.quiet_hours[0]["end"]
    commands = [c for c in run.commands if c["booster_id"] == booster_id_of(sc.campaign_id)]
    assert len(commands) == 48
    deferred = 0
    for c in commands:
        zone_name = sc.time_zones.get(c["contact_id"], sc.time_zone)  # the account's without a fact
        if zone_name in QUIET_INSIDE:
            deferred += 1
            waits = c["send_after"]
            assert waits is not None and c["issued_at"] < waits <= c["issued_at"] + 12 * HOUR_MS, (zone_name, c)
            local = datetime.fromtimestamp(waits / 1000, ZoneInfo(zone_name))
            assert local.strftime("%H:%M") == end and local.second == 0, (zone_name, local)
        else:
            assert c["send_after"] is None, (zone_name, c)
    report = run.final("quiet-hours")
    assert deferred == 24 and report["deferred"] == 24 and report["audience"] == 48


def test_a_frequency_cap_leaves_out_the_contacts_that_had_their_booster_of_the_week(run: Run) -> None:
    """Two boosters of one account (one a week), due together, for the same contacts: whichever fires
    first in a partition takes its contacts there; the other leaves them out as FREQUENCY_CAP. No
    contact gets both; a contact the first one excluded (it opened that campaign) gets the second."""
    a, b = run.scenarios["capped-a"], run.scenarios["capped-b"]
    got_a, got_b = set(run.commanded("capped-a")), set(run.commanded("capped-b"))
    assert not got_a & got_b
    openers = {c for c, role in a.roles.items() if role == "opened"}
    assert got_a | got_b == set(b.roles) and openers <= got_b
    # each contact both boosters would reach is capped once, in the one that fired second there
    both = set(a.roles) - openers
    reports = run.final("capped-a"), run.final("capped-b")
    assert sum(r["excluded"]["FREQUENCY_CAP"] for r in reports) == len(both) == 20
    assert (reports[0]["audience"], reports[1]["audience"]) == (len(got_a), len(got_b))
    assert reports[0]["excluded"]["OPENED"] == 20
    ids = {booster_id_of(a.campaign_id), booster_id_of(b.campaign_id)}
    capped = [
        o["contact_id"]
        for _, _, o in run.extra["outcomes"]
        if o["booster_id"] in ids and o["outcome"] == "FREQUENCY_CAP"
    ]
    assert sorted(capped) == sorted(both)


def test_sms_opens_do_not_exclude(run: Run) -> None:
    sc = run.scenarios["sms"]
    openers = {c for c, role in sc.roles.items() if role in ("opened", "machine_open")}
    assert openers and openers <= set(run.commanded("sms"))
    assert run.final("sms")["excluded"]["OPENED"] == 0


# -- R2, R3, R7, R9 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "reason"),
    [
        ("too-short", "REJECTED", "2 hours to 7 days"),
        ("too-long", "REJECTED", "2 hours to 7 days"),
        ("no-sms", "REJECTED", "channel not enabled for this account"),
        ("empty-group", "CANCELLED", "0 contacts"),
    ],
)
def test_refused_at_launch(run: Run, name: str, status: str, reason: str) -> None:
    reports = run.reports[run.cid(name)]
    assert [rep["status"] for rep, _ in reports] == [status]
    assert reason in (reports[0][0]["reason"] or "")
    assert run.commanded(name) == []


def test_exactly_seven_days_is_accepted_and_does_not_fire(run: Run) -> None:
    reports = run.reports[run.cid("exact-7d")]
    assert [rep["status"] for rep, _ in reports] == ["SCHEDULED"]
    assert reports[0][0]["deadline"] == run.scenarios["exact-7d"].deadline
    assert run.commanded("exact-7d") == []


def test_an_empty_audience_is_cancelled_with_no_commands(run: Run) -> None:
    report = run.final("empty")
    assert (report["status"], report["reason_code"]) == ("CANCELLED", "EMPTY_AUDIENCE") and "empty" in report["reason"]
    assert report["excluded"]["OPENED"] == 30 and report["excluded"]["DELETED"] == 30 and report["audience"] == 0
    assert run.commanded("empty") == []


def test_r7_a_campaign_everyone_opened_gets_no_booster(run: Run) -> None:
    report = run.final("all-opened")
    assert (report["status"], report["reason_code"]) == ("CANCELLED", "FULL_OPEN_RATE")
    assert report["audience"] == report["billable"] == 0
    assert run.commanded("all-opened") == []


def test_machine_opens_are_not_opens_so_their_recipients_are_boosted(run: Run) -> None:
    """Every recipient opened, half of them only by a privacy proxy: not a 100 % open rate (R7), and
    the machine openers get the booster (R6)."""
    sc = run.scenarios["machine-opens"]
    machine = {c for c, role in sc.roles.items() if role == "machine_open"}
    report = run.final("machine-opens")
    assert report["status"] == "SENT" and report["audience"] == len(machine) == 30
    assert report["boosted_despite_machine_open"] == 30  # all of them
    assert set(run.commanded("machine-opens")) == machine
    assert report["excluded"]["OPENED"] == 30


def test_a_link_scanners_click_flagged_bot_does_not_exclude(run: Run) -> None:
    sc = run.scenarios["bot-clicks"]
    scanned = {c for c, role in sc.roles.items() if role == "bot_click"}
    report = run.final("bot-clicks")
    assert report["status"] == "SENT" and report["excluded"]["CLICKED"] == 20
    assert set(run.commanded("bot-clicks")) == scanned and len(scanned) == 20
    assert report["boosted_despite_scanner_click"] == 20


def test_a_click_within_the_scanner_window_is_a_scanners_and_never_hides_the_persons_later_click(run: Run) -> None:
    """EMAIL's default window, 60 s: a click 5 s after delivery does not exclude, a later one does;
    with the window off (0), the same click excludes."""
    sc = run.scenarios["scanner-clicks"]
    boosted = {c for c, role in sc.roles.items() if role in ("scanner_click", "bot_click")}
    report = run.final("scanner-clicks")
    assert report["status"] == "SENT" and report["audience"] == len(boosted) == 40
    assert report["excluded"]["CLICKED"] == 20  # scanner_then_click: the person clicked an hour later
    assert report["boosted_despite_scanner_click"] == 40
    assert set(run.commanded("scanner-clicks")) == boosted
    off = run.final("scanner-window-off")
    assert (off["audience"], off["excluded"]["CLICKED"], off["boosted_despite_scanner_click"]) == (20, 20, 0)
    roles = run.scenarios["scanner-window-off"].roles
    assert {roles[c] for c in run.commanded("scanner-window-off")} == {"eligible"}


def test_a_booster_that_counts_machine_opens_sees_a_full_open_rate(run: Run) -> None:
    """The same campaign with the launch's policy `count_machine_opens`: every recipient opened (R7)."""
    report = run.final("machine-opens-counted")
    assert (report["status"], report["reason_code"]) == ("CANCELLED", "FULL_OPEN_RATE")
    assert run.commanded("machine-opens-counted") == []


def test_a_cancelled_booster_sends_nothing(run: Run) -> None:
    assert [rep["status"] for rep, _ in run.reports[run.cid("cancelled")]] == ["SCHEDULED", "CANCELLED"]
    assert "cancelled" in run.final("cancelled")["reason"]
    assert run.commanded("cancelled") == []


# -- R4 with shared contacts, R5, R12 ------------------------------------------------------------


def test_overlapping_campaigns_each_get_only_their_recipients(run: Run) -> None:
    a, b = run.scenarios["shared-a"], run.scenarios["shared-b"]
    assert set(a.roles) & set(b.roles), "the campaigns must share contacts"
    assert set(run.commanded("shared-a")) == a.expected_audience
    assert set(run.commanded("shared-b")) == b.expected_audience
    clicked_a = {c for c, role in a.roles.items() if role == "clicked"}
    assert clicked_a & set(b.roles) <= set(run.commanded("shared-b"))  # a click on A does not exclude from B


def test_r5_facts_just_before_the_deadline_exclude(run: Run) -> None:
    late = run.extra["late_excluded"]
    got = set(run.commanded("late"))
    assert not (set(late) & got)
    assert got == run.scenarios["late"].expected_audience - set(late)
    report = run.final("late")
    assert report["excluded"]["CLICKED"] == 1 and report["excluded"]["DELETED"] == 1


def test_r12_events_before_the_launch_count(run: Run) -> None:
    sc = run.scenarios["early-events"]
    assert set(run.commanded("early-events")) == sc.expected_audience
    assert run.final("early-events")["excluded"]["OPENED"] == sc.expected_excluded["OPENED"] > 0


# -- timing and state --------------------------------------------------------------------------------


def test_fires_after_deadline_plus_lateness_and_within_seconds(run: Run) -> None:
    lateness = run.settings.allowed_lateness_ms
    sc = run.scenarios["late"]
    sent_at = next(ts for rep, ts in run.reports[sc.campaign_id] if rep["status"] == "SENT")
    assert sent_at >= sc.deadline + lateness, "fired early"
    assert sent_at <= sc.deadline + lateness + 30_000, f"fired {sent_at - sc.deadline} ms after its deadline"
    booster_id = booster_id_of(sc.campaign_id)
    issued = [c["issued_at"] for c in run.commands if c["booster_id"] == booster_id]
    assert issued and min(issued) >= sc.deadline + lateness


def test_an_already_due_booster_fires_at_once_with_every_fact_published_before_its_launch(run: Run) -> None:
    sc = run.scenarios["email"]
    scheduled, sent = (
        next(ts for rep, ts in run.reports[sc.campaign_id] if rep["status"] == status)
        for status in ("SCHEDULED", "SENT")
    )
    assert sc.deadline < scheduled <= sent <= scheduled + 60_000
    assert set(run.commanded("email")) == sc.expected_audience


def test_recipient_rows_are_gone_after_the_booster_fired(run: Run) -> None:
    changelog: dict[bytes, bytes | None] = run.extra["changelog"]
    for name in ROWS_GONE:
        prefix = recipient_prefix(run.cid(name))
        keys = [k for k in changelog if k.startswith(prefix)]
        assert len(keys) == len(run.scenarios[name].roles), name
        assert all(changelog[k] is None for k in keys), f"{name}: rows left in the table"
    # a booster that has not fired keeps its rows
    pending = recipient_prefix(run.cid("exact-7d"))
    assert any(v is not None for k, v in changelog.items() if k.startswith(pending))


def test_one_decision_line_per_booster(run: Run) -> None:
    lines = decisions(run.worker_log)
    sent = [d for d in lines if d["event"] == "sent" and d["campaign_id"] == run.cid("email")]
    assert len(sent) == 1 and sent[0]["audience"] == len(run.scenarios["email"].expected_audience)
    rejected = Counter(d["campaign_id"] for d in lines if d["event"] == "rejected")
    assert rejected[run.cid("too-short")] == 1


def test_r1_a_campaign_without_booster_gets_no_report_no_command_and_its_rows_go(run: Run) -> None:
    assert run.cid("no-booster") not in run.reports
    assert run.commanded("no-booster") == []
    changelog: dict[bytes, bytes | None] = run.extra["changelog"]
    prefix = recipient_prefix(run.cid("no-booster"))
    rows = [k for k in changelog if k.startswith(prefix)]
    assert len(rows) == len(run.scenarios["no-booster"].roles)
    assert all(changelog[k] is None for k in rows), "rows of a campaign without booster stayed"
