"""TensorRT engine cache: keyed by model hash + TensorRT version + GPU name + precision, a
changed key never loads a stale engine. Building engines needs tensorrt and a GPU, which the
development machines do not have (FACTS.md): that test skips and says so."""

from __future__ import annotations

import importlib.util
import json

import pytest

from ad_perception.runtime import BACKENDS, RuntimeConfigError
from ad_perception.runtime.tensorrt_backend import (
    EngineKey,
    cached_engine,
    engine_path,
    store_engine,
)

KEY = EngineKey("ab" * 32, "10.9.0", "NVIDIA H100 80GB HBM3", "fp16")


def test_cache_returns_only_an_engine_built_for_the_same_key(tmp_path):
    assert cached_engine(tmp_path, KEY) is None
    path = store_engine(tmp_path, KEY, b"engine bytes")
    assert cached_engine(tmp_path, KEY) == path and path.read_bytes() == b"engine bytes"
    for changed in (EngineKey("cd" * 32, KEY.tensorrt_version, KEY.gpu_name, KEY.precision),
                    EngineKey(KEY.model_sha256, "10.10.0", KEY.gpu_name, KEY.precision),
                    EngineKey(KEY.model_sha256, KEY.tensorrt_version, "NVIDIA L4", KEY.precision),
                    EngineKey(KEY.model_sha256, KEY.tensorrt_version, KEY.gpu_name, "int8")):
        assert changed.digest() != KEY.digest()
        assert cached_engine(tmp_path, changed) is None


def test_a_sidecar_that_disagrees_means_rebuild(tmp_path):
    store_engine(tmp_path, KEY, b"engine")
    sidecar = engine_path(tmp_path, KEY).with_suffix(".json")
    values = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**values, "gpu_name": "another GPU"}))
    assert cached_engine(tmp_path, KEY) is None
    sidecar.write_text("{broken")
    assert cached_engine(tmp_path, KEY) is None


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                    reason="checks the message where tensorrt is missing")
def test_missing_tensorrt_is_a_config_error_naming_it():
    with pytest.raises(RuntimeConfigError, match="tensorrt"):
        BACKENDS["tensorrt"].check("cuda", "fp16")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None,
                    reason="tensorrt is not installable here (vendor index only, FACTS.md); "
                    "runs where tensorrt and a GPU exist")
def test_engine_builds_runs_and_is_cached(tmp_path):
    import torch

    from ad_perception.compress.export import export_model_onnx
    from ad_perception.compress.tiny import TINY_CAMERA, tiny_model
    from ad_perception.runtime.tensorrt_backend import TensorRTCore

    if not torch.cuda.is_available():
        pytest.skip("tensorrt is installed but there is no CUDA device")
    model = tiny_model("camera")
    onnx_path = export_model_onnx(model, "camera", TINY_CAMERA, tmp_path / "m.onnx")
    core = TensorRTCore(onnx_path, "00" * 32, "fp32", "cuda", cache_dir=tmp_path / "cache")
    example = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        expected = model(example)
    for got, want in zip(core(example), expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-3)
    again = TensorRTCore(onnx_path, "00" * 32, "fp32", "cuda", cache_dir=tmp_path / "cache")
    assert again.engine_path == core.engine_path
