"""An upstream service that reports deliveries to Booster through a schema registry.

What a team writes with confluent-kafka (`pip install "confluent-kafka[schemaregistry]"`): its own copy
of the contract's schema for message.delivered (here with a field of its own, which Booster ignores),
an AvroSerializer that registers it under the topic's subject, and a producer that keys each record by
its contact_id and partitions like the Java client (murmur2). The suite runs it (tests/integration/
test_registry.py). Settings as Booster's: BOOSTER_BROKER, BOOSTER_TOPIC_PREFIX, BOOSTER_SCHEMA_REGISTRY_URL.

    python docs/examples/upstream_registry.py CAMPAIGN_ID CONTACT_ID [CONTACT_ID ...]
"""

from __future__ import annotations

import json
import os
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

DELIVERED = {
    "type": "record",
    "name": "MessageDelivered",
    "namespace": "booster.v1",
    "fields": [
        {"name": "campaign_id", "type": "string"},
        {"name": "contact_id", "type": "string"},
        {"name": "message_id", "type": "string"},
        {"name": "status", "type": {"type": "enum", "name": "DeliveryStatus", "symbols": ["DELIVERED", "ERROR"]}},
        {"name": "reported_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        # this team's own field: with a default, so the registry's rules take it and Booster skips it
        {"name": "carrier", "type": ["null", "string"], "default": None},
    ],
}


def main(campaign_id: str, contacts: list[str]) -> int:
    topic = os.environ.get("BOOSTER_TOPIC_PREFIX", "") + "message.delivered"
    registry = SchemaRegistryClient({"url": os.environ["BOOSTER_SCHEMA_REGISTRY_URL"]})
    serialize = AvroSerializer(registry, json.dumps(DELIVERED))
    producer = Producer(
        {
            "bootstrap.servers": os.environ.get("BOOSTER_BROKER", "127.0.0.1:9092"),
            "partitioner": "murmur2_random",  # the contract's partitioning (Booster reroutes others, at a cost)
            "enable.idempotence": True,
        }
    )
    now = int(time.time() * 1000)
    for contact in contacts:
        report = {
            "campaign_id": campaign_id,
            "contact_id": contact,
            "message_id": f"{campaign_id}-{contact}",
            "status": "DELIVERED",
            "reported_at": now,
            "carrier": "example-carrier",
        }
        value = serialize(report, SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, key=contact.encode(), value=value)
    left = producer.flush(30)
    print(f"{len(contacts) - left} delivery report(s) on {topic}", file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
