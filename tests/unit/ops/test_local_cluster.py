"""The local three-node cluster's configuration (`booster kafka start --nodes 3`), without starting it:
the opt-in fault test (tests/faults/test_cluster.py) runs it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from booster.broker import local
from booster.broker.local import LocalKafka
from booster.config import Settings
from booster.errors import BrokerError


def cluster(tmp_path: Path, nodes: int = 3, secure: bool = False) -> LocalKafka:
    settings = Settings.from_env({"BOOSTER_HOME": str(tmp_path), "BOOSTER_KAFKA_PORT": "19600"})
    return LocalKafka(settings, nodes=nodes, secure=secure)


def properties(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_three_nodes_on_their_own_ports_and_directories_in_one_quorum(tmp_path: Path) -> None:
    kafka = cluster(tmp_path)
    configs = [properties(kafka._write_config(node)) for node in kafka.node_ids]
    assert [c["node.id"] for c in configs] == ["1", "2", "3"]
    voters = "1@127.0.0.1:19601,2@127.0.0.1:19603,3@127.0.0.1:19605"
    assert {c["controller.quorum.voters"] for c in configs} == {voters}
    assert [c["listeners"] for c in configs] == [
        f"PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{p + 1}" for p in (19600, 19602, 19604)
    ]
    assert len({c["log.dirs"] for c in configs}) == 3
    for c in configs:  # one node may die without losing or refusing an acks=all write
        assert c["default.replication.factor"] == c["offsets.topic.replication.factor"] == "3"
        assert c["min.insync.replicas"] == c["transaction.state.log.min.isr"] == "2"
        assert c["unclean.leader.election.enable"] == "false"
    assert kafka.bootstrap == "127.0.0.1:19600,127.0.0.1:19602,127.0.0.1:19604"
    assert kafka.root == tmp_path / "kafka" / "cluster"


def test_the_single_broker_keeps_its_layout(tmp_path: Path) -> None:
    kafka = cluster(tmp_path, nodes=1)
    config = properties(kafka._write_config())
    assert config["node.id"] == "1" and config["controller.quorum.voters"] == "1@127.0.0.1:19601"
    assert kafka.bootstrap == "127.0.0.1:19600" and kafka.data() == tmp_path / "kafka" / "data"


@pytest.mark.parametrize(("nodes", "secure", "words"), [(2, False, "1 or 3 nodes"), (3, True, "one node")])
def test_clusters_it_cannot_make_are_refused(tmp_path: Path, nodes: int, secure: bool, words: str) -> None:
    with pytest.raises(BrokerError, match=words):
        cluster(tmp_path, nodes=nodes, secure=secure)


def test_topics_get_the_replication_and_one_less_in_sync() -> None:
    settings = Settings.from_env({"BOOSTER_REPLICATION_FACTOR": "3"})
    assert settings.replication_factor == 3 and settings.min_insync_replicas == 2
    assert Settings.from_env({}).min_insync_replicas == 1


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """kafka-storage takes an id starting with "-" for an option; 1 in 64 random ids did."""
    dashed = uuid.UUID(bytes=b"\xfb" + bytes(15))  # URL-safe base64 "-w..."
    made = iter([dashed, uuid.UUID(int=1)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(made))
    found = local.new_cluster_id()
    assert not found.startswith("-") and len(found) == 22
