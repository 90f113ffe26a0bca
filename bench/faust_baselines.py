"""Faust baselines measured next to the booster worker: run as `python -m bench.faust_baselines MODE`.

nothing: a Faust agent that iterates the same topics and does nothing with the events.
naive:   what a first implementation would do: decode each event, write one table entry per event
         with a JSON value (Faust's default serializer).
Both read the contact-keyed input topics of the configured prefix, in their own consumer group.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import faust

from booster.config import Settings
from booster.schemas import codec
from booster.schemas.catalog import CONTACT_INPUT_TOPICS
from booster.streams.app import CONSUMER_BUFFER, CONSUMER_MAX_POLL_RECORDS


def build(mode: str, settings: Settings, datadir: Path) -> faust.App:
    prefix = settings.topic_prefix
    app = faust.App(
        f"{prefix}bench-{mode}",
        broker=f"kafka://{settings.broker}",
        store="rocksdb://",
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        web_port=settings.web_port,
        web_bind="127.0.0.1",
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        # the booster worker's consumer settings, so the comparison isolates what is done per event
        broker_max_poll_records=CONSUMER_MAX_POLL_RECORDS,
        stream_buffer_maxsize=CONSUMER_BUFFER,
    )
    schema: faust.Schema = faust.Schema(  # type: ignore[type-arg]
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    topic = app.topic(*[settings.topic(t) for t in CONTACT_INPUT_TOPICS], schema=schema)
    names = {settings.topic(t): t for t in CONTACT_INPUT_TOPICS}

    if mode == "nothing":

        @app.agent(topic)
        async def nothing(stream: Any) -> None:
            async for _event in stream.events():
                pass

    else:
        table = app.Table("naive", partitions=settings.partitions)

        @app.agent(topic)
        async def naive(stream: Any) -> None:
            async for event in stream.events():
                name = names[event.message.topic]
                record = codec().decode(name, event.value)
                table[f"{record.get('campaign_id', '')}/{record['contact_id']}/{name}"] = {"topic": name, **record}

    return app


def main() -> None:
    mode = sys.argv[1]
    datadir = Path(sys.argv[2])
    datadir.mkdir(parents=True, exist_ok=True)
    app = build(mode, Settings.from_env(), datadir)
    worker = faust.Worker(app, loglevel="warning")
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
