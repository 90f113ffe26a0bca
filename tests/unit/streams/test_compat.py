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


def test_a_held_message_is_acked_only_after_its_release() -> None:
    class Consumer:
        def __init__(self) -> None:
            self.acked: list[int] = []

        def ack(self, message: ConsumerMessage) -> bool:  # as Faust's Consumer.ack does
            message.acked = True
            self.acked.append(message.offset)
            return True

    consumer = Consumer()

    class Event:
        def __init__(self, offset: int) -> None:
            self.message = ConsumerMessage("t", 0, offset, 0.0, 0, {}, b"k", b"v", None)
            self.message.incref()  # the conductor's reference: one stream reads it

        def ack(self) -> bool:
            return self.message.ack(consumer)  # type: ignore[arg-type]

    done, interrupted = Event(1), Event(2)
    compat.hold_acks([done, interrupted])
    compat.release_acks([done])  # its effects are written; `interrupted` was cut short
    for event in (done, interrupted):  # what the stream's `finally` does for every yielded event
        event.ack()
    assert consumer.acked == [1]
