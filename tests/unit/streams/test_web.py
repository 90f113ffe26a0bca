"""The operators' preview on the in-memory store: the same tally as the fan-out, and one contact explained."""

from __future__ import annotations

import time
from dataclasses import replace

from booster.config import Settings
from booster.processors.campaigns import CampaignPartition
from booster.processors.frequency import FrequencyCap
from booster.processors.packing import pack_contact, pack_recipient
from booster.processors.recipients import ContactState, RecipientState
from booster.streams.campaigns import CampaignStates
from booster.streams.history import add_sent
from booster.streams.metrics import Metrics
from booster.streams.records import contact_partition
from booster.streams.store import MemoryTable, recipient_key
from booster.streams.web import Web
from tests.unit.streams.fakes import Gate
from tests.unit.streams.test_deadlines import HOUR, schedule


def test_preview_counts_like_the_fan_out_and_explains_a_contact() -> None:
    settings = Settings.from_env({"BOOSTER_PARTITIONS": "2"})
    recipients, contacts, campaigns = MemoryTable("recipients"), MemoryTable("contacts"), CampaignStates(MemoryTable())
    deadline = int(time.time() * 1000) + HOUR
    delivered = pack_recipient(RecipientState(sent_at=1, messages=("m",), reports=(("m", 2, False),)))
    people = {"eligible": delivered, "waiting": pack_recipient(RecipientState(sent_at=1)),
              "deleted": delivered, "stranger": pack_recipient(RecipientState(opened_at=3))}  # fmt: skip
    for contact, row in people.items():
        p = contact_partition(contact, 2)
        recipients.partition(p).write({recipient_key("c1", contact): row})
        campaigns.put("c1", p, CampaignPartition(schedule=schedule(deadline)))
    contacts.partition(contact_partition("deleted", 2)).write({b"deleted": pack_contact(ContactState(deleted_at=5))})
    web = Web(
        settings=settings, campaigns=campaigns, recipients=recipients, contacts=contacts,
        sent_history=MemoryTable("sent-history"), gate=Gate(),  # type: ignore[arg-type]
        metrics=Metrics(), active_partitions=lambda: [0, 1], contract_name=str,
        own_url=lambda: "http://me", other_urls=set,
    )  # fmt: skip
    out = web.audience_local("c1", "deleted")
    assert (out["scheduled"], out["audience"], out["recipients"]) == (True, 1, 3)
    assert out["excluded"]["WAITING"] == 1 and out["excluded"]["DELETED"] == 1
    assert out["contact"]["in_audience"] is False and "DELETED" in out["contact"]["why"]
    assert web.audience_local("other", None)["scheduled"] is False


def test_preview_leaves_out_and_explains_a_contact_the_frequency_cap_stops() -> None:
    settings = Settings.from_env({"BOOSTER_PARTITIONS": "1"})
    recipients, contacts, campaigns = MemoryTable("recipients"), MemoryTable("contacts"), CampaignStates(MemoryTable())
    history = MemoryTable("sent-history")
    deadline = int(time.time() * 1000) + HOUR
    delivered = pack_recipient(RecipientState(sent_at=1, messages=("m",), reports=(("m", 2, False),)))
    recipients.partition(0).write({recipient_key("c1", c): delivered for c in ("fresh", "boosted")})
    capped_schedule = replace(schedule(deadline), frequency_cap=FrequencyCap(1, 24 * HOUR))
    campaigns.put("c1", 0, CampaignPartition(schedule=capped_schedule))
    add_sent(history.partition(0), {b"boosted": [(deadline - HOUR, "other:booster")]}, deadline)
    web = Web(
        settings=settings, campaigns=campaigns, recipients=recipients, contacts=contacts, sent_history=history,
        gate=Gate(), metrics=Metrics(), active_partitions=lambda: [0], contract_name=str,  # type: ignore[arg-type]
        own_url=lambda: "http://me", other_urls=set,
    )  # fmt: skip
    out = web.audience_local("c1", "boosted")
    assert (out["audience"], out["excluded"]["FREQUENCY_CAP"]) == (1, 1)
    assert out["contact"]["reason"] == "FREQUENCY_CAP" and out["contact"]["in_audience"] is False
    assert "allows 1 booster(s) per 24 h and it got other:booster (deadline" in out["contact"]["why"]
    assert web.audience_local("c1", "fresh")["contact"]["in_audience"] is True


class Request:
    def __init__(self, authorization: str | None = None) -> None:
        self.headers = {} if authorization is None else {"Authorization": authorization}


def test_the_preview_beyond_loopback_needs_the_bearer_token() -> None:
    token = "t" * 24

    def web(**env: str) -> Web:
        return Web(
            settings=Settings.from_env(env), campaigns=CampaignStates(MemoryTable()), recipients=MemoryTable(),
            contacts=MemoryTable(), sent_history=MemoryTable(), gate=Gate(),  # type: ignore[arg-type]
            metrics=Metrics(), active_partitions=list, contract_name=str, own_url=lambda: "", other_urls=set,
        )  # fmt: skip

    assert web().authorized(Request())  # loopback, no token: as before
    far = web(BOOSTER_WEB_BIND="0.0.0.0", BOOSTER_WEB_TOKEN=token)
    assert far.authorized(Request(f"Bearer {token}")) and far.authorized(Request(f"bearer {token}"))
    for refused in (None, "", f"Basic {token}", f"Bearer {token}x", "Bearer ", f"Bearer {token[:-1]}"):
        assert not far.authorized(Request(refused))
