"""Notices: what an account's users must be told (R14), one record each on booster.notices, keyed by
account, with a decision log line and a counter per kind.

Records go out at least once, like every record the agents send: a worker that restarts before its
input is committed sends the same notice again, with the same notice_id (see processors/notices.py).
"""

from __future__ import annotations

from booster.processors.notices import Notice
from booster.schemas import codec
from booster.streams.metrics import Metrics
from booster.streams.records import Topic, log_decision
from booster.streams.wire import notice_record


class Notices:
    def __init__(self, topic: Topic, metrics: Metrics) -> None:
        self.topic = topic
        self.metrics = metrics

    async def send(self, notice: Notice | None) -> None:
        """Send a notice; None (nothing to tell) sends nothing."""
        if notice is None:
            return
        value = codec().encode("booster.notices", notice_record(notice))
        await self.topic.send(key=notice.account_id.encode(), value=value)
        self.metrics.inc("booster_notices_total", kind=notice.kind.value.lower())
        log_decision(
            "notice",
            notice.campaign_id,
            kind=notice.kind.value,
            reason_code=notice.reason_code.value,
            notice_id=notice.notice_id,
            account_id=notice.account_id,
        )
