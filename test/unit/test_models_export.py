"""Both cores export as one fixed-size graph and run unchanged in onnxruntime and OpenVINO.

As in ultralytics' exporter tests, every export is followed by inference on the exported file
and a numerical comparison with eager torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
import pytest
import torch

from ad_perception.models.camera_detector import CameraDetectorConfig, build_camera_detector
from ad_perception.models.lidar_detector import LidarDetectorConfig, build_lidar_detector

CAMERA = CameraDetectorConfig(input_size=(160, 96), width_multiplier=0.25, fpn_channels=32)
LIDAR = LidarDetectorConfig(point_cloud_range=(0.0, -12.8, -3.0, 25.6, 12.8, 1.0),
                            pillar_channels=16, backbone_channels=(16, 32, 64),
                            backbone_layers=(1, 1, 1), neck_channels=32, head_channels=32)
# dynamo=False on purpose: it writes one self-contained opset-17 file (FACTS.md).
pytestmark = pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript")


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _randomise_batchnorm(model: torch.nn.Module) -> None:
    """Fresh BN is the identity; give it statistics so folding errors would show."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            count = module.num_features
            module.running_mean.copy_(torch.randn(count, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(count, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(count, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(count, generator=generator) * 0.1)


def export_and_compare(core: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    core.eval()
    _randomise_batchnorm(core)
    with torch.no_grad():
        expected = [o.numpy() for o in core(example)]
    torch.onnx.export(core, (example,), str(path), dynamo=False, opset_version=17,
                      input_names=["input"])
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # one file, no .data
    onnx.checker.check_model(str(path))

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    from_onnxruntime = session.run(None, {"input": example.numpy()})
    assert len(from_onnxruntime) == len(expected)
    for got, want in zip(from_onnxruntime, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)

    compiled = ov.Core().compile_model(
        ov.convert_model(str(path)), "CPU",
        {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1},
    )
    result = compiled([example.numpy()])
    for index, want in enumerate(expected):
        np.testing.assert_allclose(result[compiled.outputs[index]], want, atol=1e-3, rtol=1e-3)


def test_camera_core_exports_to_onnx_and_openvino(tmp_path):
    export_and_compare(build_camera_detector(CAMERA), torch.randn(1, 3, 96, 160),
                       tmp_path / "camera.onnx")


def test_lidar_core_exports_to_onnx_and_openvino(tmp_path):
    bev = torch.relu(torch.randn(1, *LIDAR.bev_shape))
    export_and_compare(build_lidar_detector(LIDAR).bev_backbone_and_heads, bev,
                       tmp_path / "lidar.onnx")
