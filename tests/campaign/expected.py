"""What each booster of a campaign must come to, computed from its input with the pure core, and
the check of what the engine wrote against it (G1, G2, R11, R13, R16)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from booster.processors.audience import all_opened, decide, outcome_of
from booster.processors.boosters import (
    DEFAULT_SCANNER_WINDOW_SECONDS,
    booster_id_of,
    command_id_of,
    default_criterion,
)
from booster.processors.events import contact_event_from_record, message_event_from_record
from booster.processors.recipients import fold
from booster.processors.uplift import holdout_of
from booster.streams.records import contact_partition
from tests.campaign.plan import BoosterPlan, Fact


@dataclass
class Expected:
    status: str  # SENT or CANCELLED
    reason_code: str | None = None
    audience: set[str] = field(default_factory=set)
    outcomes: dict[str, str] = field(default_factory=dict)  # contact -> INCLUDED or its exclusion
    excluded: Counter[str] = field(default_factory=Counter)


def expected_of(plan: BoosterPlan, counted: Iterable[Fact], cancelled: bool) -> Expected:
    """The booster's outcome from the facts that count (published in time, not aborted)."""
    if cancelled:
        return Expected("CANCELLED", "CANCEL_REQUESTED")
    sc = plan.scenario
    rows, outcomes = _outcomes(plan, counted)
    if all_opened(rows, sc.deadline, count_machine_opens=sc.count_machine_opens):
        return Expected("CANCELLED", "FULL_OPEN_RATE")
    out = Expected("SENT", outcomes=outcomes)
    for contact, outcome in outcomes.items():
        if outcome == "INCLUDED":
            out.audience.add(contact)
        else:
            out.excluded[outcome] += 1
    if not out.audience:
        return Expected("CANCELLED", "EMPTY_AUDIENCE", outcomes=out.outcomes, excluded=out.excluded)
    return out


def _outcomes(plan: BoosterPlan, counted: Iterable[Fact]) -> tuple[list[Any], dict[str, str]]:
    """The booster's recipient rows folded from the facts, and each recipient's outcome at the deadline."""
    sc = plan.scenario
    events = [
        message_event_from_record(f.topic, f.value)
        if f.topic.startswith("message.")
        else contact_event_from_record(f.topic, f.value)
        for f in counted
    ]
    folded = fold(events)
    channel: Any = sc.booster_channel or sc.channel
    campaign_channel: Any = sc.channel
    criterion: Any = sc.criterion or default_criterion(campaign_channel)
    window = sc.scanner_window_seconds
    window_ms = 1000 * (window if window is not None else DEFAULT_SCANNER_WINDOW_SECONDS[campaign_channel])
    held_out = holdout_of(booster_id_of(sc.campaign_id), sc.holdout_percent) if sc.holdout_percent else None
    rows = {contact: r for (campaign, contact), r in folded.recipients.items() if campaign == sc.campaign_id}
    outcomes: dict[str, str] = {}
    for contact, recipient in rows.items():
        decision = decide(
            recipient,
            folded.contacts.get(contact),
            channel=channel,
            criterion=criterion,
            at=sc.deadline,
            count_machine_opens=sc.count_machine_opens,
            scanner_window_ms=window_ms,
            campaign_channel=campaign_channel,
        )
        outcome = outcome_of(decision)
        if outcome is None:  # not a recipient
            continue
        if outcome == "INCLUDED" and held_out is not None and held_out(contact):
            outcome = "HOLDOUT"
        outcomes[contact] = outcome
    return list(rows.values()), outcomes


# a booster's late facts are tried in every combination when they are this few or fewer
EVERY_COMBINATION = 10


def admissible(plan: BoosterPlan, on_time: list[Fact], late: list[Fact], written: Written) -> list[Fact] | None:
    """The facts the engine must have counted, given what it wrote, when some reached the broker only
    after the deadline's snapshot could be taken (a broker outage held them back): each may count or
    not, so the written outcome must be the one of some choice of them. A recipient's outcome depends
    on their own facts only, so a SENT booster's choice is made recipient by recipient from the
    outcomes it wrote; a CANCELLED one's from every combination, when there are few. None when no
    choice can be made (too many late facts for a CANCELLED booster): the booster is left unverified."""
    report = written.reports.get(plan.campaign_id)
    if report is None or not late:
        return on_time + late
    if report["status"] == "CANCELLED":
        if len(late) > EVERY_COMBINATION:
            return None
        wanted = (report["status"], report.get("reason_code"))
        for chosen in _combinations(late):
            expected = expected_of(plan, on_time + chosen, cancelled=False)
            if (expected.status, expected.reason_code) == wanted:
                return on_time + chosen
        return on_time + late  # none explains it: the check says how it differs
    got: dict[str, str | None] = {}
    for o in written.outcomes.get(booster_id_of(plan.campaign_id), []):
        got.setdefault(o["contact_id"], o["outcome"])
    by_contact: dict[str, list[Fact]] = {}
    for f in late:
        by_contact.setdefault(f.value["contact_id"], []).append(f)
    chosen_facts = list(on_time)
    for contact, theirs in by_contact.items():
        mine = [f for f in on_time if f.value.get("contact_id") == contact]
        pick = theirs
        if len(theirs) <= EVERY_COMBINATION:
            for chosen in _combinations(theirs):
                if _outcomes(plan, mine + chosen)[1].get(contact) == got.get(contact):
                    pick = chosen
                    break
        chosen_facts += pick
    return chosen_facts


def _combinations(facts: list[Fact]) -> Iterable[list[Fact]]:
    for mask in range(1 << len(facts)):
        yield [f for i, f in enumerate(facts) if mask >> i & 1]


@dataclass
class Written:
    """What the engine wrote, read back once the run is over (read-committed)."""

    commands: dict[str, list[dict[str, Any]]]  # booster_id -> its commands
    reports: Mapping[str, dict[str, Any]]  # campaign_id -> latest report
    outcomes: dict[str, list[dict[str, Any]]]  # booster_id -> its audience outcomes


def check(plan: BoosterPlan, expected: Expected, written: Written, partitions: int) -> list[str]:
    """Every way the booster's commands, report and outcomes differ from what they must be."""
    sc = plan.scenario
    booster_id = booster_id_of(sc.campaign_id)
    commands = written.commands.get(booster_id, [])
    report = written.reports.get(sc.campaign_id)
    problems: list[str] = []

    def problem(text: str) -> None:
        problems.append(f"{sc.campaign_id}: {text}")

    ids = Counter(c["command_id"] for c in commands)
    twice = [i for i, n in ids.items() if n > 1]
    if twice:
        problem(f"{len(twice)} command_id(s) written more than once")
    wrong = [c for c in commands if c["command_id"] != command_id_of(booster_id, c["contact_id"])]
    if wrong:
        problem(f"{len(wrong)} command_id(s) not derived from booster and contact")
    if report is None:
        problem("no report at all")
        return problems
    status = report["status"]
    if status != expected.status:
        problem(f"report {status} ({report.get('reason_code')}: {report.get('reason')}), expected {expected.status}")
        return problems
    if status == "CANCELLED":
        if report.get("reason_code") != expected.reason_code:
            problem(f"cancelled for {report.get('reason_code')}, expected {expected.reason_code}")
        if commands:
            problem(f"cancelled, yet {len(commands)} command(s) were written")
        return problems
    contacts = {c["contact_id"] for c in commands}
    missing, extra = expected.audience - contacts, contacts - expected.audience
    if missing:
        roles = Counter(sc.roles.get(c, "?") for c in missing)
        problem(f"{len(missing)} eligible recipient(s) got no command (roles {dict(roles)})")
    if extra:
        roles = Counter(sc.roles.get(c, "?") for c in extra)
        problem(f"{len(extra)} command(s) to recipients who must not get one (roles {dict(roles)})")
    if report["audience"] != len(expected.audience) or report.get("billable") != len(expected.audience):
        problem(
            f"report audience {report['audience']} billable {report.get('billable')}, expected {len(expected.audience)}"
        )
    if report["audience"] != len(commands):
        problem(f"report audience {report['audience']} != {len(commands)} commands written")
    got_excluded = {k: v for k, v in report["excluded"].items() if v}
    if got_excluded != dict(expected.excluded):
        problem(f"report exclusions {got_excluded}, expected {dict(expected.excluded)}")
    outcomes = written.outcomes.get(booster_id, [])
    by_contact: dict[str, list[str]] = {}
    for o in outcomes:
        by_contact.setdefault(o["contact_id"], []).append(o["outcome"])
    wrong_outcomes = [c for c, want in expected.outcomes.items() if set(by_contact.get(c, [])) != {want}]
    unknown = set(by_contact) - set(expected.outcomes)
    if wrong_outcomes or unknown:
        examples = ", ".join(
            f"{c} ({sc.roles.get(c)}, partition {contact_partition(c, partitions)}): {by_contact.get(c)} "
            f"not {expected.outcomes.get(c)}"
            for c in sorted(wrong_outcomes)[:6]
        )
        problem(
            f"audience outcomes: {len(wrong_outcomes)} recipient(s) without their one outcome, {len(unknown)} "
            f"outcome(s) of contacts who are not recipients; for example {examples}"
        )
    return problems
