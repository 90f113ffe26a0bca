"""Boosters: validating a launch (R1-R3, R7) once per campaign, the schedule, the account's channels,
command identity and the booster's reports (R8).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, get_args

from booster.processors.events import AccountChannels, BoosterSettings, CampaignLaunched, Channel, Criterion
from booster.processors.frequency import FrequencyCap
from booster.processors.quiet import QuietHours
from booster.processors.text import human_duration
from booster.processors.uplift import BOOSTER_SUFFIX

MIN_DELAY_SECONDS = 2 * 3600
MAX_DELAY_SECONDS = 7 * 24 * 3600
MAX_DELAY_MS = MAX_DELAY_SECONDS * 1000
MAX_SCANNER_WINDOW_SECONDS = 1800
HOUR_MS = 3_600_000
MAX_HOLDOUT_PERCENT = 50
DEFAULT_MEASUREMENT_HOURS = 72
MAX_MEASUREMENT_HOURS = 720

Status = Literal["PENDING", "SCHEDULED", "REJECTED", "CANCELLED", "SENT"]

# command_ids are uuid5 in this namespace: the same booster and contact always give the same id.
COMMAND_NAMESPACE = uuid.UUID("6f1c4c36-1f0e-5c55-9d55-0b0057e40001")
_NAMESPACE_BYTES = COMMAND_NAMESPACE.bytes


def booster_id_of(campaign_id: str) -> str:
    """A campaign has at most one booster; its id is derived so every worker agrees on it."""
    return f"{campaign_id}{BOOSTER_SUFFIX}"


def booster_name_of(campaign_name: str) -> str:
    return f"Booster for {campaign_name}"  # R8


def command_id_of(booster_id: str, contact_id: str) -> str:
    """uuid5(COMMAND_NAMESPACE, "<booster>/<contact>")."""
    return command_ids(booster_id)(contact_id)


def command_ids(booster_id: str) -> Callable[[str], str]:
    """command_id_of for one booster's contacts, computed without the UUID object and with the
    namespace and the booster hashed once: a fan-out makes millions of them."""
    head = hashlib.sha1(_NAMESPACE_BYTES + f"{booster_id}/".encode())

    def command_id(contact_id: str) -> str:
        sha = head.copy()
        sha.update(contact_id.encode())
        digest = bytearray(sha.digest()[:16])
        digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
        digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = digest.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    return command_id


def default_criterion(campaign_channel: Channel) -> Criterion:
    """Engagement is judged on the original message: SMS has no opens to count."""
    return "NOT_CLICKED" if campaign_channel == "SMS" else "NOT_OPENED"


@dataclass(frozen=True, slots=True)
class Schedule:
    """An accepted booster: who it is for and when it fires."""

    campaign_id: str
    booster_id: str
    booster_name: str
    account_id: str
    channel: Channel  # the booster's channel
    criterion: Criterion
    content_ref: str
    deadline: int
    count_machine_opens: bool = False  # the booster's policy for machine opens (R6)
    # clicks this long after delivery or sooner are a link scanner's, not the person's (0: none is)
    scanner_window_seconds: int = 0
    campaign_channel: Channel | None = None  # the original campaign's; None in schedules of older workers
    # the account's quiet hours for the booster's channel when the launch was decided; None: none
    quiet_hours: QuietHours | None = None
    # the account's frequency cap when the launch was decided; None: this booster neither counts nor is capped
    frequency_cap: FrequencyCap | None = None
    # this share of the eligible recipients gets no command (HOLDOUT), the control group
    holdout_percent: int = 0
    # engagement is measured this long after the deadline; 0: not measured (scheduled by older workers)
    measurement_ms: int = 0


class ReasonCode(StrEnum):
    """Why a booster was REJECTED or CANCELLED, or what a notice is about (the Avro enum ReasonCode of
    booster.reports v2 and booster.notices; a test keeps the two the same)."""

    DELAY_OUT_OF_RANGE = "DELAY_OUT_OF_RANGE"  # R2
    CHANNEL_NOT_ENABLED = "CHANNEL_NOT_ENABLED"  # R3
    ACCOUNT_UNKNOWN = "ACCOUNT_UNKNOWN"  # R15: the account's channels never came
    EMPTY_GROUP = "EMPTY_GROUP"  # R7: 0 contacts
    FULL_OPEN_RATE = "FULL_OPEN_RATE"  # R7: everyone opened the original
    EMPTY_AUDIENCE = "EMPTY_AUDIENCE"  # R7: every recipient engaged or was excluded
    CANCEL_REQUESTED = "CANCEL_REQUESTED"  # R9
    STALE_LAUNCH = "STALE_LAUNCH"  # R15: reached Kafka long after its deadline
    CHANNEL_REVOKED = "CHANNEL_REVOKED"  # R15
    CANCEL_TOO_LATE = "CANCEL_TOO_LATE"  # R13: the cancel came after the booster started firing
    ACCOUNT_PENDING = "ACCOUNT_PENDING"  # R15: the launch waits for its account's channels
    DUPLICATE_LAUNCH = "DUPLICATE_LAUNCH"  # G5: the campaign's launch was decided already
    SETTING_OUT_OF_RANGE = "SETTING_OUT_OF_RANGE"  # a booster setting other than the delay is out of its range
    ENGINE_LATE = "ENGINE_LATE"  # the workers decided the launch too long after its deadline (they were behind)
    OTHER = "OTHER"  # what a reader gets for a code newer than its schema


def reason_code_of(text: str | None) -> ReasonCode | None:
    """A reason code read back from a record or a row; one this version does not know is OTHER."""
    if text is None:
        return None
    try:
        return ReasonCode(text)
    except ValueError:
        return ReasonCode.OTHER


@dataclass(frozen=True, slots=True)
class Report:
    booster_id: str
    booster_name: str
    campaign_id: str
    account_id: str
    status: Status
    reason: str | None
    deadline: int | None
    audience: int = 0
    excluded: Mapping[str, int] = field(default_factory=dict)
    billable: int = 0
    reason_code: ReasonCode | None = None  # set on every REJECTED and CANCELLED report (R14)
    boosted_despite_machine_open: int = 0  # of the audience: recipients whose only opens were a machine's
    boosted_despite_scanner_click: int = 0  # of the audience: recipients whose only clicks were a scanner's
    deferred: int = 0  # of the audience: commands that carry a send_after (issued inside the quiet hours)


@dataclass(frozen=True, slots=True)
class Accepted:
    schedule: Schedule
    report: Report  # SCHEDULED
    launched_at: int

    @property
    def campaign_id(self) -> str:
        return self.schedule.campaign_id


@dataclass(frozen=True, slots=True)
class Refused:
    report: Report  # REJECTED or CANCELLED, final at once
    launched_at: int  # its rows go as a campaign without booster's do (R12)

    @property
    def campaign_id(self) -> str:
        return self.report.campaign_id


@dataclass(frozen=True, slots=True)
class NoBooster:
    campaign_id: str
    launched_at: int


LaunchDecision = Accepted | Refused | NoBooster


DEFAULT_STALENESS_MS = 3_600_000  # BOOSTER_LAUNCH_STALENESS_SECONDS: how late an upstream may publish a launch
# BOOSTER_ENGINE_LATENESS_SECONDS: how late the workers may decide one that reached Kafka in time. Longer:
# a launch the workers reach late was on time, so the account should get its follow-up, and workers catch
# up on an outage or a backlog within hours; past this, a follow-up lands so far from the moment its
# sender chose (evening for a morning send) that sending it would do more harm than good
DEFAULT_ENGINE_LATENESS_MS = 6 * 3_600_000


def decide_launch(
    launch: CampaignLaunched,
    account: AccountChannels | None,
    *,
    now: int | None = None,
    arrived_at: int | None = None,
    staleness_ms: int = DEFAULT_STALENESS_MS,
    engine_lateness_ms: int = DEFAULT_ENGINE_LATENESS_MS,
) -> LaunchDecision:
    """R1: no settings, no booster. R2: delay in [2h, 7d]. R3: booster channel enabled. R7: empty group.
    R15: a launch that `arrived_at` Kafka (its record's timestamp) later than the deadline plus
    `staleness_ms` is cancelled as stale (an upstream that replays or holds back launches that long
    would send follow-ups days late). How far behind the workers are never decides that (G1): a launch
    that reached Kafka in time is sent, unless the workers decide it (at `now`) later than the
    deadline plus `engine_lateness_ms`, cancelled then with a reason of its own (ENGINE_LATE)."""
    b = launch.booster
    if b is None:
        return NoBooster(launch.campaign_id, launch.launched_at)
    quiet_hours = quiet_hours_for(account, b.channel or launch.channel)
    schedule = schedule_of(launch, b, quiet_hours, None if account is None else account.frequency_cap)
    channel, deadline = schedule.channel, schedule.deadline

    def report(status: Status, code: ReasonCode | None, reason: str | None) -> Report:
        return launch_report(schedule, status, code, reason)

    if not MIN_DELAY_SECONDS <= b.delay_seconds <= MAX_DELAY_SECONDS:
        return Refused(
            report(
                "REJECTED",
                ReasonCode.DELAY_OUT_OF_RANGE,
                f"delay {human_duration(b.delay_seconds)} ({b.delay_seconds} s) is outside "
                "the allowed window of 2 hours to 7 days",
            ),
            launch.launched_at,
        )
    if (window := scanner_window_of(launch.channel, b)) < 0 or window > MAX_SCANNER_WINDOW_SECONDS:
        return Refused(
            report(
                "REJECTED",
                ReasonCode.SETTING_OUT_OF_RANGE,
                f"scanner window {window} s is outside the allowed 0 to {MAX_SCANNER_WINDOW_SECONDS} s",
            ),
            launch.launched_at,
        )
    if not 0 <= b.holdout_percent <= MAX_HOLDOUT_PERCENT:
        return Refused(
            report(
                "REJECTED",
                ReasonCode.SETTING_OUT_OF_RANGE,
                f"holdout {b.holdout_percent} % is outside the allowed 0 to {MAX_HOLDOUT_PERCENT} %",
            ),
            launch.launched_at,
        )
    if not 1 <= (hours := measurement_hours_of(b)) <= MAX_MEASUREMENT_HOURS:
        return Refused(
            report(
                "REJECTED",
                ReasonCode.SETTING_OUT_OF_RANGE,
                f"measurement window {hours} h is outside the allowed 1 to {MAX_MEASUREMENT_HOURS} h",
            ),
            launch.launched_at,
        )
    if account is None or channel not in account.channels:
        return Refused(
            report("REJECTED", ReasonCode.CHANNEL_NOT_ENABLED, f"channel not enabled for this account ({channel})"),
            launch.launched_at,
        )
    if launch.group_size <= 0:
        return Refused(
            report("CANCELLED", ReasonCode.EMPTY_GROUP, "the campaign's group has 0 contacts"), launch.launched_at
        )
    if arrived_at is not None and arrived_at > deadline + staleness_ms:
        return Refused(
            report(
                "CANCELLED",
                ReasonCode.STALE_LAUNCH,
                f"stale: the launch reached Kafka {human_duration((arrived_at - deadline) // 1000)} after its "
                f"deadline, more than the {human_duration(staleness_ms // 1000)} allowed; a follow-up this late "
                "is not sent",
            ),
            launch.launched_at,
        )
    if now is not None and now > deadline + engine_lateness_ms:
        return Refused(
            report(
                "CANCELLED",
                ReasonCode.ENGINE_LATE,
                f"the booster workers reached the launch {human_duration((now - deadline) // 1000)} after its "
                f"deadline, more than the {human_duration(engine_lateness_ms // 1000)} allowed: they were behind, "
                "and a follow-up this late is not sent",
            ),
            launch.launched_at,
        )
    return Accepted(schedule, report("SCHEDULED", None, None), launch.launched_at)


# R2 and the settings' ranges do not need the account's channels: a launch they reject does not wait
ACCOUNT_FREE_REJECTIONS = (ReasonCode.DELAY_OUT_OF_RANGE, ReasonCode.SETTING_OUT_OF_RANGE)


def launch_report(schedule: Schedule, status: Status, code: ReasonCode | None, reason: str | None) -> Report:
    """A report about a launch's booster before it fires: no audience yet."""
    return Report(
        schedule.booster_id,
        schedule.booster_name,
        schedule.campaign_id,
        schedule.account_id,
        status,
        reason,
        schedule.deadline,
        reason_code=code,
    )


def quiet_hours_for(account: AccountChannels | None, channel: Channel) -> QuietHours | None:
    """The account's quiet hours on the channel, with the account's time zone; None: it has none."""
    if account is None:
        return None
    for ch, start, end in account.quiet_hours:
        if ch == channel and start != end:
            return QuietHours(start, end, account.time_zone)
    return None


def schedule_of(
    launch: CampaignLaunched,
    b: BoosterSettings,
    quiet_hours: QuietHours | None = None,
    frequency_cap: FrequencyCap | None = None,
) -> Schedule:
    """The schedule of an accepted launch: a function of the launch and of the account's quiet hours
    and frequency cap when it was decided (kept with the decision), so it can be made again."""
    return Schedule(
        campaign_id=launch.campaign_id,
        booster_id=booster_id_of(launch.campaign_id),
        booster_name=booster_name_of(launch.name),
        account_id=launch.account_id,
        channel=b.channel or launch.channel,
        criterion=b.criterion or default_criterion(launch.channel),
        content_ref=b.content_ref,
        deadline=launch.launched_at + b.delay_seconds * 1000,
        count_machine_opens=b.count_machine_opens,
        scanner_window_seconds=scanner_window_of(launch.channel, b),
        campaign_channel=launch.channel,
        quiet_hours=quiet_hours,
        frequency_cap=frequency_cap,
        holdout_percent=b.holdout_percent,
        measurement_ms=measurement_hours_of(b) * HOUR_MS,
    )


def measurement_hours_of(b: BoosterSettings) -> int:
    return DEFAULT_MEASUREMENT_HOURS if b.measurement_hours is None else b.measurement_hours


# Link scanners of mail gateways (Microsoft Safe Links, Proofpoint, Mimecast, Barracuda) click every
# link within seconds of delivery, some a minute or two later; people rarely click an email in its
# first minute. SMS and push are read within a minute or two, so a window there would call people's
# clicks a machine's: off unless the booster asks for one.
DEFAULT_SCANNER_WINDOW_SECONDS: dict[Channel, int] = {"EMAIL": 60, "SMS": 0, "PUSH": 0}


def scanner_window_of(campaign_channel: Channel, b: BoosterSettings) -> int:
    """The booster's scanner window: its setting, else the default of the original campaign's channel
    (the clicks are on the original message)."""
    if b.scanner_window_seconds is not None:
        return b.scanner_window_seconds
    return DEFAULT_SCANNER_WINDOW_SECONDS[campaign_channel]


def evolve_account(state: AccountChannels | None, event: AccountChannels) -> AccountChannels:
    """account.channels is compacted, latest wins: by updated_at, then by content for a tie."""
    if state is None:
        return event
    if _account_rank(event) > _account_rank(state):
        return event
    return state


def _account_rank(a: AccountChannels) -> tuple[Any, ...]:
    cap = (0, 0) if a.frequency_cap is None else (a.frequency_cap.max_boosters, a.frequency_cap.window_ms)
    return a.updated_at, sorted(a.channels), a.quiet_hours, a.time_zone, cap


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The campaign's launch was decided already: a later launch of the same id changes nothing."""

    campaign_id: str
    decided: LaunchStatus  # what was decided for it


@dataclass(frozen=True, slots=True)
class AwaitAccount:
    """R3 needs the account's channels, which have not arrived yet (topics are not ordered): the
    launch waits for them."""

    launch: CampaignLaunched


@dataclass(frozen=True, slots=True)
class Forgotten:
    """A launch older than the decisions kept (BOOSTER_DECISION_RETENTION_DAYS after its deadline): it
    may have been decided long ago, so it is not decided again (that would call it stale and overwrite
    its report); it is only logged and counted."""

    campaign_id: str
    moment: int  # its `launch_moment`


LaunchStep = LaunchDecision | Duplicate | AwaitAccount | Forgotten


def launch_moment(launch: CampaignLaunched) -> int:
    """The moment a launch's decision refers to, from which it is kept: its booster's deadline (at most
    the longest delay after the launch: a refused delay may be any length), or its launch time."""
    if launch.booster is None:
        return launch.launched_at
    return launch.launched_at + min(launch.booster.delay_seconds * 1000, MAX_DELAY_MS)


def decision_expired(moment: int, now: int, retention_ms: int) -> bool:
    """A launch decision past its retention (the sweep drops it; a launch that old is `Forgotten`);
    `moment` is its `launch_moment`."""
    return now >= moment + retention_ms


LaunchStatus = Literal["NONE", "SCHEDULED", "REJECTED", "CANCELLED"]
LAUNCH_STATUSES: dict[str, LaunchStatus] = {s: s for s in get_args(LaunchStatus)}


def launch_status_of(text: str) -> LaunchStatus:
    """A remembered launch status read back (ValueError for anything else)."""
    try:
        return LAUNCH_STATUSES[text]
    except KeyError:
        raise ValueError(f"not a launch status: {text!r}") from None


def on_launch(
    decided: LaunchStatus | None,
    account: AccountChannels | None,
    launch: CampaignLaunched,
    *,
    now: int | None = None,
    arrived_at: int | None = None,
    staleness_ms: int = DEFAULT_STALENESS_MS,
    engine_lateness_ms: int = DEFAULT_ENGINE_LATENESS_MS,
    decision_retention_ms: int | None = None,
) -> LaunchStep:
    """What a launch event does, given what was decided for its campaign and the account's channels
    (decisions are kept `decision_retention_ms` after their `launch_moment`; None: for ever)."""
    if decided is not None:
        return Duplicate(launch.campaign_id, decided)
    moment = launch_moment(launch)
    if decision_retention_ms is not None and now is not None and decision_expired(moment, now, decision_retention_ms):
        return Forgotten(launch.campaign_id, moment)
    lateness: dict[str, Any] = {
        "now": now,
        "arrived_at": arrived_at,
        "staleness_ms": staleness_ms,
        "engine_lateness_ms": engine_lateness_ms,
    }
    if account is None:
        early = decide_launch(launch, None, **lateness)
        if isinstance(early, NoBooster) or early.report.reason_code in ACCOUNT_FREE_REJECTIONS:
            return early
        return AwaitAccount(launch)
    return decide_launch(launch, account, **lateness)


def pending_report(launch: CampaignLaunched) -> Report:
    """R15: a launch with a booster waiting for its account's channels is visible as PENDING."""
    b = launch.booster
    assert b is not None, "a launch without booster settings never waits"
    reason = f"waits for the channels of account {launch.account_id}"
    return launch_report(schedule_of(launch, b), "PENDING", ReasonCode.ACCOUNT_PENDING, reason)


def expire_pending(launch: CampaignLaunched, now: int, allowed_lateness_ms: int) -> Refused | None:
    """R15: a launch still waiting for its account's channels once its deadline and the allowed
    lateness are past is REJECTED (account unknown); before that, None. Channels are a fact like the
    others: those that reach Kafka within the allowed lateness still decide the launch, as a late
    delivery report still counts, and the booster could not fire before that moment anyway. A launch
    without booster settings never expires this way (R1)."""
    b = launch.booster
    if b is None:
        return None
    schedule = schedule_of(launch, b)
    if now < schedule.deadline + allowed_lateness_ms:
        return None
    reason = (
        f"the channels of account {launch.account_id} (account.channels) never came before the deadline "
        "and its allowed lateness"
    )
    report = launch_report(schedule, "REJECTED", ReasonCode.ACCOUNT_UNKNOWN, reason)
    return Refused(report, launch.launched_at)


def on_account(
    state: AccountChannels | None,
    event: AccountChannels,
    waiting: Iterable[CampaignLaunched],
    *,
    now: int | None = None,
    engine_lateness_ms: int = DEFAULT_ENGINE_LATENESS_MS,
) -> tuple[AccountChannels, list[LaunchDecision]]:
    """The account's channels after an account.channels record, and the decisions of the launches
    that were waiting for them (seen before their deadline, or they would not wait: only how late the
    workers are can cancel them)."""
    account = evolve_account(state, event)
    decisions = [decide_launch(launch, account, now=now, engine_lateness_ms=engine_lateness_ms) for launch in waiting]
    return account, decisions


def launch_status(decision: LaunchDecision) -> LaunchStatus:
    """What is remembered of a decided launch, so a duplicate is recognised."""
    if isinstance(decision, NoBooster):
        return "NONE"
    status = decision.report.status
    if status == "SENT" or status == "PENDING":
        raise AssertionError(f"a launch is never decided as {status}")
    return status
