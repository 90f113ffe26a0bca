"""The worker's web pages: Prometheus metrics, and the operators' audience preview (who a booster
would reach if it fired now, gathered from every worker's partitions)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from booster.config import Settings
from booster.processors.audience import Mark, Tally, explain_deferral, full_exclusions
from booster.processors.boosters import Schedule
from booster.processors.campaigns import called_off
from booster.processors.frequency import capped, explain_cap
from booster.processors.recipients import Exclusion, explain
from booster.processors.uplift import holdout_of
from booster.schemas.catalog import CONTACT_INPUT_TOPICS
from booster.streams.audience import decide_rows, facts_of
from booster.streams.campaigns import CampaignStates
from booster.streams.gate import LagGate
from booster.streams.history import history_of
from booster.streams.metrics import CONTENT_TYPE, Metrics
from booster.streams.records import contact_partition, now_ms
from booster.streams.store import Table

log = logging.getLogger("booster.worker")


class Web:
    def __init__(
        self,
        *,
        settings: Settings,
        campaigns: CampaignStates,
        recipients: Table,
        contacts: Table,
        sent_history: Table,
        gate: LagGate,
        metrics: Metrics,
        active_partitions: Callable[[], list[int]],
        contract_name: Callable[[str], str],
        own_url: Callable[[], str],
        other_urls: Callable[[], set[str]],
        ready: Callable[[], bool] = lambda: True,
        stalled: Callable[[], str | None] = lambda: None,
        lane_queued: Callable[[], int] = lambda: 0,
    ) -> None:
        self.settings = settings
        self.campaigns = campaigns
        self.recipients = recipients
        self.contacts = contacts
        self.sent_history = sent_history
        self.gate = gate
        self.metrics = metrics
        self.active_partitions = active_partitions
        self.contract_name = contract_name
        self.own_url = own_url
        self.other_urls = other_urls
        self.ready = ready  # every assigned partition's state restored, agents running
        self.stalled = stalled  # why the worker is not live (an orchestrator should restart it), or None
        self.lane_queued = lane_queued

    def register(self, app: Any) -> None:
        web = self

        # Faust binds a page handler to its view class: a plain function, not a bound method
        async def metrics_page(view: Any, request: Any) -> Any:
            if not web.settings.web.metrics_open and not web.authorized(request):
                return web.refuse(view)
            return await web.metrics_response(view)

        async def audience_page(view: Any, request: Any, campaign_id: str) -> Any:
            if not web.authorized(request):
                return web.refuse(view)
            contact = request.query.get("contact") or None
            local = web.audience_local(campaign_id, contact)
            if request.query.get("scope") == "local":
                return view.json(local)
            return view.json(await web.audience_cluster(campaign_id, contact, local))

        # probes for an orchestrator (docs/operations.md, "Deploying"): no contact data, so no token
        async def ready_page(view: Any, request: Any) -> Any:
            if web.ready():
                return view.text("ready\n")
            return view.text("restoring state or rebalancing\n", status=503)

        async def live_page(view: Any, request: Any) -> Any:
            stall = web.stalled()
            if stall is None:
                return view.text("live\n")
            return view.text(f"{stall}\n", status=503)

        app.page("/ready")(ready_page)
        app.page("/live")(live_page)
        app.page("/metrics")(metrics_page)
        app.page("/booster/audience/{campaign_id}/")(audience_page)

    def authorized(self, request: Any) -> bool:
        """Whether a request may read contact-level pages: always on loopback without a token; otherwise
        it carries `Authorization: Bearer <BOOSTER_WEB_TOKEN>` (compared in constant time)."""
        access = self.settings.web
        if not access.needs_token:
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), access.token.encode())

    def refuse(self, view: Any) -> Any:
        log.warning("web: refused a request without the bearer token (BOOSTER_WEB_TOKEN)")
        return view.error(
            401, "send the worker's BOOSTER_WEB_TOKEN as `Authorization: Bearer <token>`",
            headers={"WWW-Authenticate": 'Bearer realm="booster"'},
        )  # fmt: skip

    def _bearer(self) -> dict[str, str]:
        token = self.settings.web.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    # -- metrics -----------------------------------------------------------------------------------

    async def metrics_response(self, view: Any) -> Any:
        try:
            await self.refresh_gauges()
        except KafkaError as exc:  # the counters are still worth serving
            log.warning("could not measure lag for /metrics: %s", exc)
        return view.text(self.metrics.render(), content_type=CONTENT_TYPE)

    async def refresh_gauges(self) -> None:
        s = self.settings
        partitions = self.active_partitions()
        tps = [TopicPartition(s.topic(t), p) for p in partitions for t in CONTACT_INPUT_TOPICS]
        lag = await self.gate.lagging(tps) if tps else {}
        self.metrics.clear("booster_partition_lag")
        for tp in tps:
            self.metrics.set(
                "booster_partition_lag", lag.get(tp, 0), topic=self.contract_name(tp.topic), partition=tp.partition
            )
        self.metrics.set("booster_lane_queued_fetches", self.lane_queued())
        for table in (self.recipients, self.contacts, self.campaigns.table):
            self.metrics.set("booster_table_keys", table.estimated_keys(partitions), table=table.name)

    # -- the operators' preview --------------------------------------------------------------------

    def audience_local(self, campaign_id: str, contact_id: str | None) -> dict[str, Any]:
        """Who would get the booster if it fired now, over this worker's active partitions."""
        now = now_ms()
        partitions = self.active_partitions()
        states = {p: self.campaigns.get(campaign_id, p) for p in partitions}
        schedules = [st.schedule for st in states.values() if st is not None and st.schedule is not None]
        schedule = schedules[0] if schedules else None
        out: dict[str, Any] = {
            "campaign_id": campaign_id,
            "workers": [self.own_url()],
            "partitions": partitions,
            "scheduled": schedule is not None,
            "deadline": None if schedule is None else schedule.deadline,
            "fired_partitions": sorted(p for p, st in states.items() if st is not None and st.fired),
            "cancelled": any(st is not None and called_off(st) is not None for st in states.values()),
            "evaluated_at": now,
            "audience": 0,
            "machine_opened": 0,  # of the audience: recipients whose only opens were machine opens
            "scanner_clicked": 0,  # of the audience: recipients whose only clicks were a link scanner's
            "deferred": 0,  # of the audience: commands that would wait for the end of the quiet hours
            "recipients": 0,
            "excluded": full_exclusions({}),
            "contact": None,
        }
        if schedule is None:
            return out
        at = min(now, schedule.deadline)
        out["evaluated_at"] = at
        tally = Tally()
        for p in partitions:
            recipients, contacts = self.recipients.partition(p), self.contacts.partition(p)
            # quiet hours as if it fired at its deadline
            history = self.sent_history.partition(p)
            rows = decide_rows(recipients, contacts, schedule, at, issued_at=schedule.deadline, history=history)
            for _, decision, marks, _ in rows:
                tally = tally.count(decision, marks=marks)
            if contact_id is not None and p == contact_partition(contact_id, self.settings.partitions):
                out["contact"] = {"contact_id": contact_id, "partition": p}
                out["contact"].update(self._explain(schedule, p, contact_id, at))
        out["audience"] = tally.audience
        out["machine_opened"] = tally.marked(Mark.MACHINE_OPEN)
        out["scanner_clicked"] = tally.marked(Mark.SCANNER_CLICK)
        out["deferred"] = tally.marked(Mark.DEFERRED)
        out["recipients"] = tally.recipients
        out["excluded"] = full_exclusions(tally.excluded)
        return out

    def _explain(self, schedule: Schedule, p: int, contact_id: str, at: int) -> dict[str, Any]:
        """One contact's place in the audience as of `at`, in words: the exclusions of R11, then the
        frequency cap, then the holdout, then whether its command would wait for the end of the quiet
        hours."""
        recipients, contacts = self.recipients.partition(p), self.contacts.partition(p)
        recipient, contact = facts_of(recipients, contacts, schedule.campaign_id, contact_id)
        reason, included, why = explain(
            recipient, contact, campaign_id=schedule.campaign_id, channel=schedule.channel,
            criterion=schedule.criterion, at=at, count_machine_opens=schedule.count_machine_opens,
            scanner_window_ms=schedule.scanner_window_seconds * 1000, campaign_channel=schedule.campaign_channel,
        )  # fmt: skip
        cap = schedule.frequency_cap
        if included and cap is not None:
            sent = history_of(self.sent_history.partition(p), contact_id.encode())
            if capped(sent, schedule.booster_id, schedule.deadline, cap):
                reason, included = Exclusion.FREQUENCY_CAP, False
                why = explain_cap(sent, schedule.booster_id, schedule.deadline, cap)
        if (
            included
            and schedule.holdout_percent
            and holdout_of(schedule.booster_id, schedule.holdout_percent)(contact_id)
        ):
            reason, included = Exclusion.HOLDOUT, False
            why = (
                f"held out: eligible, and in the booster's {schedule.holdout_percent} % holdout, the control group "
                "of its uplift measurement (no command)"
            )
        if included:
            why += explain_deferral(contact, schedule.quiet_hours, schedule.deadline)
        return {"in_audience": included, "reason": None if reason is None else reason.value, "why": why}

    async def audience_cluster(self, campaign_id: str, contact_id: str | None, local: dict[str, Any]) -> dict[str, Any]:
        """The local preview merged with every other worker's (each owns some partitions)."""
        import aiohttp

        merged = dict(local)
        params = {"scope": "local", **({"contact": contact_id} if contact_id else {})}
        # every worker of a group has the same settings: the same token opens their pages
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout, headers=self._bearer()) as session:
            for host in sorted(self.other_urls()):
                async with session.get(f"{host}/booster/audience/{campaign_id}/", params=params) as response:
                    part = await response.json()
                merged["workers"] = merged["workers"] + part["workers"]
                merged["partitions"] = sorted(merged["partitions"] + part["partitions"])
                merged["fired_partitions"] = sorted(merged["fired_partitions"] + part["fired_partitions"])
                merged["cancelled"] = merged["cancelled"] or part["cancelled"]
                if not merged["scheduled"] and part["scheduled"]:
                    merged.update(scheduled=True, deadline=part["deadline"], evaluated_at=part["evaluated_at"])
                merged["audience"] += part["audience"]
                merged["machine_opened"] += part.get("machine_opened", 0)  # older workers do not count them
                merged["scanner_clicked"] += part.get("scanner_clicked", 0)
                merged["deferred"] += part.get("deferred", 0)
                merged["recipients"] += part["recipients"]
                merged["excluded"] = {k: v + part["excluded"].get(k, 0) for k, v in merged["excluded"].items()}
                if part["contact"] is not None:
                    merged["contact"] = part["contact"]
        return merged
