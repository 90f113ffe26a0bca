"""The operators' commands and the metrics endpoint against a running worker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.ops import admin
from booster.testing.demo import publish_scenario
from booster.testing.scenario import HOUR_MS, Scenario, build, launched_for_deadline
from booster.testing.workers import WorkerProcess
from tests.conftest import fresh_settings
from tests.helpers import booster, decisions, reports_by_campaign, scrape_metrics, wait_for


def total(values: dict[str, float], name: str) -> float:
    return sum(v for k, v in values.items() if k == name or k.startswith(name + "{"))


class Env:
    def __init__(self, settings: Settings, worker: WorkerProcess, sc: Scenario, later: Scenario) -> None:
        self.settings, self.worker, self.sc, self.later = settings, worker, sc, later

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.worker.port}"


@pytest.fixture(scope="module")
def env(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = fresh_settings()
    asyncio.run(admin.create(settings))
    worker = WorkerProcess(settings, tmp_path_factory.mktemp("ops") / "w").start()
    tag = uuid.uuid4().hex[:6]
    now = int(time.time() * 1000)
    # one booster that fires during the module (already due: its launch comes after its facts), one
    # whose deadline is an hour away (for the preview)
    sc = build(f"ops-{tag}", 140, launched_at=launched_for_deadline(now - 60_000), name="Ops sale")
    # every fact of `later` is in the past, its deadline about an hour ahead
    later = build(
        f"later-{tag}", 140, launched_at=now - 2 * HOUR_MS - 60_000, delay_seconds=3 * 3600, name="Later sale"
    )
    before = scrape_metrics(worker.port)
    asyncio.run(publish_scenario(settings, sc))
    asyncio.run(publish_scenario(settings, later))
    e = Env(settings, worker, sc, later)
    e.before = before  # type: ignore[attr-defined]
    yield e
    worker.stop()


def test_boosters_lists_status_deadline_and_time_left(env: Env) -> None:
    wait_for("both boosters scheduled", lambda: len(reports_by_campaign(env.settings)) >= 2, 60)
    result = booster(env.settings, "boosters", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["campaign_id"]: r for r in json.loads(result.stdout)}
    later = rows[env.later.campaign_id]
    assert later["status"] == "SCHEDULED" and later["deadline"] == env.later.deadline
    assert 3_500_000 < later["time_left_ms"] <= 3_600_000
    assert later["when"].startswith("in ")
    table = booster(env.settings, "boosters")
    assert env.later.campaign_id in table.stdout and "Booster for Later sale" in table.stdout
    wait_for("the first booster to be sent", lambda: _final(env), 120)
    only_sent = json.loads(booster(env.settings, "boosters", "--status", "SENT", "--json").stdout)
    assert [r["campaign_id"] for r in only_sent] == [env.sc.campaign_id]


def test_audience_preview_counts_every_reason_before_the_deadline(env: Env) -> None:
    def ready() -> dict[str, Any] | None:
        r = booster(env.settings, "audience", env.later.campaign_id, "--worker", env.url, "--json")
        if r.returncode != 0:
            return None
        out: dict[str, Any] = json.loads(r.stdout)
        return out if out["recipients"] == len(env.later.roles) else None

    preview = wait_for("the preview to see every recipient", ready, 60)
    assert preview["audience"] == len(env.later.expected_audience)
    assert preview["excluded"] == {k: env.later.expected_excluded.get(k, 0) for k in preview["excluded"]}
    assert sorted(preview["partitions"]) == list(range(env.settings.partitions))
    assert preview["scanner_clicked"] == env.later.expected_scanner_clicked > 0
    text = booster(env.settings, "audience", env.later.campaign_id, "--worker", env.url)
    assert f"would reach {len(env.later.expected_audience)} of {len(env.later.roles)}" in text.stdout
    assert f"of them {env.later.expected_scanner_clicked} whose only clicks were a link scanner's" in text.stdout


@pytest.mark.parametrize(
    ("role", "words"),
    [
        ("eligible", "eligible"),
        ("clicked", "excluded, CLICKED"),
        ("opened", "excluded, OPENED"),
        ("deleted", "excluded, DELETED"),
        ("blocked", "excluded, BLOCKED"),
        ("unblocked", "eligible"),
        ("unsub_channel", "excluded, UNSUBSCRIBED"),
        ("unsub_all", "unsubscribed from every channel"),
        ("unsub_other", "eligible"),
        ("waiting", "excluded, WAITING"),
        ("error", "excluded, ERROR"),
        ("scanner_click", "was a link scanner's, within 60 s of delivery"),
        ("scanner_then_click", "(after a link scanner's)"),
        ("bot_click", "was a link scanner's, flagged bot"),
    ],
)
def test_audience_explains_one_contact_per_reason(env: Env, role: str, words: str) -> None:
    contact = next(c for c, r in env.later.roles.items() if r == role)

    def explained() -> dict[str, Any] | None:
        r = booster(
            env.settings, "audience", env.later.campaign_id, "--contact", contact, "--worker", env.url, "--json"
        )
        out = json.loads(r.stdout) if r.returncode == 0 else None
        return out if out and out["contact"] and out["recipients"] == len(env.later.roles) else None

    c = wait_for(f"an explanation for {contact}", explained, 60)["contact"]
    assert words in c["why"], c
    assert c["in_audience"] == (contact in env.later.expected_audience)


def test_audience_of_an_unknown_campaign_exits_4(env: Env) -> None:
    r = booster(env.settings, "audience", "no-such-campaign", "--worker", env.url)
    assert r.returncode == 4 and "no scheduled booster" in r.stdout


def test_audience_without_a_worker_is_a_clear_error(env: Env) -> None:
    r = booster(env.settings, "audience", env.later.campaign_id, "--worker", "http://127.0.0.1:9")
    assert r.returncode == 1 and "no worker answered" in r.stderr


def test_lag_shows_every_partition_and_reaches_zero(env: Env) -> None:
    def caught_up() -> dict[str, Any] | None:
        r = booster(env.settings, "lag", "--json")
        out: dict[str, Any] = json.loads(r.stdout)
        behind = {topic: n for topic, n in out["by_topic"].items() if n}
        # booster.summaries is written in transactions: each one's commit marker takes an offset past the
        # last record the workers commit, so it shows one per fired partition until the lag view accounts
        # for markers (the transactional-producer work of "Correct behind real infrastructure")
        markers = behind.pop("booster.summaries", 0)
        return out if not behind and markers <= env.settings.partitions else None

    report = wait_for("zero lag", caught_up, 60)
    assert {(p["topic"], p["partition"]) for p in report["partitions"]} >= {
        ("message.sent", p) for p in range(env.settings.partitions)
    }
    assert sum(p["end_offset"] for p in report["partitions"] if p["topic"] == "message.sent") == len(
        env.sc.roles
    ) + len(env.later.roles)
    text = booster(env.settings, "lag")
    assert "record(s) behind" in text.stdout and "message.sent" in text.stdout


def test_metrics_move_during_a_scenario(env: Env) -> None:
    wait_for("the first booster to be sent", lambda: _final(env), 120)
    after = scrape_metrics(env.worker.port)
    before: dict[str, float] = env.before  # type: ignore[attr-defined]
    events = sum(len(v) for v in env.sc.records.values()) + sum(len(v) for v in env.later.records.values())
    assert total(after, "booster_events_total") - total(before, "booster_events_total") >= events
    assert after['booster_boosters_total{status="scheduled"}'] >= 2
    assert after['booster_boosters_total{status="sent"}'] >= 1
    assert after["booster_commands_total"] == len(env.sc.expected_audience)
    assert after["booster_fire_delay_seconds_count"] >= 1
    assert any(k.startswith("booster_partition_lag{") for k in after)
    assert after['booster_table_keys{table="recipients"}'] > 0


def test_a_live_worker_s_metrics_pass_promtool(env: Env) -> None:
    wait_for("the first booster to be sent", lambda: _final(env), 120)
    text = urllib.request.urlopen(f"http://127.0.0.1:{env.worker.port}/metrics", timeout=30).read().decode()
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for family in ("booster_fire_delay_seconds_bucket", "booster_fanout_duration_seconds_count"):
        assert family in text, family  # real histograms
    for family in ("process_resident_memory_bytes", "faust_messages_received_total", "faust_assign_latency"):
        assert family in text, family  # the process's and Faust's own sensors


def test_decision_log_lines_are_json_with_the_campaign(env: Env) -> None:
    wait_for("the first booster to be sent", lambda: _final(env), 120)
    mine = [e for e in decisions(env.worker.log_text()) if e["campaign_id"] == env.sc.campaign_id]
    assert {"scheduled", "fired-partition", "sent"} <= {e["event"] for e in mine}


def _final(env: Env) -> bool:
    reports = reports_by_campaign(env.settings).get(env.sc.campaign_id, [])
    return any(r["status"] == "SENT" for r, _ in reports)


def test_dead_letter_list_on_an_empty_topic(env: Env, tmp_path: Path) -> None:
    r = booster(env.settings, "dead-letter", "list")
    assert r.returncode == 0 and json.loads(r.stderr.splitlines()[-1])["total"] == 0


# -- R16: after firing, the audience is answered from booster.audience --------------------------------


def test_a_fired_booster_s_audience_counts_and_explains_each_contact_from_its_outcomes(env: Env) -> None:
    wait_for("the first booster to be sent", lambda: _final(env), 120)
    sc = env.sc
    summary = booster(env.settings, "audience", sc.campaign_id, "--json")
    assert summary.returncode == 0, summary.stderr
    fired = json.loads(summary.stdout)
    assert (fired["status"], fired["audience"]) == ("SENT", len(sc.expected_audience))
    assert {k: v for k, v in fired["excluded"].items() if v} == dict(sc.expected_excluded)
    assert fired["boosted_despite_machine_open"] == sc.expected_machine_opened > 0
    plain = booster(env.settings, "audience", sc.campaign_id).stdout
    assert f"of them {sc.expected_machine_opened} whose only opens were machine opens" in plain
    assert fired["boosted_despite_scanner_click"] == sc.expected_scanner_clicked > 0
    assert f"of them {sc.expected_scanner_clicked} whose only clicks were a link scanner's" in plain
    for role in ("eligible", "clicked", "deleted", "unsub_all", "waiting"):
        contact = next(c for c, r in sc.roles.items() if r == role)
        r = booster(env.settings, "audience", sc.campaign_id, "--contact", contact, "--json")
        outcome = json.loads(r.stdout)["contact"]
        assert outcome["outcome"] == sc.expected_outcome[contact], (role, outcome)
        assert (outcome["command_id"] is not None) == (outcome["outcome"] == "INCLUDED")
        text = booster(env.settings, "audience", sc.campaign_id, "--contact", contact).stdout
        assert f"contact {contact}: " + ("INCLUDED" if role == "eligible" else "left out") in text
    stranger = booster(env.settings, "audience", sc.campaign_id, "--contact", "nobody-" + sc.campaign_id)
    assert stranger.returncode == 0 and "not a recipient of the campaign" in stranger.stdout


def test_a_fired_booster_s_audience_exports_as_csv_one_row_per_recipient(env: Env, tmp_path: Path) -> None:
    import csv

    wait_for("the first booster to be sent", lambda: _final(env), 120)
    target = tmp_path / "audience.csv"
    r = booster(env.settings, "audience", env.sc.campaign_id, "--export", str(target))
    assert r.returncode == 0, r.stderr
    with open(target, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["contact_id"]: row["outcome"] for row in rows} == env.sc.expected_outcome
    assert len(rows) == len(env.sc.roles)
    assert all(row["campaign_id"] == env.sc.campaign_id and row["deadline"].endswith("Z") for row in rows)
    assert f"{len(rows)} recipient(s) of {env.sc.campaign_id}" in r.stderr
    assert not list(tmp_path.glob("*.partial"))


def test_an_audience_export_before_the_booster_is_sent_exits_4(env: Env, tmp_path: Path) -> None:
    r = booster(env.settings, "audience", env.later.campaign_id, "--export", str(tmp_path / "x.csv"))
    assert r.returncode == 4 and "no booster that fired yet" in r.stderr
    assert not (tmp_path / "x.csv").exists()


def test_the_audience_of_a_booster_that_never_fired_says_what_became_of_it(env: Env) -> None:
    from booster.ops.clients import publish_lines

    rejected = {**env.later.launch_record(), "campaign_id": f"rejected-{env.later.campaign_id}"}
    rejected["booster"] = {**rejected["booster"], "delay_seconds": 3600}  # under the 2-hour minimum
    asyncio.run(publish_lines(env.settings, "campaign.launched", [json.dumps(rejected)]))
    wait_for("the rejection", lambda: reports_by_campaign(env.settings).get(rejected["campaign_id"]), 60)
    for extra in ([], ["--export", "-"]):
        r = booster(env.settings, "audience", rejected["campaign_id"], *extra)
        assert r.returncode == 4 and "was REJECTED (DELAY_OUT_OF_RANGE): it never fired" in r.stderr
