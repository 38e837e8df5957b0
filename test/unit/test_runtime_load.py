"""``load_pipeline`` on checkpoints: every backend runs the same model and agrees with eager
torch (raw outputs and detections), and every bad request fails with a message naming it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ad_perception.compress.agreement import agreement, output_difference
from ad_perception.compress.tiny import TINY_LIDAR, save_tiny_checkpoint, tiny_model
from ad_perception.core.pipelines import (
    CameraPipeline,
    LidarPipeline,
    as_core_input,
    input_layout,
)
from ad_perception.core.types import PointCloud
from ad_perception.runtime import (
    BACKENDS,
    RuntimeConfigError,
    RuntimeInputError,
    available_backends,
    load_pipeline,
    resolve_device,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")
FLOAT_BACKENDS = ["torch", "onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtime")
    return {kind: save_tiny_checkpoint(kind, root / f"{kind}.pt") for kind in ("camera", "lidar")}


def _images(count: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, (120, 200, 3), dtype=np.uint8) for _ in range(count)]


def _clouds(count: int = 3) -> list[PointCloud]:
    rng = np.random.default_rng(6)
    low, high = TINY_LIDAR.point_cloud_range[:3], TINY_LIDAR.point_cloud_range[3:]
    return [PointCloud(rng.uniform(low, high, (3000, 3)).astype(np.float32),
                       rng.uniform(0, 1, 3000).astype(np.float32)) for _ in range(count)]


def test_backend_table_lists_what_validation_needs():
    for name, spec in BACKENDS.items():
        assert spec.name == name and spec.suffixes and spec.devices and spec.precisions
    assert {"torch", "onnxruntime", "openvino"} <= set(available_backends())


@pytest.mark.parametrize("backend", FLOAT_BACKENDS)
def test_camera_backends_match_eager_torch(checkpoints, backend):
    reference = tiny_model("camera")
    pipeline = load_pipeline(checkpoints["camera"], backend=backend, threads=1,
                             score_threshold=0.05)
    assert isinstance(pipeline, CameraPipeline)
    example = torch.randn(1, 3, 96, 160, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = [o.numpy() for o in reference(example)]
    # OpenVINO cores take the image channels last (the pipeline letterboxes into that)
    assert input_layout(pipeline.core) == ("NHWC" if backend == "openvino" else "NCHW")
    difference = output_difference(expected, pipeline.core(as_core_input(example,
                                                                         pipeline.core)))
    assert difference["max_abs"] < 1e-3, difference
    source = CameraPipeline(reference, pipeline.config, 0.05)
    images = _images()
    result = agreement([source(i) for i in images], [pipeline(i) for i in images])
    assert result.reference > 0 and result.f1 >= 0.99


@pytest.mark.parametrize("backend", FLOAT_BACKENDS)
def test_lidar_backends_match_eager_torch(checkpoints, backend):
    reference = tiny_model("lidar")
    pipeline = load_pipeline(checkpoints["lidar"], backend=backend, threads=1,
                             score_threshold=0.05)
    assert isinstance(pipeline, LidarPipeline)
    source = LidarPipeline(reference, pipeline.config, 0.05)
    clouds = _clouds()
    result = agreement([source(c) for c in clouds], [pipeline(c) for c in clouds])
    assert result.reference > 0 and result.f1 >= 0.99


def test_torch_bf16_runs_and_mostly_agrees(checkpoints):
    fp32 = load_pipeline(checkpoints["camera"], threads=1, score_threshold=0.05)
    bf16 = load_pipeline(checkpoints["camera"], precision="bf16", threads=1,
                         score_threshold=0.05)
    images = _images()
    result = agreement([fp32(i) for i in images], [bf16(i) for i in images])
    assert result.f1 >= 0.8


@pytest.mark.parametrize("backend", FLOAT_BACKENDS)
def test_wrong_input_shape_is_named(checkpoints, backend):
    pipeline = load_pipeline(checkpoints["camera"], backend=backend, threads=1)
    with pytest.raises(RuntimeInputError, match=r"expected shape .*(3, 96, 160|96, 160, 3)"):
        pipeline.core(torch.zeros(1, 3, 100, 100))


def test_wrong_pillar_shape_is_named(checkpoints):
    pipeline = load_pipeline(checkpoints["lidar"], backend="openvino", threads=1)
    with pytest.raises(RuntimeInputError, match="pillar features"):
        pipeline.core(torch.zeros(5, 3, 9), torch.ones(5), torch.zeros(5, 3, dtype=torch.long), 1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"backend": "tflite"}, "unknown backend 'tflite'"),
    ({"backend": "tensorrt"}, "tensorrt"),
    ({"device": "tpu"}, "unknown device 'tpu'"),
    ({"backend": "openvino", "precision": "int8"}, "int8 openvino model has to be made"),
    ({"precision": "fp8"}, "unknown precision 'fp8'"),
    ({"backend": "openvino", "precision": "fp16"}, "supports precisions"),
])
def test_bad_requests_say_what_to_fix(checkpoints, kwargs, message):
    with pytest.raises(RuntimeConfigError, match=message):
        load_pipeline(checkpoints["camera"], **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_cuda_without_gpu_is_refused_and_resolve_device_falls_back(checkpoints):
    with pytest.raises(RuntimeConfigError, match="no such CUDA device"):
        load_pipeline(checkpoints["camera"], device="cuda")
    assert resolve_device("cuda") == ("cpu", True)
    assert resolve_device("cpu") == ("cpu", False)
    assert resolve_device("auto") == ("cpu", False)


def test_missing_truncated_and_tampered_checkpoints(checkpoints, tmp_path):
    with pytest.raises(RuntimeConfigError, match="does not exist"):
        load_pipeline(tmp_path / "nothing.pt")
    path = save_tiny_checkpoint("camera", tmp_path / "model.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeConfigError, match="does not match the card"):
        load_pipeline(path)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(RuntimeConfigError, match="sha256"):
        load_pipeline(path)
    bare = tmp_path / "model.onnx"
    bare.write_bytes(b"not onnx")
    with pytest.raises(RuntimeConfigError, match="variant directory"):
        load_pipeline(bare)
    with pytest.raises(RuntimeConfigError, match="without card.json"):
        load_pipeline(tmp_path)


@pytest.mark.parametrize("env, pinned", [(None, False), ("1", True)])
def test_openvino_leaves_threads_to_the_scheduler_unless_asked(checkpoints, monkeypatch, env,
                                                              pinned):
    """Two OpenVINO processes that each pin their inference thread pin both to the same first
    core (the perception graph's camera and lidar detectors did, docs/benchmarks.md)."""
    from ad_perception.runtime.openvino_backend import PINNING_ENV

    if env is None:
        monkeypatch.delenv(PINNING_ENV, raising=False)
    else:
        monkeypatch.setenv(PINNING_ENV, env)
    pipeline = load_pipeline(checkpoints["camera"], backend="openvino", threads=1)
    assert pipeline.core.compiled.get_property("ENABLE_CPU_PINNING") is pinned


def test_channels_last_is_only_for_image_cores(checkpoints):
    from ad_perception.compress.export import export_model_onnx, to_openvino
    from ad_perception.runtime.openvino_backend import OpenVinoCore

    model = tiny_model("lidar")
    bev = to_openvino(export_model_onnx(model, "lidar", TINY_LIDAR))
    with pytest.raises(RuntimeConfigError, match="channels-last input is for image cores"):
        OpenVinoCore(bev, threads=1, label="bev", channels_last=True)
    assert OpenVinoCore(bev, threads=1, label="bev").input_layout == "NCHW"
