"""The alert rules and the Grafana dashboard (docs/monitoring/): valid for Prometheus (promtool), each
alert unit-tested, and every metric they read one a worker exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.streams.test_metrics import worker_registry

MONITORING = Path(__file__).resolve().parents[2] / "docs" / "monitoring"
ALERTS = MONITORING / "alerts.yml"
ALERT_TESTS = MONITORING / "alerts.test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
PROMQL_WORDS = {
    "sum", "max", "min", "by", "without", "rate", "increase", "delta", "histogram_quantile", "and", "or", "up",
    "label_values", "le", "instance", "job", "topic", "table", "status", "kind",
}  # fmt: skip


def promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (./scripts/test.sh does)")
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True)


def exported() -> set[str]:
    """Every metric family and sample name a worker's /metrics can show."""
    names: set[str] = set()
    for family in worker_registry().collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        if family.type == "counter":  # a labelled one shows no sample until a series is written
            names.add(f"{family.name}_total")
    return names | {"up"}


def metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', "", expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    words = set(re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", without_ranges))
    return {w for w in words if w not in PROMQL_WORDS and not w.startswith("__")}


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def test_the_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", ALERTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", ALERT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_the_named_ones_exist() -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    checks = [check for test in tests for check in test["alert_rule_test"]]
    fired = {check["alertname"] for check in checks if check["exp_alerts"]}
    names = {rule["alert"] for rule in alert_rules()}
    assert fired == names
    asked = {"BoosterWorkerDown", "BoosterLagGrowing", "BoosterDeadlineWaiting", "BoosterDeadLetters"}
    assert asked | {"BoosterFireDelayHigh"} <= names


def test_a_broken_rule_would_be_caught(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(ALERTS.read_text().replace("> 120", "> > 120"))
    assert promtool("check", "rules", str(broken)).returncode != 0


def test_the_alerts_and_the_dashboard_read_only_exported_metrics() -> None:
    known = exported()
    used = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    used |= {name for expr in dashboard_exprs() for name in metric_names(expr)}
    assert used - known == set()
    assert {"booster_partition_lag", "booster_fire_delay_seconds_bucket", "process_resident_memory_bytes"} <= used


def test_the_dashboard_s_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each panel's query, with Grafana's variables filled in, checked by promtool as a recording rule."""
    exprs = [e.replace("$__rate_interval", "5m").replace("$instance", ".*") for e in dashboard_exprs()]
    rules = {
        "groups": [{"name": "dashboard", "rules": [{"record": f"panel:{i}", "expr": e} for i, e in enumerate(exprs)]}]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)) >= 12
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource", "instance"}
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
