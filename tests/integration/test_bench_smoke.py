"""The benchmark works end to end, with every audience policy on (a tiny run; no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from booster.broker.local import LocalKafka
from tests.faults.test_kill9 import SHORTEST_SESSION_TIMEOUT


def test_bench_smoke(kafka: LocalKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the restart after kill -9 waits for the session timeout (tests/faults/test_kill9.py says why not 6 s)
    monkeypatch.setenv("BOOSTER_SESSION_TIMEOUT_SECONDS", SHORTEST_SESSION_TIMEOUT)
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "--recipients",
                "2000",
                "--small",
                "1000",
                "--nothing-cap",
                "3000",
                "--naive-cap",
                "2000",
                "--lead",
                "3",
                "--timeout",
                "600",
                "--workdir",
                str(tmp_path),
                "--out",
                str(out),
                "--all-features",
            ]
        )
        == 0
    )
    results = json.loads(out.read_text())
    ratios = results["ratios"]
    assert ratios and all("ratio" in key for key in ratios)
    wanted = {
        "ingest_vs_naive_faust_ratio",
        "ingest_vs_do_nothing_faust_ratio",
        "fanout_vs_plain_producer_ratio",
        "fanout_records_vs_plain_producer_ratio",
    }
    assert wanted <= set(ratios)
    # every audience policy on: the commands are exactly the recipients the workload makes eligible
    for size in ("small", "large"):
        figures = results[size]
        assert figures["features"] == "all" and figures["commands"] == figures["expected_commands"] > 0, figures
    for size in ("small", "large"):
        figures = results[size]
        assert figures["commands"] == figures["expected_commands"] == figures["report_audience"]
        assert figures["outcomes"] > figures["commands"]  # every recipient's, the excluded too (R16)
        assert figures["report_status"] == "SENT"
        assert figures["peak_rss_bytes"] > 0 and figures["recovery_from_changelog_s"] > 0


def test_bench_restore_and_scale_out_smoke(kafka: LocalKafka, tmp_path: Path) -> None:
    """The restore (bulk and Faust's alone) and the scale-out to two workers, tiny; no timing asserted."""
    out = tmp_path / "bench.json"
    argv = ["--recipients", "2000", "--skip-sizes", "--restore", "--scale-out", "1,2", "--lead", "3"]
    assert main([*argv, "--timeout", "600", "--workdir", str(tmp_path), "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    restore = results["restore"]
    # the fresh worker's bulk restore read every changelog record; the baseline's recovery had it all to do
    assert restore["bulk_restored_records"] == restore["changelog_records"] > 2000, restore
    assert restore["bulk_ready_s"] > 0 and restore["faust_ready_s"] > 0
    assert restore["bulk_vs_faust_recovery_speed_ratio"] > 0
    runs = results["scale_out"]["runs"]
    assert set(runs) == {"1", "2"}
    for workers, run in runs.items():
        assert run["commands"] == run["expected_commands"] == run["report_audience"] > 0, workers
        assert len(run["peak_rss_bytes"]) == int(workers)
    assert "ingest_scaling_efficiency_ratio" in runs["2"] and "fanout_scaling_efficiency_ratio" in runs["2"]
