"""G5: any permutation and duplication of a scenario's events gives the same audience and tally."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from booster.processors.audience import Tally, decide
from booster.processors.boosters import DEFAULT_SCANNER_WINDOW_SECONDS, default_criterion
from booster.processors.events import contact_event_from_record, message_event_from_record
from booster.processors.recipients import fold
from booster.testing.scenario import Scenario, build

T0 = 1_767_225_600_000


def scenario(channel: str = "EMAIL", booster_channel: str | None = None) -> Scenario:
    return build("cmp", 42, launched_at=T0, channel=channel, booster_channel=booster_channel)


def events(sc: Scenario) -> list[tuple[str, dict[str, Any]]]:
    return [(topic, r) for topic, records in sc.records.items() for r in records]


def audience(sc: Scenario, evs: list[tuple[str, dict[str, Any]]]) -> tuple[set[str], Tally]:
    """What a worker decides at the deadline after folding these events, in this order."""
    folded = fold(
        message_event_from_record(topic, r) if topic.startswith("message.") else contact_event_from_record(topic, r)
        for topic, r in evs
    )
    channel: Any = sc.booster_channel or sc.channel
    channel_of_campaign: Any = sc.channel
    criterion = default_criterion(channel_of_campaign)
    chosen, tally = set(), Tally()
    for (_campaign, contact), recipient in folded.recipients.items():
        decision = decide(
            recipient,
            folded.contacts.get(contact),
            channel=channel,
            criterion=criterion,
            at=sc.deadline,
            count_machine_opens=False,
            scanner_window_ms=1000 * DEFAULT_SCANNER_WINDOW_SECONDS[channel_of_campaign],
            campaign_channel=channel_of_campaign,
        )
        tally = tally.count(decision)
        if decision is None:
            chosen.add(contact)
    return chosen, tally


def test_scenarios_match_their_expected_answer() -> None:
    for sc in (scenario(), scenario("SMS"), scenario("PUSH"), scenario("EMAIL", "SMS")):
        chosen, tally = audience(sc, events(sc))
        assert chosen == sc.expected_audience
        assert Counter(tally.excluded) == sc.expected_excluded
        assert tally.audience + sum(tally.excluded.values()) == len(sc.roles)  # R11


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_permutation_with_duplicates_gives_the_same_answer(data: st.DataObject) -> None:
    sc = scenario(data.draw(st.sampled_from(["EMAIL", "SMS", "PUSH"])))
    evs = events(sc)
    repeated = data.draw(st.lists(st.sampled_from(evs), max_size=len(evs)))
    shuffled = data.draw(st.permutations(evs + repeated))
    assert audience(sc, shuffled) == audience(sc, evs)
