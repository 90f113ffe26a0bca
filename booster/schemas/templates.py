"""Hand-rolled Avro encoding of send commands: the hot path of a fan-out.

A booster's commands differ only in command_id and contact_id, so everything else is encoded once per
fan-out. The bytes are exactly what the codec writes (a test compares them).
"""

from __future__ import annotations

from booster.schemas.codec import codec

_CHANNELS = {"EMAIL": 0, "SMS": 1, "PUSH": 2}


def avro_long(n: int) -> bytes:
    """Zigzag varint, as Avro writes int and long."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


# the length of most strings in one byte: ids, names and references are under 64 bytes
_SHORT_LENGTHS = tuple(avro_long(n) for n in range(64))


def avro_string(s: str) -> bytes:
    data = s.encode()
    n = len(data)
    return (_SHORT_LENGTHS[n] if n < 64 else avro_long(n)) + data


class CommandTemplate:
    def __init__(
        self,
        *,
        booster_id: str,
        booster_name: str,
        campaign_id: str,
        account_id: str,
        channel: str,
        content_ref: str,
        deadline: int,
        issued_at: int,
    ) -> None:
        self._header = codec().header("booster.commands")
        self._middle = b"".join(avro_string(s) for s in (booster_id, booster_name, campaign_id, account_id))
        self._tail = (
            avro_long(_CHANNELS[channel]) + avro_string(content_ref) + avro_long(deadline) + avro_long(issued_at)
        )

    def encode(self, command_id: str, contact_id: str, send_after: int | None = None) -> bytes:
        # send_after (version 2): union branch 0, null, or 1, the timestamp
        waits = b"\x00" if send_after is None else b"\x02" + avro_long(send_after)
        parts = (self._header, avro_string(command_id), self._middle, avro_string(contact_id), self._tail, waits)
        return b"".join(parts)


# the symbols of booster.audience's AudienceOutcomeKind, in schema order
OUTCOMES = (
    "INCLUDED", "DELETED", "BLOCKED", "UNSUBSCRIBED", "UNREACHABLE", "ERROR", "WAITING", "CLICKED", "OPENED",
    "FREQUENCY_CAP", "HOLDOUT",
)  # fmt: skip
_OUTCOME_INDEX = {name: i for i, name in enumerate(OUTCOMES)}


class OutcomeTemplate:
    """booster.audience values of one booster's fan-out: only contact, outcome and command differ."""

    def __init__(
        self,
        *,
        booster_id: str,
        campaign_id: str,
        account_id: str,
        deadline: int,
        decided_at: int,
        frequency_capped: bool = False,
    ) -> None:
        self._header = codec().header("booster.audience")
        self._tail = b"".join(avro_string(s) for s in (booster_id, campaign_id, account_id))
        self._tail += avro_long(deadline) + avro_long(decided_at) + (b"\x01" if frequency_capped else b"\x00")
        self._outcomes = {name: avro_long(i) for name, i in _OUTCOME_INDEX.items()}

    def encode(self, contact_id: str, outcome: str, command_id: str | None) -> bytes:
        command = b"\x00" if command_id is None else b"\x02" + avro_string(command_id)  # union branch 0 or 1
        return b"".join((self._header, avro_string(contact_id), self._outcomes[outcome], command, self._tail))
