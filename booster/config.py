"""Settings from BOOSTER_* environment variables, with defaults that work on one machine."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from booster.errors import ConfigError

DEFAULTS: dict[str, str] = {
    "BOOSTER_BROKER": "127.0.0.1:9092",
    "BOOSTER_KAFKA_PORT": "9092",
    "BOOSTER_TOPIC_PREFIX": "",
    "BOOSTER_PARTITIONS": "4",
    "BOOSTER_ALLOWED_LATENESS_SECONDS": "5",
    "BOOSTER_STORE": "rocksdb://",
    "BOOSTER_APP_ID": "booster",
    "BOOSTER_HOME": str(Path.home() / ".cache" / "booster"),
    "BOOSTER_WEB_PORT": "6066",
    "BOOSTER_TICK_INTERVAL_SECONDS": "1.0",
    "BOOSTER_FANOUT_CHUNK": "5000",
    "BOOSTER_SESSION_TIMEOUT_SECONDS": "10",
    "BOOSTER_LAUNCH_STALENESS_SECONDS": "3600",
    "BOOSTER_RETRY_SECONDS": "120",
    "BOOSTER_REQUEST_TIMEOUT_SECONDS": "40",
    "BOOSTER_AUDIENCE_RETENTION_DAYS": "90",
    "BOOSTER_DECISION_RETENTION_DAYS": "30",
    "BOOSTER_CONTACT_RETENTION_DAYS": "0",
    "BOOSTER_SWEEP_INTERVAL_SECONDS": "600",
    "BOOSTER_TEST_CLOCK": "",
}

DOCS: dict[str, str] = {
    "BOOSTER_BROKER": "Kafka bootstrap servers the CLI and workers connect to.",
    "BOOSTER_KAFKA_PORT": "Port of the local broker started by `booster kafka start` (controller: port+1).",
    "BOOSTER_TOPIC_PREFIX": "Prefix for every topic name, for shared clusters (e.g. `staging.`).",
    "BOOSTER_PARTITIONS": "Partition count of every topic `booster topics create` makes.",
    "BOOSTER_ALLOWED_LATENESS_SECONDS": "How long after a deadline an excluding event may still arrive.",
    "BOOSTER_STORE": "Faust table store: `rocksdb://` (default) or `memory://` for experiments.",
    "BOOSTER_APP_ID": "Faust app id: the consumer group and the prefix of changelog topics.",
    "BOOSTER_HOME": "Where the broker's jars, its log directory and workers' state live.",
    "BOOSTER_WEB_PORT": "The worker's web port (Faust's web server).",
    "BOOSTER_TICK_INTERVAL_SECONDS": "How often a worker looks for due deadlines.",
    "BOOSTER_FANOUT_CHUNK": "Commands per fan-out transaction.",
    "BOOSTER_SESSION_TIMEOUT_SECONDS": "How soon the group notices a dead worker and moves its partitions.",
    "BOOSTER_LAUNCH_STALENESS_SECONDS": "A launch decided later than this after its deadline is CANCELLED (stale).",
    "BOOSTER_RETRY_SECONDS": "How long a worker retries a write the broker does not take before it exits with 75 "
    "(to be restarted by its supervisor) instead of acknowledging the record.",
    "BOOSTER_REQUEST_TIMEOUT_SECONDS": "How long the worker's changelog and fan-out producers wait for the broker "
    "before a write fails (and is retried).",
    "BOOSTER_AUDIENCE_RETENTION_DAYS": "How long booster.audience keeps each outcome for the campaign report "
    "(the topic's retention.ms, set when `booster topics create` makes it); the frequency cap's history and the "
    "uplift measurement read it back, so keep it above their longest windows (30 days after a deadline).",
    "BOOSTER_DECISION_RETENTION_DAYS": "How long after its deadline a booster's launch decision and final-report "
    "marker are kept, so that a replayed launch or summary is recognised (at least 8: the longest window).",
    "BOOSTER_CONTACT_RETENTION_DAYS": "A contact's unsubscribes and blocks are forgotten after this long without "
    "a new fact about the contact (0: kept for ever); a deleted contact's row goes 8 days after the deletion.",
    "BOOSTER_SWEEP_INTERVAL_SECONDS": "How often a worker removes the state that outlived its retention.",
    "BOOSTER_TEST_CLOCK": "Soak tests only: `SPEED@ANCHOR_MS` makes the worker's clock run SPEED times faster "
    "from the wall-clock instant ANCHOR_MS. Empty (the default): the real clock.",
}


def _int(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer; set it to a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below {minimum}; set it to {minimum} or more")
    return value


def _float(name: str, raw: str, minimum: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; set it to a number of seconds") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below {minimum}; set it to {minimum} or more")
    return value


def _test_clock(raw: str) -> tuple[float, int]:
    """(speed, anchor) of BOOSTER_TEST_CLOCK; (1, 0), the real clock, when it is empty."""
    if not raw:
        return 1.0, 0
    speed, at, anchor = raw.partition("@")
    try:
        if at and float(speed) > 0:
            return float(speed), int(anchor)
    except ValueError:
        pass
    raise ConfigError(
        f"BOOSTER_TEST_CLOCK={raw!r} is not SPEED@ANCHOR_MS (for example 3600@1767225600000, speed above 0); "
        "leave it empty outside soak tests"
    )


@dataclass(frozen=True)
class Settings:
    broker: str
    kafka_port: int
    topic_prefix: str
    partitions: int
    allowed_lateness_ms: int
    store: str
    app_id: str
    home: Path
    web_port: int
    tick_interval: float
    fanout_chunk: int
    session_timeout: float
    launch_staleness_ms: int
    retry_seconds: float = 120.0
    request_timeout: float = 40.0
    audience_retention_ms: int = 90 * 86_400_000
    decision_retention_ms: int = 30 * 86_400_000
    contact_retention_ms: int = 0  # 0: kept for ever
    sweep_interval: float = 600.0
    clock_speed: float = 1.0
    clock_anchor_ms: int = 0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        source = dict(os.environ if env is None else env)

        def get(name: str) -> str:
            return source.get(name) or DEFAULTS[name]

        lateness = _float("BOOSTER_ALLOWED_LATENESS_SECONDS", get("BOOSTER_ALLOWED_LATENESS_SECONDS"), 0.0)
        clock_speed, clock_anchor_ms = _test_clock(source.get("BOOSTER_TEST_CLOCK", ""))
        return cls(
            broker=get("BOOSTER_BROKER"),
            kafka_port=_int("BOOSTER_KAFKA_PORT", get("BOOSTER_KAFKA_PORT"), 1),
            topic_prefix=source.get("BOOSTER_TOPIC_PREFIX", DEFAULTS["BOOSTER_TOPIC_PREFIX"]),
            partitions=_int("BOOSTER_PARTITIONS", get("BOOSTER_PARTITIONS"), 1),
            allowed_lateness_ms=int(lateness * 1000),
            store=get("BOOSTER_STORE"),
            app_id=get("BOOSTER_APP_ID"),
            home=Path(get("BOOSTER_HOME")).expanduser(),
            web_port=_int("BOOSTER_WEB_PORT", get("BOOSTER_WEB_PORT"), 1),
            tick_interval=_float("BOOSTER_TICK_INTERVAL_SECONDS", get("BOOSTER_TICK_INTERVAL_SECONDS"), 0.05),
            fanout_chunk=_int("BOOSTER_FANOUT_CHUNK", get("BOOSTER_FANOUT_CHUNK"), 1),
            session_timeout=_float("BOOSTER_SESSION_TIMEOUT_SECONDS", get("BOOSTER_SESSION_TIMEOUT_SECONDS"), 6.0),
            launch_staleness_ms=int(
                _float("BOOSTER_LAUNCH_STALENESS_SECONDS", get("BOOSTER_LAUNCH_STALENESS_SECONDS"), 0.0) * 1000
            ),
            retry_seconds=_float("BOOSTER_RETRY_SECONDS", get("BOOSTER_RETRY_SECONDS"), 0.0),
            request_timeout=_float("BOOSTER_REQUEST_TIMEOUT_SECONDS", get("BOOSTER_REQUEST_TIMEOUT_SECONDS"), 1.0),
            audience_retention_ms=int(
                _float("BOOSTER_AUDIENCE_RETENTION_DAYS", get("BOOSTER_AUDIENCE_RETENTION_DAYS"), 1.0) * 86_400_000
            ),
            decision_retention_ms=int(
                _float("BOOSTER_DECISION_RETENTION_DAYS", get("BOOSTER_DECISION_RETENTION_DAYS"), 8.0) * 86_400_000
            ),
            contact_retention_ms=int(
                _float("BOOSTER_CONTACT_RETENTION_DAYS", get("BOOSTER_CONTACT_RETENTION_DAYS"), 0.0) * 86_400_000
            ),
            sweep_interval=_float("BOOSTER_SWEEP_INTERVAL_SECONDS", get("BOOSTER_SWEEP_INTERVAL_SECONDS"), 0.1),
            clock_speed=clock_speed,
            clock_anchor_ms=clock_anchor_ms,
        )

    @property
    def group_id(self) -> str:
        """The workers' Faust app id with the prefix: their consumer group and changelog prefix."""
        return f"{self.topic_prefix}{self.app_id}"

    def topic(self, name: str) -> str:
        """The real topic name of a contract topic, with the configured prefix."""
        return f"{self.topic_prefix}{name}"

    def changelog_topic(self, table: str) -> str:
        """The real name of a worker table's changelog topic (Faust's `<app id>-<table>-changelog`)."""
        return f"{self.group_id}-{table}-changelog"
