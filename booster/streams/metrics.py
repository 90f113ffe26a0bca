"""A worker's metrics, in its own prometheus-client registry: ours (booster_*), the process's
(process_*, python_*), and Faust's sensors (faust_*, set up by the app), rendered together on /metrics.

Each metric is declared once here, with its kind, help text and label names; docs/operations.md has a
row for each (tests/unit/streams/test_metrics.py checks both ways)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from booster.streams import compat

if TYPE_CHECKING:
    from booster.streams.restore import Restored

# prometheus-client's CONTENT_TYPE_LATEST without its charset, which aiohttp adds (and refuses in it)
CONTENT_TYPE = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"
# a `_created` sample per series doubles the page for a timestamp no dashboard or alert of ours reads
disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Spec:
    kind: str  # counter, gauge or histogram
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


# seconds from a deadline to a partition's fan-out: the lag gate's look and the tick come first
FIRE_DELAY_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
# seconds one partition's fan-out takes, from a few commands to a million
FANOUT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# seconds from a launch reaching Kafka to its decision: moments when the workers keep up, up to the hours
# of BOOSTER_ENGINE_LATENESS_SECONDS when they are behind
DECISION_DELAY_BUCKETS = (0.5, 1, 5, 30, 60, 300, 900, 1800, 3600, 7200, 21600)

SPECS: dict[str, Spec] = {
    "booster_events_total": Spec("counter", "Records processed, per source topic.", ("topic",)),
    "booster_misrouted_records_total": Spec(
        "counter",
        "Contact-keyed facts found in another partition than their contact's (another partitioner), "
        "forwarded to it through booster.rerouted, per source topic.",
        ("topic",),
    ),
    "booster_events_dropped_total": Spec(
        "counter", "Message events of campaigns whose booster fired or that have none."
    ),
    "booster_dead_letters_total": Spec(
        "counter", "Records sent to the dead-letter topic, per source topic and kind.", ("topic", "kind")
    ),
    "booster_commands_total": Spec("counter", "Send commands committed."),
    "booster_duplicate_launches_total": Spec("counter", "Launch events of campaigns already decided (ignored)."),
    "booster_forgotten_launches_total": Spec(
        "counter",
        "Launch events older than the decisions kept (BOOSTER_DECISION_RETENTION_DAYS after their deadline): "
        "ignored, not decided again.",
    ),
    "booster_expired_rows_total": Spec(
        "counter", "Table rows removed by the sweep past their retention, per table.", ("table",)
    ),
    "booster_boosters_total": Spec(
        "counter", "Booster reports, per status (pending, scheduled, rejected, cancelled, sent).", ("status",)
    ),
    "booster_notices_total": Spec("counter", "Notices sent to booster.notices, per kind (R14).", ("kind",)),
    "booster_results_total": Spec("counter", "Boosters' results (the measured uplift) merged into booster.results."),
    "booster_fanouts_total": Spec("counter", "Partition fan-outs completed."),
    "booster_launch_decision_delay_seconds": Spec(
        "histogram",
        "Seconds from a launch reaching Kafka (its record's timestamp) to the workers deciding it: how far behind "
        "they are where it matters most.",
        (),
        DECISION_DELAY_BUCKETS,
    ),
    "booster_late_launches_total": Spec(
        "counter",
        "Boosters cancelled for lateness, by whose: upstream (the launch reached Kafka later than "
        "BOOSTER_LAUNCH_STALENESS_SECONDS after its deadline) or engine (the workers decided it later than "
        "BOOSTER_ENGINE_LATENESS_SECONDS after it).",
        ("by",),
    ),
    "booster_fire_delay_seconds": Spec(
        "histogram", "Seconds from a booster's deadline to the start of a partition's fan-out.", (), FIRE_DELAY_BUCKETS
    ),
    "booster_fanout_duration_seconds": Spec(
        "histogram", "Seconds one partition's fan-out took, from its first command to its summary.", (), FANOUT_BUCKETS
    ),
    "booster_restored_records_total": Spec(
        "counter",
        "Changelog records written into RocksDB by the bulk restore when this worker took table partitions over.",
    ),
    "booster_restore_seconds_total": Spec("counter", "Seconds spent in bulk restores."),
    "booster_partition_lag": Spec(
        "gauge", "Records not yet processed, per input topic and partition of this worker.", ("topic", "partition")
    ),
    "booster_deadlines_waiting": Spec("gauge", "Due deadlines held back by the lag gate."),
    "booster_records_read_again_total": Spec(
        "counter",
        "Partitions read again from a record their commits stood still at, the last resort behind the worker's "
        "own account of what it processed, per topic and why: held (a handler held it for 120 s) or dropped "
        "(fetched and taken by no handler for 10 s). Never above 0 in a healthy worker: each one is a finding.",
        ("topic", "why"),
    ),
    "booster_lane_queued_fetches": Spec(
        "gauge",
        "Fetches of the contact-keyed topics waiting for the ingest agent (at most 4: at 4 the agent is what "
        "limits ingestion, and the fetch loop waits).",
    ),
    "booster_overdue_deadlines": Spec(
        "gauge",
        "Boosters overdue on this worker (BOOSTER_OVERDUE_SECONDS past their deadline plus the allowed lateness), "
        "per step: partition (a partition of this worker not fired while its inputs are caught up) or report "
        "(a booster whose report waits for other partitions' summaries). Never above 0 in a healthy group.",
        ("step",),
    ),
    "booster_table_keys": Spec("gauge", "Estimated keys per table in this worker's active partitions.", ("table",)),
    "booster_record_clock_ahead_seconds": Spec(
        "gauge",
        "Per consumed topic (booster.control and the like are stamped by workers), the largest record timestamp "
        "minus this worker's clock over the current minute: "
        "above 0, a producer's clock runs ahead of the worker's; below 0, records are processed that long "
        "after they were stamped at the soonest (lag, or a producer's clock behind).",
        ("topic",),
    ),
}


def _make(name: str, spec: Spec, registry: CollectorRegistry) -> Any:
    if spec.kind == "counter":
        return Counter(name, spec.help, spec.labels, registry=registry)
    if spec.kind == "gauge":
        return Gauge(name, spec.help, spec.labels, registry=registry)
    return Histogram(name, spec.help, spec.labels, registry=registry, buckets=spec.buckets)


class Metrics:
    def __init__(self, process: bool = False) -> None:
        """`process`: also the process's CPU, memory, file descriptors and the interpreter's GC (a
        worker's; one per process, so not for the many Metrics of the unit tests)."""
        self.registry = CollectorRegistry(auto_describe=True)
        self._metrics = {name: _make(name, spec, self.registry) for name, spec in SPECS.items()}
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    @classmethod
    def of_worker(cls, app: Any) -> Metrics:
        """A worker's: ours, the process's, and Faust's own sensors, which become `app`'s monitor (its
        consumer, producer, tables, rebalances), all on one /metrics."""
        metrics = cls(process=True)
        compat.use_faust_sensors(app, metrics.registry)
        return metrics

    def _child(self, name: str, labels: dict[str, str | int]) -> Any:
        metric = self._metrics[name]
        return metric.labels(**{k: str(v) for k, v in labels.items()}) if labels else metric

    def inc(self, name: str, value: float = 1.0, **labels: str | int) -> None:
        self._child(name, labels).inc(value)

    def set(self, name: str, value: float, **labels: str | int) -> None:
        self._child(name, labels).set(value)

    def observe(self, name: str, value: float, **labels: str | int) -> None:
        self._child(name, labels).observe(value)

    def clear(self, name: str) -> None:
        self._metrics[name].clear()

    def get(self, name: str, **labels: str | int) -> float:
        """A series' value now (0 when it was never written); a histogram's count."""
        sample = f"{name}_count" if SPECS[name].kind == "histogram" else name
        found = self.registry.get_sample_value(sample, {k: str(v) for k, v in labels.items()})
        return found or 0.0

    def restored(self, restored: Restored) -> None:
        """A bulk restore's figures."""
        self.inc("booster_restored_records_total", restored.records)
        self.inc("booster_restore_seconds_total", restored.seconds)

    def render(self) -> str:
        """Every metric of the registry in Prometheus' text format (0.0.4)."""
        return generate_latest(self.registry).decode()
