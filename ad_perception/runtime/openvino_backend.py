"""The OpenVINO backend (CPU): IR or ONNX cores in f32, bf16 (AMX/AVX512-BF16) or int8.

Precision and threads are set explicitly (FACTS.md: OpenVINO otherwise runs bf16 on AMX
machines, which is a different model than the one measured as "f32"). An int8 model's
quantised layers run in int8 whatever the hint; the hint decides the precision of the layers
the sensitivity search kept in float, and the card records which hint was measured.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ad_perception.runtime.cores import check_input
from ad_perception.runtime.errors import RuntimeConfigError

HINTS = {"fp32": "f32", "bf16": "bf16"}


def cpu_supports_bf16() -> bool:
    import openvino as ov

    try:
        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - an old plugin without the property: assume not
        return False


# OpenVINO pins its inference threads to cores by default on Linux, and every process picks
# the same first cores: in the perception graph the camera and the lidar detector then share
# core 0 while the other core idles (both inferences ~2x slower on 2 cores,
# docs/benchmarks.md). Threads are left to the OS scheduler unless this is set to 1.
PINNING_ENV = "AD_PERCEPTION_OPENVINO_PINNING"


def compile_config(precision_hint: str, threads: int) -> dict[str, Any]:
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision_hint,
                              "PERFORMANCE_HINT": "LATENCY",
                              "ENABLE_CPU_PINNING": os.environ.get(PINNING_ENV, "0") == "1"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


def channels_last_model(model: Any, label: str) -> Any:
    """``model`` (an image core, NCHW) taking its input as (N, H, W, C): OpenVINO folds the
    transpose into the reorder its first convolution needs anyway, so a caller that builds
    the tensor channels last saves the planar-to-blocked reorder (camera: 0.3 ms of 5.3).
    An ``openvino.Model`` passed in is changed in place (the loader passes fresh ones)."""
    import openvino as ov

    shape = model.inputs[0].get_partial_shape()
    if len(model.inputs) != 1 or shape.rank.get_length() != 4 or shape[1] != 3:
        raise RuntimeConfigError(f"{label}: channels-last input is for image cores with one "
                                 f"(N, 3, H, W) input, got {shape}")
    processing = ov.preprocess.PrePostProcessor(model)
    processing.input().tensor().set_layout(ov.Layout("NHWC"))
    processing.input().model().set_layout(ov.Layout("NCHW"))
    return processing.build()


class OpenVinoCore:
    """One input tensor -> list of numpy outputs, through one reused infer request."""

    def __init__(self, source: Any, precision_hint: str = "f32", threads: int = 0,
                 label: str = "OpenVINO model", channels_last: bool = False) -> None:
        import openvino as ov

        core = ov.Core()
        try:
            model = core.read_model(str(source)) if isinstance(source, str | Path) else source
        except Exception as err:
            raise RuntimeConfigError(f"{label}: OpenVINO cannot load it ({err}); the file is "
                                     f"corrupt, truncated or not an IR/ONNX model") from err
        if channels_last:
            model = channels_last_model(model, label)
        try:
            self.compiled = core.compile_model(model, "CPU",
                                               compile_config(precision_hint, threads))
        except Exception as err:
            raise RuntimeConfigError(f"{label}: OpenVINO cannot load it ({err}); the file is "
                                     f"corrupt, truncated or not an IR/ONNX model") from err
        self.request = self.compiled.create_infer_request()
        self.input_shape = tuple(int(d) for d in self.compiled.inputs[0].get_shape())
        self.outputs = len(self.compiled.outputs)
        self.precision_hint = precision_hint
        self.input_layout = "NHWC" if channels_last else "NCHW"

    def __call__(self, tensor: torch.Tensor | np.ndarray) -> list[np.ndarray]:
        check_input("OpenVINO input", tensor, self.input_shape, fixed_batch=True)
        array = tensor.numpy() if isinstance(tensor, torch.Tensor) else np.asarray(tensor)
        # share_inputs: the request reads the caller's array (alive for this synchronous
        # call) instead of first copying its 5.5 MB into a tensor of its own
        self.request.infer({0: np.ascontiguousarray(array, dtype=np.float32)},
                           share_inputs=True)
        # The request owns the output buffers and overwrites them next frame: copy.
        return [np.array(self.request.get_output_tensor(i).data, dtype=np.float32)
                for i in range(self.outputs)]
