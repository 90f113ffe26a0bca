"""The project's one root exception and its kinds. Messages tell the operator what to do."""

from __future__ import annotations


class BoosterError(Exception):
    """Root of every error Booster raises on purpose."""


class ConfigError(BoosterError):
    """A BOOSTER_* setting is missing or wrong."""


class DecodeError(BoosterError):
    """A record's bytes cannot be read with the contract's schemas.

    Carries where the record came from so the dead-letter topic and the operator can find it, and a
    short `kind` for counting (not_wire_format, unknown_schema, wrong_schema, corrupt, bad_timestamp,
    bad_key, unexpected).
    """

    def __init__(
        self,
        reason: str,
        *,
        kind: str = "corrupt",
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = reason
        self.kind = kind
        self.topic = topic
        self.partition = partition
        self.offset = offset
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = []
        if self.topic is not None:
            where.append(f"topic {self.topic}")
        if self.partition is not None:
            where.append(f"partition {self.partition}")
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        prefix = f"{', '.join(where)}: " if where else ""
        return f"{prefix}{self.reason}"


class EncodeError(BoosterError):
    """A value does not fit the topic's schema (raised by publish before anything is sent)."""


class BrokerError(BoosterError):
    """The local Kafka broker could not be fetched, started, reached or stopped."""


class BrokerUnreachable(BrokerError):
    """Nothing answered at the broker's address: it may be away for a while (a restart, an outage), so
    a worker waits for it; a wrong address looks the same, and the message says to check it."""


class TopologyError(BoosterError):
    """Topics exist with the wrong shape (for example, contact topics not co-partitioned)."""


class RegistryError(BoosterError):
    """The schema registry refused a request (a schema it finds incompatible, wrong credentials, no
    registry set): the message says what to change."""


class RegistryUnavailable(RegistryError):
    """The schema registry did not answer, or answered that it is in trouble: infrastructure, like a
    broker away; a worker retries, and never dead-letters a record for it (G7)."""
