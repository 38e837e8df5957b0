"""Summaries and the picture of repeated pipeline-benchmark runs (synthetic rows)."""

from __future__ import annotations

import numpy as np
import pytest

from ad_perception.monitoring.pipeline_report import (
    format_summary,
    plot_runs,
    ros_overhead,
    stage_value,
    summarise_runs,
)


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


def _summaries(lidar_publish_ms: float = 0.2, fusion_received_ms: float = 50.7) -> dict:
    """Node summaries as the nodes write them, lidar on the critical path."""
    def stages(**values: float) -> dict:
        return {"stages_ms": {name: {"p50": v, "p99": v} for name, v in values.items()}}

    return {
        "camera_detector": stages(input_delay=3.0, conversion=0.1, pack=0.2, publish=0.1,
                                  output_delay=30.0) | {"pipeline_latency_ms": {"p50_ms": 30.1}},
        "lidar_detector": stages(input_delay=5.0, conversion=0.5, pack=0.2,
                                 publish=lidar_publish_ms, output_delay=50.0)
        | {"pipeline_latency_ms": {"p50_ms": 50.0 + lidar_publish_ms}},
        "fusion": stages(conversion=0.4, conversion_lidar=0.2, pack=0.25, publish=0.1,
                         output_delay=58.0)
        | {"pipeline_latency_ms": {"p50_ms": 58.1},
           "inputs": {"lidar/detections": {"p50_ms": fusion_received_ms},
                      "camera/detections": {"p50_ms": 30.6}}},
        "latency_monitor": {"topics": {"/objects": {"totals": {"p50_ms": 58.5}}}},
    }


def test_overhead_sums_the_critical_path_from_each_publish_call():
    overhead = ros_overhead(_summaries(), 60.0, "/objects", {"lidar": 1.0, "camera": 0.5})
    assert overhead["critical_path"] == "lidar"
    assert overhead["parts_ms"] == pytest.approx({
        "sensor_transport": 4.0, "detector_handling": 0.7, "publish_to_fusion": 0.7,
        "fusion_handling": 0.45, "publish_to_monitor": 0.5})
    assert overhead["total_ms"] == pytest.approx(6.35)
    assert overhead["e2e_from_publish_ms"] == 59.0  # the player's lateness out of both sides
    assert overhead["share"] == pytest.approx(6.35 / 59.0)


def test_a_publish_that_returns_after_the_reader_ran_is_not_counted_twice():
    """publish() took 3.6 ms because the woken fusion computed on the same core; the fusion
    had the message 0.3 ms after the call: the hop is 0.3 ms, not 3.6."""
    overhead = ros_overhead(_summaries(lidar_publish_ms=3.6, fusion_received_ms=50.3), 60.0,
                            "/objects")
    assert overhead["parts_ms"]["publish_to_fusion"] == pytest.approx(0.3)
    assert overhead["detector_publish_ms"] == 3.6  # reported beside it
    assert overhead["share"] == pytest.approx((5.0 + 0.7 + 0.3 + 0.45 + 0.5) / 60.0)


def test_the_slower_detector_is_the_critical_path_and_negative_hops_count_zero():
    summaries = _summaries(fusion_received_ms=49.0)  # medians can cross: not a negative hop
    assert ros_overhead(summaries, 60.0, "/objects")["parts_ms"]["publish_to_fusion"] == 0.0
    summaries["camera_detector"]["pipeline_latency_ms"]["p50_ms"] = 70.0
    summaries["camera_detector"]["stages_ms"]["output_delay"]["p50"] = 69.9
    summaries["fusion"]["inputs"]["camera/detections"]["p50_ms"] = 70.4
    camera_path = ros_overhead(summaries, 80.0, "/objects", {"camera": 0.5, "lidar": 1.0})
    assert camera_path["critical_path"] == "camera"
    assert camera_path["parts_ms"]["sensor_transport"] == pytest.approx(2.5)
    assert camera_path["parts_ms"]["publish_to_fusion"] == pytest.approx(0.5)
    assert stage_value(summaries["fusion"], "no_such_stage") == 0.0


def test_hops_are_per_frame_when_the_nodes_list_their_frames():
    """The monitor leaves out warm-up frames; the nodes' medians include them. Ten frames:
    the first four are slow warm-up frames (the fusion published them 30 ms late), which the
    monitor did not time. Per frame each hop is 0.4-0.6 ms; the medians' difference would say
    the monitor hop is 0 (clamped) and the fusion hop much more."""
    summaries = _summaries()
    stamps = [str(1_000_000_000 + i * 100_000_000) for i in range(10)]
    late = {s: (30.0 if i < 4 else 0.0) for i, s in enumerate(stamps)}
    summaries["lidar_detector"]["frames_by_stamp"] = {
        s: {"input_delay": 4.0 + late[s], "output_delay": 40.0 + late[s]} for s in stamps}
    summaries["fusion"]["inputs_by_stamp"] = {
        "lidar/detections": {s: 40.5 + late[s] for s in stamps}}
    summaries["fusion"]["frames_by_stamp"] = {s: {"output_delay": 48.0 + late[s]}
                                              for s in stamps}
    summaries["latency_monitor"]["topics"]["/objects"]["by_stamp"] = {
        s: 48.6 for s in stamps[4:]}  # after the warm-up only
    overhead = ros_overhead(summaries, 48.6, "/objects", {"lidar": 1.0})
    assert overhead["hops_from"] == "per_frame" and overhead["frames_matched"] == 6
    assert overhead["parts_ms"]["sensor_transport"] == pytest.approx(3.0)
    assert overhead["parts_ms"]["publish_to_fusion"] == pytest.approx(0.5)
    assert overhead["parts_ms"]["publish_to_monitor"] == pytest.approx(0.6)
    del summaries["latency_monitor"]["topics"]["/objects"]["by_stamp"]
    assert ros_overhead(summaries, 48.6, "/objects")["hops_from"] == "medians"
