"""CUDA paths of the runtime (run by scripts/gpu_check.sh on the GPU machine; they skip on
the CPU-only development machines and say so): fp32/fp16/bf16 torch cores on the GPU agree
with the CPU fp32 model, a torch fp16 variant directory runs on CUDA, and onnxruntime's CUDA
provider where the GPU build is installed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ad_perception.compress.agreement import agreement, output_difference
from ad_perception.compress.tiny import TINY_LIDAR, save_tiny_checkpoint
from ad_perception.core.types import PointCloud
from ad_perception.runtime import load_pipeline, resolve_device

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device on this machine; scripts/gpu_check.sh "
                                "runs these on the GPU machine")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("cuda")
    return {kind: save_tiny_checkpoint(kind, root / f"{kind}.pt") for kind in ("camera", "lidar")}


def _images():
    return [np.random.default_rng(i).integers(0, 256, (120, 200, 3), dtype=np.uint8)
            for i in range(3)]


def test_cuda_resolves_without_fallback():
    assert resolve_device("cuda") == ("cuda", False)
    assert resolve_device("auto") == ("cuda", False)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_camera_on_cuda_agrees_with_cpu_fp32(checkpoints, precision):
    cpu = load_pipeline(checkpoints["camera"], threads=1, score_threshold=0.05)
    gpu = load_pipeline(checkpoints["camera"], device="cuda", precision=precision,
                        score_threshold=0.05)
    example = torch.randn(1, 3, 96, 160, generator=torch.Generator().manual_seed(0))
    outputs = gpu.core(example)
    assert all(o.device.type == "cpu" and o.dtype == torch.float32 for o in outputs)
    if precision == "fp32":
        assert output_difference(cpu.core(example), outputs)["max_abs"] < 1e-3
    images = _images()
    score = agreement([cpu(i) for i in images], [gpu(i) for i in images])
    assert score.reference > 0 and score.f1 >= (0.99 if precision == "fp32" else 0.8), score


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_lidar_on_cuda_agrees_with_cpu_fp32(checkpoints, precision):
    rng = np.random.default_rng(1)
    low, high = TINY_LIDAR.point_cloud_range[:3], TINY_LIDAR.point_cloud_range[3:]
    clouds = [PointCloud(rng.uniform(low, high, (3000, 3)).astype(np.float32),
                         rng.uniform(0, 1, 3000).astype(np.float32)) for _ in range(3)]
    cpu = load_pipeline(checkpoints["lidar"], threads=1, score_threshold=0.05)
    gpu = load_pipeline(checkpoints["lidar"], device="cuda", precision=precision,
                        score_threshold=0.05)
    score = agreement([cpu(c) for c in clouds], [gpu(c) for c in clouds])
    assert score.reference > 0 and score.f1 >= 0.8, score


def test_fp16_variant_directory_runs_on_cuda(checkpoints, tmp_path):
    from ad_perception.compress.recipe import parse_recipe
    from ad_perception.compress.tiny import TINY_CAMERA, tiny_model
    from ad_perception.compress.variant import Deploy, write_variant

    recipe = parse_recipe("name: fp16_gpu\nsteps: [{precision: {precision: fp16}}]")
    out = write_variant(tmp_path / "fp16_gpu", "fp16_gpu", "camera", tiny_model("camera"),
                        TINY_CAMERA, Deploy("torch", "fp16", None,
                                            {"device": "cuda", "fold_batchnorm": True}),
                        recipe, None, checkpoints["camera"], "0" * 64, [], {},
                        {"command": "test", "seed": 0, "data": []})
    pipeline = load_pipeline(out, device="cuda", score_threshold=0.05)
    assert pipeline.core.dtype == torch.float16
    assert len(pipeline(_images()[0])) >= 0


def test_torch_compile_on_cuda(checkpoints):
    eager = load_pipeline(checkpoints["camera"], device="cuda", precision="fp16")
    compiled = load_pipeline(checkpoints["camera"], device="cuda", precision="fp16",
                             compile=True)
    example = torch.randn(1, 3, 96, 160, generator=torch.Generator().manual_seed(0))
    assert output_difference(eager.core(example), compiled.core(example))["max_abs"] < 5e-2


def test_onnxruntime_cuda_provider(checkpoints):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime build has no CUDA provider (onnxruntime-gpu not installed)")
    cpu = load_pipeline(checkpoints["camera"], threads=1, score_threshold=0.05)
    gpu = load_pipeline(checkpoints["camera"], backend="onnxruntime", device="cuda",
                        score_threshold=0.05)
    images = _images()
    assert agreement([cpu(i) for i in images], [gpu(i) for i in images]).f1 >= 0.99
