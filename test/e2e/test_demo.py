"""`ad-perception demo` end to end on a short drive: generation, replay over DDS between two
processes, decoding, and the baseline detectors scored offline."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ad_perception.eval.variants import shipped_variants
from ad_perception.ros_env import ros_environment

pytest.importorskip("rclpy")
pytestmark = pytest.mark.e2e


def test_demo_replays_decodes_and_scores(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ad_perception.cli", "demo", "--bag", str(tmp_path / "bag"),
         "--frames", "6", "--seed", "5", "--out", str(tmp_path / "out")],
        env=ros_environment(), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "demo.json").read_text())
    rows = {row["topic"]: row for row in report["topics"]}
    for topic in ("/sensing/camera/front/image_raw", "/sensing/lidar/top/points",
                  "/ground_truth/objects"):
        assert rows[topic]["sent"] == 6
        assert rows[topic]["received"] == 6 and rows[topic]["errors"] == 0
        assert rows[topic]["latency_ms_p50"] > 0
    assert (tmp_path / "out" / "preview.png").stat().st_size > 10_000
    variant = shipped_variants()["baseline"]
    if variant.camera_checkpoint.exists():
        assert report["offline"]["frames"] == 6
        assert 0.0 <= report["offline"]["camera"]["map50"] <= 1.0
    assert "Not run yet" in result.stdout
