"""Node parameter tables: defaults validate, every bad value is named with what to change,
and model loading turns runtime refusals into configuration errors."""

import json

import pytest
import torch

from ad_perception.core.node_params import (
    NODE_PARAMS,
    ConfigError,
    check_one,
    load_detector,
    resolve_model_path,
    validate,
)
from ad_perception.core.pipelines import CameraPipeline, LidarPipeline
from ad_perception.models.camera_detector import CameraDetectorConfig, build_camera_detector
from ad_perception.models.checkpoint import save_checkpoint
from ad_perception.models.lidar_detector import LidarDetectorConfig, build_lidar_detector

CAMERA = CameraDetectorConfig(input_size=(160, 96), width_multiplier=0.25, fpn_channels=32)
LIDAR = LidarDetectorConfig(point_cloud_range=(0.0, -12.8, -3.0, 25.6, 12.8, 1.0),
                            pillar_channels=16, backbone_channels=(16, 32, 64),
                            backbone_layers=(1, 1, 1), neck_channels=32, head_channels=32)
PRODUCED_BY = {"command": "pytest", "seed": 0, "data": "none"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models")
    save_checkpoint(build_camera_detector(CAMERA), folder / "camera.pt", CAMERA, PRODUCED_BY)
    save_checkpoint(build_lidar_detector(LIDAR), folder / "lidar.pt", LIDAR, PRODUCED_BY)
    return folder


@pytest.mark.parametrize("node", sorted(NODE_PARAMS))
def test_defaults_validate(node):
    values = validate(NODE_PARAMS[node], {})
    assert set(values) == {spec.name for spec in NODE_PARAMS[node]}


def test_ints_promoted_to_floats_and_types_enforced():
    values = validate(NODE_PARAMS["fusion"], {"sync_timeout_ms": 80})
    assert values["sync_timeout_ms"] == 80.0 and isinstance(values["sync_timeout_ms"], float)
    with pytest.raises(ConfigError, match="'use_points'.*must be a bool"):
        validate(NODE_PARAMS["fusion"], {"use_points": "yes"})


def test_every_problem_is_listed_with_the_fix():
    with pytest.raises(ConfigError) as caught:
        validate(NODE_PARAMS["camera_detector"], {
            "backend": "tflite", "score_threshold": 1.5, "device": "gpu0",
            "qos.input.reliability": "fast", "input_size": [100, 100]})
    text = str(caught.value)
    for expected in ("'backend' = 'tflite': must be one of",
                     "'score_threshold' = 1.5: must be <= 1",
                     "'device' = 'gpu0': must be 'cpu', 'cuda', 'cuda:N'",
                     "'qos.input.reliability' = 'fast'", "'input_size'"):
        assert expected in text


def test_warning_thresholds_must_come_first():
    with pytest.raises(ConfigError, match="latency_warn_ms.*must be <= 'latency_error_ms'"):
        validate(NODE_PARAMS["lidar_detector"], {"latency_warn_ms": 200.0})


def test_check_one_for_runtime_changes():
    spec = {s.name: s for s in NODE_PARAMS["fusion"]}
    assert check_one(spec["sync_tolerance_ms"], 20.0) is None
    assert "must be > 0" in check_one(spec["sync_tolerance_ms"], 0.0)
    assert spec["sync_tolerance_ms"].runtime and not spec["base_frame"].runtime


def test_model_path_resolution(tmp_path, checkpoints):
    assert resolve_model_path("camera", "baseline", str(checkpoints / "camera.pt")).is_file()
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model_path("camera", "baseline", str(tmp_path / "nope.pt"))
    with pytest.raises(ConfigError, match="unknown variant.*known"):
        resolve_model_path("lidar", "no_such_variant", "")


def _detector_values(node, **overrides):
    return validate(NODE_PARAMS[node], overrides)


def test_load_detector_builds_the_right_pipeline(checkpoints, torch_single_thread):
    camera, device, fell_back = load_detector("camera", _detector_values(
        "camera_detector", model_path=str(checkpoints / "camera.pt"), score_threshold=0.25))
    assert isinstance(camera, CameraPipeline) and camera.score_threshold == 0.25
    assert (device, fell_back) == ("cpu", False)
    lidar, _, _ = load_detector("lidar", _detector_values(
        "lidar_detector", model_path=str(checkpoints / "lidar.pt")))
    assert isinstance(lidar, LidarPipeline)


def test_load_detector_refusals_are_config_errors(checkpoints, tmp_path, torch_single_thread):
    with pytest.raises(ConfigError, match="not a camera model"):
        load_detector("camera", _detector_values("camera_detector",
                                                 model_path=str(checkpoints / "lidar.pt")))
    with pytest.raises(ConfigError, match="input_size.*was built for \\[160, 96\\]"):
        load_detector("camera", _detector_values(
            "camera_detector", model_path=str(checkpoints / "camera.pt"), input_size=[640, 384]))
    broken = tmp_path / "camera.pt"
    broken.write_bytes((checkpoints / "camera.pt").read_bytes()[:100])
    (tmp_path / "camera.pt.json").write_text(
        json.dumps(json.loads((checkpoints / "camera.pt.json").read_text())))
    with pytest.raises(ConfigError, match="cannot load the camera model"):
        load_detector("camera", _detector_values("camera_detector", model_path=str(broken)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU fallback")
def test_cuda_without_gpu_falls_back_to_cpu(checkpoints, torch_single_thread):
    _, device, fell_back = load_detector("lidar", _detector_values(
        "lidar_detector", model_path=str(checkpoints / "lidar.pt"), device="cuda"))
    assert (device, fell_back) == ("cpu", True)
