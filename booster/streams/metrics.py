"""Counters and gauges of a worker, rendered in the Prometheus text format (version 0.0.4)."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from booster.streams.restore import Restored

Labels = tuple[tuple[str, str], ...]

HELP: dict[str, tuple[str, str]] = {
    "booster_events_total": ("counter", "Records processed, per source topic."),
    "booster_misrouted_records_total": (
        "counter",
        "Contact-keyed facts found in another partition than their contact's (another partitioner), "
        "forwarded to it through booster.rerouted, per source topic.",
    ),
    "booster_events_dropped_total": ("counter", "Message events of campaigns whose booster fired or that have none."),
    "booster_dead_letters_total": ("counter", "Records sent to the dead-letter topic, per source topic and kind."),
    "booster_commands_total": ("counter", "Send commands committed."),
    "booster_duplicate_launches_total": ("counter", "Launch events of campaigns already decided (ignored)."),
    "booster_forgotten_launches_total": (
        "counter",
        "Launch events older than the decisions kept (BOOSTER_DECISION_RETENTION_DAYS after their deadline): "
        "ignored, not decided again.",
    ),
    "booster_expired_rows_total": ("counter", "Table rows removed by the sweep past their retention, per table."),
    "booster_boosters_total": (
        "counter",
        "Booster reports, per status (pending, scheduled, rejected, cancelled, sent).",
    ),
    "booster_notices_total": ("counter", "Notices sent to booster.notices, per kind (R14)."),
    "booster_fanouts_total": ("counter", "Partition fan-outs completed."),
    "booster_fire_delay_seconds_sum": ("counter", "Seconds from deadline to a partition's fan-out start, summed."),
    "booster_fire_delay_seconds_count": ("counter", "Partition fan-outs measured in booster_fire_delay_seconds_sum."),
    "booster_restored_records_total": (
        "counter",
        "Changelog records written into RocksDB by the bulk restore when this worker took table partitions over.",
    ),
    "booster_restore_seconds_total": ("counter", "Seconds spent in bulk restores."),
    "booster_partition_lag": ("gauge", "Records not yet processed, per input topic and partition of this worker."),
    "booster_deadlines_waiting": ("gauge", "Due deadlines held back by the lag gate."),
    "booster_table_keys": ("gauge", "Estimated keys per table in this worker's active partitions."),
    "booster_record_clock_ahead_seconds": (
        "gauge",
        "Per consumed topic (booster.control and the like are stamped by workers), the largest record timestamp "
        "minus this worker's clock over the current minute: "
        "above 0, a producer's clock runs ahead of the worker's; below 0, records are processed that long "
        "after they were stamped at the soonest (lag, or a producer's clock behind).",
    ),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    def __init__(self) -> None:
        self._values: dict[str, dict[Labels, float]] = defaultdict(dict)

    @staticmethod
    def _labels(labels: dict[str, str | int]) -> Labels:
        return tuple(sorted((k, str(v)) for k, v in labels.items()))

    def inc(self, name: str, value: float = 1.0, **labels: str | int) -> None:
        series = self._values[name]
        key = self._labels(labels)
        series[key] = series.get(key, 0.0) + value

    def set(self, name: str, value: float, **labels: str | int) -> None:
        self._values[name][self._labels(labels)] = value

    def clear(self, name: str) -> None:
        self._values.pop(name, None)

    def get(self, name: str, **labels: str | int) -> float:
        return self._values.get(name, {}).get(self._labels(labels), 0.0)

    def total(self, name: str) -> float:
        return sum(self._values.get(name, {}).values())

    def restored(self, restored: Restored) -> None:
        """A bulk restore's figures."""
        self.inc("booster_restored_records_total", restored.records)
        self.inc("booster_restore_seconds_total", restored.seconds)

    def render(self) -> str:
        lines = []
        for name in sorted(set(HELP) | set(self._values)):
            kind, text = HELP.get(name, ("untyped", name))
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
            series = self._values.get(name) or ({(): 0.0} if kind == "counter" and "{" not in name else {})
            for labels, value in sorted(series.items()):
                rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                suffix = f"{{{rendered}}}" if rendered else ""
                number = int(value) if float(value).is_integer() else value
                lines.append(f"{name}{suffix} {number}")
        return "\n".join(lines) + "\n"
