"""``ad-perception eval`` end to end without ROS: several bags in parallel worker processes
with real (tiny, untrained) models, the report folder, the per-bag cache that makes reruns
resume, and --fail-under / --fail-over as exit codes."""

from __future__ import annotations

import json

import pytest
from eval_support import copy_bag, shared_bag

from ad_perception.cli import main
from ad_perception.eval.plots import pareto_front
from ad_perception.eval.report import speedups
from ad_perception.eval.thresholds import check, parse_threshold

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    import torch

    from ad_perception.models.camera_detector import CameraDetectorConfig, build_camera_detector
    from ad_perception.models.checkpoint import save_checkpoint
    from ad_perception.models.lidar_detector import LidarDetectorConfig, build_lidar_detector

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models")
    produced_by = {"command": "pytest", "seed": 0, "data": "none"}
    camera = CameraDetectorConfig(input_size=(160, 96), width_multiplier=0.25, fpn_channels=32)
    lidar = LidarDetectorConfig(point_cloud_range=(0.0, -12.8, -3.0, 25.6, 12.8, 1.0),
                                pillar_channels=16, backbone_channels=(16, 32, 64),
                                backbone_layers=(1, 1, 1), neck_channels=32, head_channels=32)
    save_checkpoint(build_camera_detector(camera), folder / "camera.pt", camera, produced_by)
    save_checkpoint(build_lidar_detector(lidar), folder / "lidar.pt", lidar, produced_by)
    return folder / "camera.pt", folder / "lidar.pt"


def test_offline_single_process_scores_every_frame(tiny_models, tmp_path_factory, tmp_path):
    bag = shared_bag(tmp_path_factory)
    camera, lidar = tiny_models
    out = tmp_path / "out"
    assert main(["eval", str(bag), "--variants", "baseline", "--camera-checkpoint",
                 str(camera), "--lidar-checkpoint", str(lidar), "--workers", "1",
                 "--threads", "1", "--no-progress", "--json", str(out / "r.json")]) == 0
    entry = json.loads((out / "r.json").read_text())["variants"]["baseline"]
    assert entry["frames"] == 6 and entry["camera"]["frames"] == 6
    assert entry["latency_kind"] == "compute" and entry["latency_ms"]["p50"] > 0
    assert entry["drops"]["fused"]["dropped"] == 0


@pytest.mark.slow
def test_offline_parallel_report_cache_and_thresholds(tiny_models, tmp_path_factory, tmp_path,
                                                      capsys):
    first = shared_bag(tmp_path_factory)
    second = copy_bag(first, tmp_path / "second_drive")
    camera, lidar = tiny_models
    out = tmp_path / "out"
    command = ["eval", str(first), str(second), "--mode", "offline", "--variants", "baseline",
               "--camera-checkpoint", str(camera), "--lidar-checkpoint", str(lidar),
               "--out", str(out), "--workers", "2", "--threads", "2", "--no-progress"]
    assert main(command) == 0
    results = json.loads((out / "results.json").read_text())
    entry = results["variants"]["baseline"]
    # the baseline-models issue's shape, one entry per variant
    assert set(entry["camera"]) >= {"ap50", "map50"}
    assert set(entry["lidar"]) >= {"bev_ap", "map_bev"}
    assert set(entry["fused"]) >= {"bev_ap", "class_accuracy"}
    assert set(entry["latency_ms"]) >= {"p50", "p99"}
    assert entry["frames"] == 12 and entry["latency_ms"]["count"] == 12
    assert entry["cached_bags"] == 0 and results["failed"] == []
    for name in ("report.md", "report.html", "pr_curves.png", "latency_cdf.png", "pareto.png",
                 "ap_by_distance.png"):
        assert (out / name).stat().st_size > 1000, name
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert "![Accuracy vs latency across variants](pareto.png)" in (out / "report.md").read_text()
    assert len(list((out / "cache" / "baseline").glob("*.json"))) == 2
    printed = capsys.readouterr().out
    assert "cam mAP50" in printed and "report:" in printed

    # rerun: both bags come from the cache, same accuracy; thresholds decide the exit code
    code = main(command + ["--fail-under", "baseline.camera.map50=0.9",
                           "--fail-over", "*.latency_ms.p99=1e9"])
    rerun = json.loads((out / "results.json").read_text())["variants"]["baseline"]
    assert rerun["cached_bags"] == 2
    assert rerun["lidar"]["bev_ap"] == entry["lidar"]["bev_ap"]
    assert code == 1
    err = capsys.readouterr().err
    assert "threshold failed: baseline.camera.map50" in err and "latency" not in err
    assert main(command + ["--fail-under", "baseline.frames=12"]) == 0


def test_configuration_errors_fail_fast(tmp_path_factory, tmp_path, capsys):
    bag = shared_bag(tmp_path_factory)
    assert main(["eval", str(bag), "--variants", "no_such_variant"]) == 2
    assert "unknown variant" in capsys.readouterr().err
    assert main(["eval", str(bag), "--mode", "recorded", "--variants", "a",
                 "--fail-under", "b.camera.map50=0.5"]) == 2
    assert "not among --variants" in capsys.readouterr().err
    assert main(["eval", str(bag), "--mode", "recorded", "--fail-under", "map50"]) == 2
    assert "VARIANT.KEY" in capsys.readouterr().err
    bad_map = tmp_path / "m.yaml"
    bad_map.write_text("topicz: {}\n")
    assert main(["eval", str(bag), "--mode", "recorded", "--topics", str(bad_map)]) == 2
    assert "unknown key" in capsys.readouterr().err


def test_thresholds():
    results = {"variants": {"a": {"camera": {"map50": 0.7}, "fused": {"map_bev": None}},
                            "b": {"camera": {"map50": 0.9}, "fused": {"map_bev": 0.5}}}}
    assert check(results, [parse_threshold("*.camera.map50=0.8")]) == [
        "a.camera.map50 = 0.7 < 0.8"]
    assert check(results, [parse_threshold("b.camera.map50=0.95", "over")]) == []
    (null,) = check(results, [parse_threshold("a.fused.map_bev=0.1")])
    assert "not scored" in null
    (typo,) = check(results, [parse_threshold("a.camera.map_50=0.1")])
    assert "no key 'map_50'" in typo and "map50" in typo
    for text in ("a.camera.map50", "a=1", "a.b=x", "a.b=nan"):
        with pytest.raises(ValueError, match="fail-under"):
            parse_threshold(text)


def test_pareto_front_and_speedups():
    points = [(100.0, 0.8), (10.0, 0.79), (50.0, 0.7), (5.0, 0.5), (float("nan"), 0.9)]
    assert pareto_front(points) == [3, 1, 0]
    variants = {"int8": {"latency_ms": {"p50": 10.0}}, "baseline": {"latency_ms": {"p50": 80.0}}}
    assert speedups(variants) == {"int8": 8.0, "baseline": 1.0}
