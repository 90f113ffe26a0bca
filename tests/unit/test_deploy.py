"""The deployment examples (Dockerfile, deploy/kubernetes/): linted by hadolint and validated against
Kubernetes' own schemas, and consistent with the worker they run (settings, probes, paths)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from booster.config import DEFAULTS, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
MANIFEST = ROOT / "deploy" / "kubernetes" / "booster-worker.yaml"
HADOLINT = Path(sys.executable).parent / "hadolint"
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]  # an older supported release and the newest the schemas know


def resources() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile's final stage, continuation lines joined."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    parsed = [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]
    last_from = max(i for i, (op, _) in enumerate(parsed) if op == "FROM")
    return parsed[last_from:]


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = subprocess.run([str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_say_so(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install faust-streaming\n")
    result = subprocess.run([str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3007" in result.stdout


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_manifest_is_valid_kubernetes(version: str) -> None:
    for doc in resources().values():
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any unknown or wrong field


def test_the_statefulset_probes_the_worker_s_pages_on_its_web_port() -> None:
    container = worker_container()
    env = {e["name"]: e for e in container["env"]}
    port = next(p for p in container["ports"] if p["name"] == "web")
    assert port["containerPort"] == int(env["BOOSTER_WEB_PORT"]["value"])
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "web"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/live", "port": "web"}
    assert container["startupProbe"]["httpGet"]["path"] == "/live"
    # static membership: the pod's stable name is the worker's instance id
    assert env["BOOSTER_GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["BOOSTER_WEB_BIND"]["value"] == "0.0.0.0" and "BOOSTER_WEB_TOKEN_FILE" in env


def test_the_state_directory_is_on_the_persistent_volume() -> None:
    statefulset = resources()["StatefulSet"]
    container = worker_container()
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    data_dir = container["args"][container["args"].index("--data-dir") + 1]
    assert Path(data_dir).is_relative_to(mount["mountPath"])
    assert statefulset["spec"]["serviceName"] == resources()["Service"]["metadata"]["name"]
    assert statefulset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


def test_every_setting_named_is_one_the_worker_knows_and_parses() -> None:
    config = resources()["ConfigMap"]["data"]
    named = {n for n in {*config, *(e["name"] for e in worker_container()["env"]), *dockerfile_env()} if "BOOSTER" in n}
    assert named <= set(DEFAULTS), f"unknown settings: {sorted(named - set(DEFAULTS))}"
    settings = Settings.from_env({**config, "BOOSTER_WEB_TOKEN": "x" * 24})
    assert settings.standby_replicas >= 1 and settings.session_timeout > 10


def test_the_image_runs_the_same_worker_as_the_statefulset() -> None:
    ops = instructions()
    entrypoint = [arg for op, arg in ops if op == "ENTRYPOINT"]
    cmd = [arg for op, arg in ops if op == "CMD"]
    assert yaml.safe_load(entrypoint[-1]) == ["booster"]
    assert yaml.safe_load(cmd[-1]) == worker_container()["args"]
    assert ("STOPSIGNAL", "SIGTERM") in ops
    user = [arg for op, arg in ops if op == "USER"][-1]
    assert user == str(resources()["StatefulSet"]["spec"]["template"]["spec"]["securityContext"]["runAsUser"])
    healthcheck = next(arg for op, arg in ops if op == "HEALTHCHECK")
    assert "/live" in healthcheck and f":{dockerfile_env()['BOOSTER_WEB_PORT']}/" in healthcheck
    base = next(arg for op, arg in ops if op == "FROM")
    assert base.startswith(f"python:{sys.version_info.major}.{sys.version_info.minor}.")


def worker_container() -> dict[str, Any]:
    [container] = resources()["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    return dict(container)


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for op, arg in instructions():
        if op == "ENV":
            for pair in shlex.split(arg):
                name, _, value = pair.partition("=")
                env[name] = value
    return env
