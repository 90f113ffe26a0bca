"""Settings from BOOSTER_* environment variables, with defaults that work on one machine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from booster.errors import ConfigError

DEFAULTS: dict[str, str] = {
    "BOOSTER_BROKER": "127.0.0.1:9092",
    "BOOSTER_KAFKA_PORT": "9092",
    "BOOSTER_TOPIC_PREFIX": "",
    "BOOSTER_PARTITIONS": "4",
    "BOOSTER_REPLICATION_FACTOR": "1",
    "BOOSTER_ALLOWED_LATENESS_SECONDS": "5",
    "BOOSTER_STORE": "rocksdb://",
    "BOOSTER_APP_ID": "booster",
    "BOOSTER_HOME": str(Path.home() / ".cache" / "booster"),
    "BOOSTER_WEB_PORT": "6066",
    "BOOSTER_TICK_INTERVAL_SECONDS": "1.0",
    "BOOSTER_FANOUT_CHUNK": "5000",
    "BOOSTER_SESSION_TIMEOUT_SECONDS": "10",
    "BOOSTER_LAUNCH_STALENESS_SECONDS": "3600",
    "BOOSTER_ENGINE_LATENESS_SECONDS": "21600",
    "BOOSTER_OVERDUE_SECONDS": "900",
    "BOOSTER_RETRY_SECONDS": "120",
    "BOOSTER_REQUEST_TIMEOUT_SECONDS": "40",
    "BOOSTER_AUDIENCE_RETENTION_DAYS": "90",
    "BOOSTER_DECISION_RETENTION_DAYS": "30",
    "BOOSTER_CONTACT_RETENTION_DAYS": "0",
    "BOOSTER_SWEEP_INTERVAL_SECONDS": "600",
    "BOOSTER_TEST_CLOCK": "",
    "BOOSTER_TEST_HOLD_INGEST": "",
    "BOOSTER_SECURITY_PROTOCOL": "PLAINTEXT",
    "BOOSTER_SASL_MECHANISM": "SCRAM-SHA-512",
    "BOOSTER_SASL_USERNAME": "",
    "BOOSTER_SASL_PASSWORD": "",
    "BOOSTER_SASL_PASSWORD_FILE": "",
    "BOOSTER_SSL_CA_FILE": "",
    "BOOSTER_SSL_CERT_FILE": "",
    "BOOSTER_SSL_KEY_FILE": "",
    "BOOSTER_SSL_KEY_PASSWORD_FILE": "",
    "BOOSTER_WEB_BIND": "127.0.0.1",
    "BOOSTER_WEB_TOKEN": "",
    "BOOSTER_WEB_TOKEN_FILE": "",
    "BOOSTER_METRICS_AUTH": "open",
    "BOOSTER_MAX_RECORD_BYTES": "1000000",
    "BOOSTER_INGEST_LANE": "batch",
    "BOOSTER_EVENT_LOOP": "uvloop",
    "BOOSTER_GROUP_INSTANCE_ID": "",
    "BOOSTER_BULK_RESTORE": "on",
    "BOOSTER_STANDBY_REPLICAS": "0",
    "BOOSTER_REGISTRY_PORT": "8081",
    "BOOSTER_SCHEMA_REGISTRY_URL": "",
    "BOOSTER_SCHEMA_REGISTRY_USERNAME": "",
    "BOOSTER_SCHEMA_REGISTRY_PASSWORD": "",
    "BOOSTER_SCHEMA_REGISTRY_PASSWORD_FILE": "",
    "BOOSTER_SCHEMA_REGISTRY_TOKEN": "",
    "BOOSTER_SCHEMA_REGISTRY_TOKEN_FILE": "",
}

# never printed: `booster config`, logs and errors say only whether they are set
SECRETS = frozenset(
    {"BOOSTER_SASL_PASSWORD", "BOOSTER_WEB_TOKEN", "BOOSTER_SCHEMA_REGISTRY_PASSWORD", "BOOSTER_SCHEMA_REGISTRY_TOKEN"}
)
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

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
    "BOOSTER_LAUNCH_STALENESS_SECONDS": "A launch that reached Kafka (its record's timestamp) later than this after "
    "its deadline is CANCELLED as stale (STALE_LAUNCH).",
    "BOOSTER_ENGINE_LATENESS_SECONDS": "A launch the workers decide later than this after its deadline (they were "
    "behind) is CANCELLED (ENGINE_LATE), even if it reached Kafka in time.",
    "BOOSTER_OVERDUE_SECONDS": "A booster not fired this long after its deadline plus the allowed lateness, while "
    "the worker's inputs are caught up, is overdue: logged, counted in booster_overdue_deadlines, and /live fails.",
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
    "BOOSTER_TEST_HOLD_INGEST": "Fault tests only: while the file at this path exists, the ingest agent takes no "
    "new batch (the fetches queue up), so a test can make a rebalance meet a full lane.",
    "BOOSTER_TEST_CLOCK": "Soak tests only: `SPEED@ANCHOR_MS` makes the worker's clock run SPEED times faster "
    "from the wall-clock instant ANCHOR_MS. Empty (the default): the real clock.",
    "BOOSTER_SECURITY_PROTOCOL": "How the worker and the CLI talk to Kafka: PLAINTEXT, SSL, SASL_PLAINTEXT or "
    "SASL_SSL.",
    "BOOSTER_SASL_MECHANISM": "SASL mechanism (SASL_* protocols): PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    "BOOSTER_SASL_USERNAME": "SASL user name, the principal `User:<name>` the broker's ACLs name.",
    "BOOSTER_SASL_PASSWORD": "SASL password (secret: never printed). Or BOOSTER_SASL_PASSWORD_FILE.",
    "BOOSTER_SASL_PASSWORD_FILE": "A file holding the SASL password (its first line), e.g. a mounted secret.",
    "BOOSTER_SSL_CA_FILE": "PEM file of the CA(s) that signed the broker's certificate (SSL, SASL_SSL); empty: "
    "the system's trusted CAs.",
    "BOOSTER_SSL_CERT_FILE": "PEM client certificate for mutual TLS (with BOOSTER_SSL_KEY_FILE).",
    "BOOSTER_SSL_KEY_FILE": "PEM private key of the client certificate.",
    "BOOSTER_SSL_KEY_PASSWORD_FILE": "A file holding the password of an encrypted BOOSTER_SSL_KEY_FILE.",
    "BOOSTER_WEB_BIND": "Address the worker's web server listens on; other than 127.0.0.1/localhost, the "
    "audience preview requires BOOSTER_WEB_TOKEN.",
    "BOOSTER_WEB_TOKEN": "Bearer token the audience preview (and /metrics, see BOOSTER_METRICS_AUTH) requires "
    "when the web server is bound beyond loopback (secret: never printed). Or BOOSTER_WEB_TOKEN_FILE.",
    "BOOSTER_WEB_TOKEN_FILE": "A file holding the web token (its first line).",
    "BOOSTER_METRICS_AUTH": "`open`: /metrics needs no token (for a Prometheus scraper); `token`: the same "
    "bearer token as the preview.",
    "BOOSTER_INGEST_LANE": "`batch`: the contact-keyed input partitions' records reach the ingest agent a whole "
    "fetch at a time; `events`: one Faust event each (slower; for comparison).",
    "BOOSTER_EVENT_LOOP": "The worker's event loop: `uvloop` (libuv, faster I/O) or `asyncio` (the standard "
    "library's).",
    "BOOSTER_GROUP_INSTANCE_ID": "Static group membership: a name unique to this worker and kept across its "
    "restarts (a pod's name). A restart within the session timeout then moves no partition; a dead worker "
    "is noticed only after the session timeout. Empty: dynamic membership.",
    "BOOSTER_REPLICATION_FACTOR": "Replicas of every topic `booster topics create` and the worker make (3 on a "
    "production cluster; they get min.insync.replicas one less). Every producer writes with acks=all.",
    "BOOSTER_BULK_RESTORE": "`on`: a worker taking over table partitions reads their changelogs a fetch at a time "
    "into RocksDB before Faust's recovery (which then reads what is left); `off`: Faust's recovery alone "
    "(slower; for comparison).",
    "BOOSTER_STANDBY_REPLICAS": "Copies of each table partition kept up to date by other workers (Faust's standby "
    "replicas): a partition whose worker dies moves to one of them without a restore. Each copy costs its "
    "disk and a changelog reader.",
    "BOOSTER_REGISTRY_PORT": "Port of the local schema registry `booster registry start` runs (Apicurio "
    "Registry; its management port is the next one).",
    "BOOSTER_SCHEMA_REGISTRY_URL": "A Confluent-compatible schema registry (Confluent Schema Registry, Karapace, "
    "or Apicurio's /apis/ccompat/v7): records are read by the writer schema id the registry gave them and "
    "written with the registry's ids for the contract's schemas. Empty (the default): the contract's own ids.",
    "BOOSTER_SCHEMA_REGISTRY_USERNAME": "Basic-auth user of the schema registry (with its password).",
    "BOOSTER_SCHEMA_REGISTRY_PASSWORD": "Basic-auth password of the schema registry (secret: never printed). Or "
    "BOOSTER_SCHEMA_REGISTRY_PASSWORD_FILE.",
    "BOOSTER_SCHEMA_REGISTRY_PASSWORD_FILE": "A file holding the schema registry's password (its first line).",
    "BOOSTER_SCHEMA_REGISTRY_TOKEN": "Bearer token for the schema registry, for managed registries behind OAuth "
    "(secret: never printed). Or BOOSTER_SCHEMA_REGISTRY_TOKEN_FILE.",
    "BOOSTER_SCHEMA_REGISTRY_TOKEN_FILE": "A file holding the schema registry's bearer token (its first line).",
    "BOOSTER_MAX_RECORD_BYTES": "Largest record `booster publish` sends and a worker reads; a larger one is "
    "refused (the worker sends it to booster.dead-letter, cut short).",
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


def min_insync_replicas(replicas: int) -> int:
    """Replicas that must have a record before an acks=all write is answered: all but one, so one may be
    down without losing or refusing a write."""
    return max(1, replicas - 1)


def _on_off(name: str, raw: str) -> bool:
    if raw not in ("on", "off"):
        raise ConfigError(f"{name}={raw!r} is not `on` or `off`")
    return raw == "on"


def _lane(raw: str) -> bool:
    if raw not in ("batch", "events"):
        raise ConfigError(f"BOOSTER_INGEST_LANE={raw!r} is not `batch` or `events`")
    return raw == "batch"


def _event_loop(raw: str) -> str:
    if raw not in ("uvloop", "asyncio"):
        raise ConfigError(f"BOOSTER_EVENT_LOOP={raw!r} is not `uvloop` or `asyncio`")
    return raw


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


def _secret(source: dict[str, str], name: str) -> str:
    """A secret from NAME, or from the first line of the file NAME_FILE names (never an argument)."""
    direct = source.get(name, "")
    path = source.get(f"{name}_FILE", "")
    if direct and path:
        raise ConfigError(f"both {name} and {name}_FILE are set; keep one")
    if not path:
        return direct
    try:
        lines = Path(path).expanduser().read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"{name}_FILE={path}: cannot read it ({exc.strerror}); fix the path or its rights") from None
    if not lines or not lines[0].strip():
        raise ConfigError(f"{name}_FILE={path} is empty; write the secret on its first line")
    return lines[0].strip()


def _pem(source: dict[str, str], name: str) -> Path | None:
    raw = source.get(name, "")
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ConfigError(f"{name}={raw}: no such file; give the path of a PEM file")
    return path


@dataclass(frozen=True)
class Security:
    """How clients authenticate to Kafka and protect the connection. Secrets stay out of repr."""

    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: str = field(default="", repr=False)

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def describe(self) -> str:
        """What the connection uses, for logs and errors: never the password."""
        parts = [self.protocol]
        if self.uses_sasl:
            parts.append(f"{self.mechanism} as {self.username}")
        if self.uses_tls:
            parts.append(f"CA {self.ca_file or 'system'}")
            if self.cert_file is not None:
                parts.append(f"client certificate {self.cert_file}")
        return ", ".join(parts)

    @classmethod
    def from_env(cls, source: dict[str, str]) -> Security:
        protocol = (source.get("BOOSTER_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
        if protocol not in PROTOCOLS:
            raise ConfigError(f"BOOSTER_SECURITY_PROTOCOL={protocol!r} is not one of {', '.join(PROTOCOLS)}")
        mechanism = (source.get("BOOSTER_SASL_MECHANISM") or DEFAULTS["BOOSTER_SASL_MECHANISM"]).upper()
        if mechanism not in MECHANISMS:
            raise ConfigError(f"BOOSTER_SASL_MECHANISM={mechanism!r} is not one of {', '.join(MECHANISMS)}")
        username = source.get("BOOSTER_SASL_USERNAME", "")
        password = _secret(source, "BOOSTER_SASL_PASSWORD")
        if protocol.startswith("SASL_") and not (username and password):
            raise ConfigError(
                f"BOOSTER_SECURITY_PROTOCOL={protocol} needs BOOSTER_SASL_USERNAME and BOOSTER_SASL_PASSWORD "
                "(or BOOSTER_SASL_PASSWORD_FILE); set both"
            )
        cert, key = _pem(source, "BOOSTER_SSL_CERT_FILE"), _pem(source, "BOOSTER_SSL_KEY_FILE")
        if (cert is None) != (key is None):
            raise ConfigError(
                "mutual TLS needs both BOOSTER_SSL_CERT_FILE and BOOSTER_SSL_KEY_FILE; set both or neither"
            )
        security = cls(
            protocol=protocol,
            mechanism=mechanism,
            username=username,
            password=password,
            ca_file=_pem(source, "BOOSTER_SSL_CA_FILE"),
            cert_file=cert,
            key_file=key,
            key_password=_secret(source, "BOOSTER_SSL_KEY_PASSWORD"),
        )
        if not security.uses_tls and (security.ca_file or security.cert_file):
            raise ConfigError(
                f"BOOSTER_SSL_* files are set but BOOSTER_SECURITY_PROTOCOL={protocol} does not use TLS; "
                "set it to SSL or SASL_SSL, or unset the files"
            )
        return security


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class WebAccess:
    """Who may read the worker's pages: anyone who reaches a loopback address; beyond it, the bearer
    token (the preview names contacts and why they are excluded)."""

    bind: str = "127.0.0.1"
    token: str = field(default="", repr=False)
    metrics_open: bool = True

    @property
    def needs_token(self) -> bool:
        return self.bind not in LOOPBACK or bool(self.token)

    @classmethod
    def from_env(cls, source: dict[str, str]) -> WebAccess:
        bind = source.get("BOOSTER_WEB_BIND") or DEFAULTS["BOOSTER_WEB_BIND"]
        token = _secret(source, "BOOSTER_WEB_TOKEN")
        metrics = (source.get("BOOSTER_METRICS_AUTH") or "open").lower()
        if metrics not in ("open", "token"):
            raise ConfigError(f"BOOSTER_METRICS_AUTH={metrics!r} is not `open` or `token`")
        if bind not in LOOPBACK and len(token) < 16:
            raise ConfigError(
                f"BOOSTER_WEB_BIND={bind} serves the audience preview beyond this machine: set BOOSTER_WEB_TOKEN "
                "(or BOOSTER_WEB_TOKEN_FILE) to a secret of 16 characters or more"
            )
        return cls(bind=bind, token=token, metrics_open=metrics == "open")


@dataclass(frozen=True)
class RegistryAccess:
    """Where the schema registry is and how to authenticate to it; empty url: no registry, the
    contract's own schema ids. Secrets stay out of repr."""

    url: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @classmethod
    def from_env(cls, source: dict[str, str]) -> RegistryAccess:
        url = source.get("BOOSTER_SCHEMA_REGISTRY_URL", "").strip().rstrip("/")
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"BOOSTER_SCHEMA_REGISTRY_URL={url!r} is not an http:// or https:// address; set it to the "
                "registry's Confluent-compatible API (Apicurio: http://host:port/apis/ccompat/v7)"
            )
        username = source.get("BOOSTER_SCHEMA_REGISTRY_USERNAME", "")
        password = _secret(source, "BOOSTER_SCHEMA_REGISTRY_PASSWORD")
        token = _secret(source, "BOOSTER_SCHEMA_REGISTRY_TOKEN")
        if bool(username) != bool(password):
            raise ConfigError(
                "basic auth to the schema registry needs both BOOSTER_SCHEMA_REGISTRY_USERNAME and "
                "BOOSTER_SCHEMA_REGISTRY_PASSWORD (or _PASSWORD_FILE); set both or neither"
            )
        if token and username:
            raise ConfigError("set a bearer token or a user and password for the schema registry, not both")
        return cls(url=url, username=username, password=password, token=token)


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
    engine_lateness_ms: int = 6 * 3_600_000
    hold_ingest_file: str = ""  # fault tests only: BOOSTER_TEST_HOLD_INGEST
    overdue_ms: int = 900_000
    retry_seconds: float = 120.0
    request_timeout: float = 40.0
    audience_retention_ms: int = 90 * 86_400_000
    decision_retention_ms: int = 30 * 86_400_000
    contact_retention_ms: int = 0  # 0: kept for ever
    sweep_interval: float = 600.0
    clock_speed: float = 1.0
    clock_anchor_ms: int = 0
    security: Security = Security()
    web: WebAccess = WebAccess()
    max_record_bytes: int = 1_000_000
    batch_lane: bool = True
    event_loop: str = "uvloop"
    group_instance_id: str = ""  # static group membership; empty: dynamic
    bulk_restore: bool = True
    replication_factor: int = 1
    standby_replicas: int = 0
    registry_port: int = 8081  # the local registry's (`booster registry start`)
    registry: RegistryAccess = RegistryAccess()

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
            engine_lateness_ms=int(
                _float("BOOSTER_ENGINE_LATENESS_SECONDS", get("BOOSTER_ENGINE_LATENESS_SECONDS"), 0.0) * 1000
            ),
            hold_ingest_file=source.get("BOOSTER_TEST_HOLD_INGEST", ""),
            overdue_ms=int(_float("BOOSTER_OVERDUE_SECONDS", get("BOOSTER_OVERDUE_SECONDS"), 1.0) * 1000),
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
            security=Security.from_env(source),
            web=WebAccess.from_env(source),
            max_record_bytes=_int("BOOSTER_MAX_RECORD_BYTES", get("BOOSTER_MAX_RECORD_BYTES"), 1024),
            batch_lane=_lane(get("BOOSTER_INGEST_LANE")),
            event_loop=_event_loop(get("BOOSTER_EVENT_LOOP")),
            group_instance_id=source.get("BOOSTER_GROUP_INSTANCE_ID", ""),
            replication_factor=_int("BOOSTER_REPLICATION_FACTOR", get("BOOSTER_REPLICATION_FACTOR"), 1),
            bulk_restore=_on_off("BOOSTER_BULK_RESTORE", get("BOOSTER_BULK_RESTORE")),
            standby_replicas=_int("BOOSTER_STANDBY_REPLICAS", get("BOOSTER_STANDBY_REPLICAS"), 0),
            registry_port=_int("BOOSTER_REGISTRY_PORT", get("BOOSTER_REGISTRY_PORT"), 1),
            registry=RegistryAccess.from_env(source),
        )

    @property
    def group_id(self) -> str:
        """The workers' Faust app id with the prefix: their consumer group and changelog prefix."""
        return f"{self.topic_prefix}{self.app_id}"

    @property
    def min_insync_replicas(self) -> int:
        return min_insync_replicas(self.replication_factor)

    def topic(self, name: str) -> str:
        """The real topic name of a contract topic, with the configured prefix."""
        return f"{self.topic_prefix}{name}"

    def changelog_topic(self, table: str) -> str:
        """The real name of a worker table's changelog topic (Faust's `<app id>-<table>-changelog`)."""
        return f"{self.group_id}-{table}-changelog"
