"""Summaries and the picture of repeated pipeline-benchmark runs (synthetic rows)."""

from __future__ import annotations

import numpy as np
import pytest

from ad_perception.monitoring.pipeline_report import format_summary, plot_runs, summarise_runs


def _rows(seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for repeat in range(4):
        for name, mode, share in (("int8", "composed", 0.09), ("int8", "multiprocess", 0.12)):
            rows.append({"name": name, "mode": mode, "status": "ok", "repeat": repeat,
                         "ros_overhead_share": share + rng.uniform(-0.005, 0.005),
                         "e2e_ms_p50": 70.0 + repeat, "e2e_ms_p99": 100.0 + 20 * repeat,
                         "frames_in": 100, "dropped": repeat % 2})
    rows.append({"name": "baseline", "mode": "composed", "status": "failed", "reason": "x"})
    return rows


def test_summary_per_case_counts_runs_within_the_targets():
    summary = summarise_runs(_rows())
    assert [(s["name"], s["mode"], s["runs"]) for s in summary] == [
        ("int8", "composed", 4), ("int8", "multiprocess", 4)]  # failed runs left out
    composed, multiprocess = summary
    assert composed["runs_within_overhead_target"] == 4
    assert multiprocess["runs_within_overhead_target"] == 0
    assert 0.085 <= composed["ros_overhead_share_min"] <= composed[
        "ros_overhead_share_median"] <= composed["ros_overhead_share_max"] <= 0.095
    assert composed["e2e_ms_p99_max"] == 160.0 and composed["e2e_ms_p99_median"] == 130.0
    assert composed["runs_within_p99_target"] == 3  # 100, 120, 140 (160 is over 150)
    assert composed["dropped_total"] == 2 and composed["frames_in_total"] == 400
    text = format_summary(summary)
    assert "int8" in text and "multiprocess" in text and len(text.splitlines()) == 3


def test_runs_without_figures_are_not_counted_as_within_targets():
    rows = _rows()
    rows[0]["ros_overhead_share"] = None
    rows[0]["e2e_ms_p99"] = rows[0]["e2e_ms_p50"] = 0.0  # everything fell in the warm-up
    composed = summarise_runs(rows)[0]
    assert composed["runs"] == 4 and composed["runs_within_overhead_target"] == 3
    assert composed["runs_within_p99_target"] == 2 and composed["e2e_ms_p99_median"] == 140.0
    only_warmup = summarise_runs(rows[:1])[0]
    assert only_warmup["e2e_ms_p99_median"] is None and only_warmup[
        "ros_overhead_share_median"] is None
    assert "-" in format_summary([only_warmup]).splitlines()[1]
    assert summarise_runs([]) == []


def test_plot_writes_a_png(tmp_path):
    path = plot_runs(_rows(), tmp_path / "runs.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


@pytest.mark.parametrize("target, within", [(0.095, 4), (0.08, 0)])
def test_the_overhead_target_is_a_parameter(target, within):
    assert summarise_runs(_rows(), overhead_target=target)[0][
        "runs_within_overhead_target"] == within
