"""The transport benchmark runs end to end over real DDS and writes the documented JSON.
Timing figures are not asserted here (benchmarks report ratios; see docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_transport_project_profile_delivers_every_image(tmp_path):
    out = tmp_path / "transport.json"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/bench_transport.py"), "--duration", "2",
         "--profiles", "project", "--qos", "reliable", "--json", str(out)],
        check=True, timeout=120, capture_output=True,
    )
    report = json.loads(out.read_text())
    cases = {(c["profile"], c["qos"], c["topic"]): c for c in report["cases"]}
    assert set(cases) == {("project", "reliable", "image"), ("project", "reliable", "cloud")}
    for case in cases.values():
        assert {"delivered_ratio", "latency_ms_p50", "latency_ms_p99"} <= set(case)
        assert case["latency_ms_p50"] > 0
    image = cases[("project", "reliable", "image")]
    assert image["sent"] == 40 and image["delivered_ratio"] == 1.0
