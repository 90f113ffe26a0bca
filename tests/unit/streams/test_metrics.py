"""The worker's metrics: declared once, documented in the operations guide (both ways), rendered by
prometheus-client with real histograms."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from booster.streams.metrics import FIRE_DELAY_BUCKETS, SPECS, Metrics

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def documented() -> set[str]:
    """The metric names in the first column of the guide's metrics tables."""
    section = GUIDE.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([a-z][a-z_]*)", row.split(" | ")[0]) if "_" in name}


class App:
    """What a worker's metrics need of its Faust app: a monitor to replace with Faust's sensors."""

    monitor: Any = None


def worker_registry() -> CollectorRegistry:
    """A worker's registry as the worker makes it (ours, the process's, Faust's sensors)."""
    return Metrics.of_worker(App()).registry


def worker_families() -> set[str]:
    """Every metric family of a worker's registry, as /metrics names it."""
    return {f.name + ("_total" if f.type == "counter" else "") for f in worker_registry().collect()}


def test_every_metric_is_documented_and_every_documented_one_exists() -> None:
    assert set(SPECS) <= worker_families()
    assert documented() == worker_families()


def test_the_fire_delay_is_a_histogram_with_its_buckets() -> None:
    metrics = Metrics()
    for seconds in (0.2, 3.0, 3.0, 4000.0):
        metrics.observe("booster_fire_delay_seconds", seconds)
    text = metrics.render()
    assert "# TYPE booster_fire_delay_seconds histogram" in text
    assert 'booster_fire_delay_seconds_bucket{le="0.5"} 1.0' in text
    assert 'booster_fire_delay_seconds_bucket{le="5.0"} 3.0' in text
    assert f'booster_fire_delay_seconds_bucket{{le="{float(FIRE_DELAY_BUCKETS[-1])}"}} 3.0' in text
    assert 'booster_fire_delay_seconds_bucket{le="+Inf"} 4.0' in text
    assert metrics.get("booster_fire_delay_seconds") == 4


def test_labelled_series_counters_and_gauges() -> None:
    metrics = Metrics()
    metrics.inc("booster_dead_letters_total", topic="message.sent", kind="corrupt")
    metrics.inc("booster_dead_letters_total", 2, topic="message.sent", kind="corrupt")
    metrics.set("booster_partition_lag", 7, topic="message.sent", partition=3)
    assert metrics.get("booster_dead_letters_total", topic="message.sent", kind="corrupt") == 3
    assert metrics.get("booster_partition_lag", topic="message.sent", partition=3) == 7
    metrics.clear("booster_partition_lag")
    assert metrics.get("booster_partition_lag", topic="message.sent", partition=3) == 0
    text = metrics.render()
    assert "booster_commands_total 0.0" in text  # a counter never moved is still there, at 0
    assert "_created" not in text


def test_a_worker_s_registry_has_the_process_metrics() -> None:
    assert "process_resident_memory_bytes" in Metrics(process=True).render()
    assert "process_resident_memory_bytes" not in Metrics().render()
