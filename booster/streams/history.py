"""The contacts' booster history for the frequency cap, kept in the `sent-history` table of their
partition, and how it stays exact through crashes and rebalances.

The truth is `booster.audience`: a booster's INCLUDED outcomes are committed in the same transactions
as its commands. The table is what has been read of it: a row per contact (the capped boosters sent
to it) and a marker, the offset of the partition of booster.audience up to which every outcome is in
the rows. A capped booster's fan-out first reads the topic from the marker to its end (the sends of
a worker killed before it wrote them, of the partition's earlier owner, and the outcomes of uncapped
boosters, which count for nothing and are skipped), then adds its own sends after each transaction and
moves the marker past them at its end. Reading an outcome twice changes nothing (the history is a
set). Fan-outs of boosters without a cap do not touch the history.

The marker moves only once the rows it covers are in the changelog (`add_sent`, a flush, then
`set_marker`). A table row is written to RocksDB at once and to the changelog at the next flush: a
worker killed in between restarts with the rows on its disk but not in the changelog, and a marker
written with them would carry on past them into the changelog, so that a new owner of the partition
would never read them again (a fault test found 439 contacts boosted twice that way).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from booster.processors.frequency import Sent, outlived, pack_history, unpack_history, with_sent
from booster.streams.store import PartitionStore

# a key no contact has: contact ids are non-empty UTF-8 text, and a NUL does not start one
MARKER = b"\x00booster.audience-offset"


def history_of(store: PartitionStore, contact_key: bytes) -> tuple[Sent, ...]:
    raw = store.get(contact_key)
    return () if raw is None else unpack_history(raw)


def next_offset(store: PartitionStore) -> int:
    """The offset of booster.audience from which outcomes are not in the rows yet."""
    raw = store.get(MARKER)
    return 0 if raw is None else int(raw)


def add_sent(
    store: PartitionStore,
    sent: Mapping[bytes, Sequence[Sent]],
    now: int,
    known: Mapping[bytes, tuple[Sent, ...]] | None = None,
) -> None:
    """Add sends to the contacts' rows (written again even when they hold them already: a row a killed
    worker wrote to its disk may not be in the changelog). `known`: rows just read (by the fan-out's
    walk), not read again."""
    rows: dict[bytes, bytes | None] = {}
    first_sends: dict[tuple[Sent, ...], bytes] = {}  # a fan-out's sends to contacts with no history yet
    for contact_key, entries in sent.items():
        old = known[contact_key] if known is not None and contact_key in known else history_of(store, contact_key)
        if not old:
            key = tuple(entries)
            packed = first_sends.get(key)
            if packed is None:
                packed = first_sends[key] = pack_history(outlived(with_sent((), entries), now))
            rows[contact_key] = packed
        else:
            rows[contact_key] = pack_history(outlived(with_sent(old, entries), now))
    store.write(rows)


def set_marker(store: PartitionStore, offset: int) -> None:
    """Every outcome before `offset` is in the rows, and those rows are in the changelog."""
    store.write({MARKER: str(offset).encode()})


def counted_sends(outcomes: Iterable[Mapping[str, Any]]) -> dict[bytes, list[Sent]]:
    """The sends that count toward a cap among decoded booster.audience records."""
    sent: dict[bytes, list[Sent]] = {}
    for o in outcomes:
        if o["outcome"] == "INCLUDED" and o.get("frequency_capped"):
            sent.setdefault(o["contact_id"].encode(), []).append((o["deadline"], o["booster_id"]))
    return sent
