"""docs/asyncapi.yaml, the contract as AsyncAPI 3.0: the same topics, keys, schemas and ids as the
catalog (both ways), and valid for the AsyncAPI parser with its Avro schema parser (Node, from npm)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from booster.ops.admin import wanted_topics
from booster.schemas.catalog import AVRO_DIR, BY_ID, CATALOG, LAUNCHES_BY_ACCOUNT, REROUTED

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "asyncapi.yaml"
VALIDATOR = ROOT / "tools" / "asyncapi" / "validate.mjs"


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOC.read_text())
    return loaded


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (VALIDATOR.parent / "node_modules").is_dir():
        pytest.fail("the AsyncAPI parser is not installed: run ./scripts/setup.sh (needs Node.js and npm)")
    return subprocess.run([node, str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=120)


def test_the_asyncapi_parser_validates_the_document_and_every_avro_schema() -> None:
    result = validate(DOC)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["ok"] and summary["version"] == "3.0.0"
    assert summary["messages"] == summary["avroChecked"] == len(BY_ID)


def test_the_parser_refuses_a_broken_schema(tmp_path: Path) -> None:
    """The same document beside a copy of the schemas where one field has a type Avro does not know."""
    (tmp_path / "docs").mkdir()
    shutil.copy(DOC, tmp_path / "docs" / DOC.name)
    avro = tmp_path / "booster" / "schemas" / "avro"
    shutil.copytree(AVRO_DIR, avro)
    broken = avro / CATALOG["booster.commands"].schema_path.name
    broken.write_text(broken.read_text().replace('"type": "string"', '"type": "strang"', 1))
    result = validate(tmp_path / "docs" / DOC.name)
    assert result.returncode == 1 and "strang" in result.stdout


def test_every_schema_version_of_the_catalog_is_a_message_with_its_id_file_and_key() -> None:
    messages = document()["components"]["messages"]
    by_id = {m["x-booster-schema-id"]: m for m in messages.values()}
    assert set(by_id) == set(BY_ID) and len(by_id) == len(messages)  # both ways, no id twice
    for schema_id, spec in BY_ID.items():
        message = by_id[schema_id]
        assert message["name"] == spec.name
        assert (DOC.parent / message["payload"]["schema"]["$ref"]).resolve() == spec.schema_path.resolve()
        assert message["x-booster-latest"] == (CATALOG[spec.name].schema_id == schema_id)
        key = message["bindings"]["kafka"]["key"]["description"]
        assert spec.key_field is None or key.startswith(f"{spec.key_field}:"), (spec.name, key)
        assert message["bindings"]["kafka"]["schemaIdPayloadEncoding"] == "confluent"


def test_every_topic_is_a_channel_with_every_version_and_its_cleanup_policy() -> None:
    doc = document()
    channels = {c["address"]: c for c in doc["channels"].values()}
    assert set(channels) == set(CATALOG) | {LAUNCHES_BY_ACCOUNT, REROUTED}
    policies = {w.name: w.policy.split(",") for w in wanted_topics()}
    messages = doc["components"]["messages"]
    for name, channel in channels.items():
        assert channel["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"] == policies[name]
        listed = {
            messages[ref["$ref"].rsplit("/", 1)[1]]["x-booster-schema-id"] for ref in channel["messages"].values()
        }
        if name in CATALOG:
            assert listed == {i for i, spec in BY_ID.items() if spec.name == name}, name
            assert channel["x-booster-role"] == CATALOG[name].role
    rerouted = {messages[ref["$ref"].rsplit("/", 1)[1]]["name"] for ref in channels[REROUTED]["messages"].values()}
    assert rerouted == {name for name, spec in CATALOG.items() if spec.contact_keyed and spec.role == "input"}


def test_booster_reads_the_inputs_writes_the_outputs_and_both_for_internal_topics() -> None:
    doc = document()
    address = {f"#/channels/{key}": c["address"] for key, c in doc["channels"].items()}
    actions: dict[str, set[str]] = {}
    for operation in doc["operations"].values():
        actions.setdefault(address[operation["channel"]["$ref"]], set()).add(operation["action"])
    wanted = {"input": {"receive"}, "output": {"send"}, "internal": {"send", "receive"}}
    for name, spec in CATALOG.items():
        assert actions[name] == wanted[spec.role], name
    assert actions[LAUNCHES_BY_ACCOUNT] == actions[REROUTED] == {"send", "receive"}


def test_the_document_s_version_is_the_project_s() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert document()["info"]["version"] == project


def test_every_contract_topic_names_its_registry_subject_and_compatibility() -> None:
    from booster.config import Settings
    from booster.schemas.registry import compatibility_of, contract_subjects

    channels = {c["address"]: c for c in document()["channels"].values()}
    subjects = contract_subjects(Settings.from_env({}))
    named = {
        t: (c["x-booster-subject"], c["x-booster-compatibility"])
        for t, c in channels.items()
        if "x-booster-subject" in c
    }
    assert named == {t: (s, compatibility_of(t)) for t, s in subjects.items()}
