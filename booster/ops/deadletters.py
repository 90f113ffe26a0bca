"""`booster dead-letter list|replay`: see what was refused and why; re-publish chosen records."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any, TextIO

from booster.config import Settings
from booster.errors import BoosterError
from booster.ops.clients import produce_raw, read_topic, schema_topic
from booster.schemas import codec

REPLAY_BATCH = 10_000  # dead letters per progress line of a replay


@dataclass(frozen=True)
class DeadLetter:
    offset: int  # in the dead-letter topic
    partition: int
    record: dict[str, Any]

    @property
    def source(self) -> str:
        r = self.record
        return f"{r['source_topic']}:{r['partition']}:{r['offset']}"


@dataclass(frozen=True)
class Selection:
    source_topic: str | None = None
    kind: str | None = None
    sources: frozenset[str] = frozenset()  # "topic:partition:offset" of the original records
    everything: bool = False

    def empty(self) -> bool:
        return not (self.source_topic or self.kind or self.sources or self.everything)

    def matches(self, d: DeadLetter) -> bool:
        r = d.record
        if self.source_topic is not None and r["source_topic"] != self.source_topic:
            return False
        if self.kind is not None and r["kind"] != self.kind:
            return False
        return not (self.sources and d.source not in self.sources)


async def dead_letters(settings: Settings) -> list[DeadLetter]:
    out = []
    async for msg in read_topic(settings, "booster.dead-letter", until_end=True):
        out.append(DeadLetter(msg.offset, msg.partition, codec().decode("booster.dead-letter", msg.value)))
    return out


def summary(letters: list[DeadLetter]) -> dict[str, Any]:
    by_kind = Counter(d.record["kind"] for d in letters)
    by_topic = Counter(d.record["source_topic"] for d in letters)
    return {"total": len(letters), "by_kind": dict(by_kind.most_common()), "by_topic": dict(by_topic.most_common())}


async def replay(
    settings: Settings, selection: Selection, *, dry_run: bool = False, progress: TextIO | None = sys.stderr
) -> list[DeadLetter]:
    """Produce the original key and value of every selected dead letter to its source topic."""
    if selection.empty():
        raise BoosterError("choose what to replay: --source-topic, --kind, --source T:P:O, or --all")
    chosen = [d for d in await dead_letters(settings) if selection.matches(d)]
    for d in chosen:
        schema_topic(d.record["source_topic"])  # refuses a source that is not one of our topics
        if d.record["kind"] == "too_large":
            raise BoosterError(
                f"{d.source} was over BOOSTER_MAX_RECORD_BYTES and only its start is kept: it cannot be replayed; "
                "leave it out (--source-topic / --kind) or publish the fixed record with `booster publish`"
            )
    if dry_run or not chosen:
        return chosen
    done = 0
    for start in range(0, len(chosen), REPLAY_BATCH):
        part = chosen[start : start + REPLAY_BATCH]
        done += await produce_raw(
            settings, [(d.record["source_topic"], d.record["key"], d.record["value"]) for d in part]
        )
        if progress is not None:
            print(f"replayed {done}/{len(chosen)} dead letters ...", file=progress, flush=True)
    return chosen
