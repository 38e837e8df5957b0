"""The TensorRT backend (CUDA, where the ``tensorrt`` package is installed; it cannot be
installed on the development machines, FACTS.md). Engines are built from the variant's ONNX
file and cached under a key of model hash + TensorRT version + GPU name + precision: a new
driver stack, another GPU or a changed model gives a new key, so a stale engine is never
loaded; an unreadable cached engine is rebuilt.

The cache-key logic is plain Python and is tested everywhere; building and running engines
is tested only where TensorRT and a GPU exist.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ad_perception.runtime.errors import RuntimeConfigError


def default_cache_dir() -> Path:
    root = os.environ.get("AD_PERCEPTION_CACHE") or Path.home() / ".cache" / "ad_perception"
    return Path(root) / "tensorrt"


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; equal keys mean a cached engine is reusable."""

    model_sha256: str
    tensorrt_version: str
    gpu_name: str
    precision: str

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:24]


def engine_path(cache_dir: Path, key: EngineKey) -> Path:
    return Path(cache_dir) / f"{key.digest()}.engine"


def cached_engine(cache_dir: Path, key: EngineKey) -> Path | None:
    """The cached engine for ``key`` if its sidecar records exactly this key, else None."""
    path = engine_path(cache_dir, key)
    sidecar = path.with_suffix(".json")
    if not (path.is_file() and sidecar.is_file()):
        return None
    try:
        recorded = EngineKey(**json.loads(sidecar.read_text()))
    except (json.JSONDecodeError, TypeError):
        return None
    return path if recorded == key else None


def store_engine(cache_dir: Path, key: EngineKey, engine_bytes: bytes) -> Path:
    path = engine_path(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(engine_bytes)
    os.replace(temporary, path)
    path.with_suffix(".json").write_text(json.dumps(asdict(key), indent=2, sort_keys=True))
    return path


def _build_engine(trt: Any, onnx_bytes: bytes, precision: str) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeConfigError(f"TensorRT cannot parse the ONNX model: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":  # explicit quantisation: the ONNX file carries Q/DQ nodes
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeConfigError("TensorRT failed to build an engine (see its log above)")
    return bytes(serialized)


class TensorRTCore:
    """One input tensor -> list of float32 CPU tensors, through a cached engine."""

    def __init__(self, onnx_path: Path, model_sha256: str, precision: str, device: str,
                 cache_dir: Path | None = None) -> None:
        try:
            import tensorrt as trt
        except ImportError as err:
            raise RuntimeConfigError("backend 'tensorrt' needs the tensorrt package, which is "
                                     "not installed here; use onnxruntime or openvino") from err
        import torch

        self.torch, self.device = torch, torch.device(device)
        key = EngineKey(model_sha256, trt.__version__, torch.cuda.get_device_name(self.device),
                        precision)
        cache_dir = cache_dir or default_cache_dir()
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        path = cached_engine(cache_dir, key)
        engine = runtime.deserialize_cuda_engine(path.read_bytes()) if path else None
        if engine is None:  # no engine for this key, or an unreadable one: rebuild
            path = store_engine(cache_dir, key, _build_engine(trt, onnx_path.read_bytes(),
                                                              precision))
            engine = runtime.deserialize_cuda_engine(path.read_bytes())
        self.engine, self.context = engine, engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.buffers = {n: torch.empty(tuple(engine.get_tensor_shape(n)), device=self.device,
                                       dtype=torch.float32) for n in self.outputs}
        self.input_shape = tuple(engine.get_tensor_shape(self.inputs[0]))
        self.engine_path = path

    def __call__(self, tensor: Any) -> list[Any]:
        from ad_perception.runtime.cores import check_input

        check_input("TensorRT input", tensor, self.input_shape, fixed_batch=True)
        torch = self.torch
        source = torch.as_tensor(tensor).to(self.device, torch.float32).contiguous()
        self.context.set_tensor_address(self.inputs[0], source.data_ptr())
        for name, buffer in self.buffers.items():
            self.context.set_tensor_address(name, buffer.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        self.context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        return [self.buffers[name].cpu() for name in self.outputs]
