"""The pinned libraries' internals that streams/compat.py relies on are still there and still behave."""

from __future__ import annotations

import asyncio
import inspect

from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient
from faust.stores.rocksdb import Store as RocksDBStore
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from faust.types.tuples import ConsumerMessage

from booster.streams import compat


def test_rocksdb_store_internals() -> None:
    assert callable(RocksDBStore._db_for_partition)
    assert callable(RocksDBStore.set_persisted_offset)
    assert RocksDBStore.offset_key.startswith(compat.FAUST_KEYS)


def test_consumer_thread_internals() -> None:
    assert list(inspect.signature(AIOKafkaConsumerThread._create_worker_consumer).parameters) == ["self", "transport"]
    assert callable(FaustConsumer._new_consumer_thread)
    consumer_class = compat.read_committed_consumer()
    assert issubclass(consumer_class, FaustConsumer)


def test_aiokafka_consumer_internals() -> None:
    async def make() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")

    consumer = asyncio.run(make())
    assert consumer._isolation_level == "read_uncommitted"  # the attribute our thread overrides
    assert isinstance(consumer._client, AIOKafkaClient)
    assert callable(AIOKafkaClient.force_metadata_update)


def test_a_message_marked_acked_is_not_acked_again() -> None:
    class Consumer:
        def __init__(self) -> None:
            self.acked: list[int] = []

        def ack(self, message: ConsumerMessage) -> bool:
            self.acked.append(message.offset)
            return True

    consumer = Consumer()
    messages = [ConsumerMessage("t", 0, offset, 0.0, 0, {}, b"k", b"v", None) for offset in (1, 2)]
    events = [type("Event", (), {"message": m})() for m in messages]
    compat.leave_unacked(events[:1])
    assert [m.ack(consumer) for m in messages] == [False, True]  # type: ignore[arg-type]
    assert consumer.acked == [2]
