"""The lag gate's positions (streams/gate.py): what is processed, never the highest offset seen."""

from __future__ import annotations

from aiokafka import TopicPartition

from booster.streams.gate import nothing_more, positions
from booster.streams.offsets import OffsetLedger

TP = TopicPartition("message.delivered", 0)


def test_a_record_ingested_above_a_hole_does_not_move_the_position() -> None:
    """Committed 100, record 149 ingested, end 150: 50 behind, not 0."""
    ledger = OffsetLedger()
    ledger.seeked(TP, 100)
    ledger.fetched(TP, range(100, 150))
    ledger.hold(TP, 149)
    ledger.release(TP, 149)
    end = 150
    found = positions([TP], {TP: 100}, ledger.processed)
    assert end - found[TP] == 50


def test_positions_of_partitions_another_worker_consumes_are_the_group_s_committed_offsets() -> None:
    other = TopicPartition("message.delivered", 1)
    found = positions([TP, other], {TP: 7, other: -1}, nothing_more)
    assert found == {TP: 7, other: 0}  # -1: nothing committed yet


def test_a_gate_whose_broker_was_away_works_again_once_it_is_back() -> None:
    """A client that failed to start was kept, half made: every later look of the gate failed with
    an AttributeError after a broker outage, and boosters never fired on that worker."""
    import asyncio

    from aiokafka.errors import KafkaConnectionError

    from booster.streams.gate import LagGate
    from booster.testing.workers import free_port

    async def run() -> None:
        gate = LagGate({"bootstrap_servers": f"127.0.0.1:{free_port()}"}, "g")
        for _ in range(3):  # the same error each time, from a new try: nothing half-made is kept
            try:
                await gate.end_offsets([TP])
            except KafkaConnectionError:
                continue
            raise AssertionError("no broker, yet the gate answered")
        await gate.stop()

    asyncio.run(run())
