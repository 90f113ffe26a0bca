"""The pinned libraries' internals that streams/compat.py relies on are still there and still behave."""

from __future__ import annotations

import asyncio
import inspect

from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient
from faust.stores.rocksdb import Store as RocksDBStore
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer

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
