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
