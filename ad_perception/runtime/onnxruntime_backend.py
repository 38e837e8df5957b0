"""The onnxruntime backend: an ONNX core on the CPU execution provider (CUDA where the
onnxruntime-gpu build is installed). Thread spinning is off: a spinning pool steals the cores
from everything else in the process (a 20x slowdown of interleaved torch runs, FACTS.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ad_perception.runtime.cores import check_input
from ad_perception.runtime.errors import RuntimeConfigError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider"}


def session_options(threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def providers_for(device: str) -> list[str]:
    import onnxruntime as ort

    wanted = PROVIDERS[device.split(":")[0]]
    if wanted not in ort.get_available_providers():
        raise RuntimeConfigError(f"onnxruntime here has no {wanted} (available: "
                                 f"{ort.get_available_providers()}); use device='cpu' or "
                                 f"install the onnxruntime build for that device")
    return [wanted, "CPUExecutionProvider"] if wanted != "CPUExecutionProvider" else [wanted]


class OnnxRuntimeCore:
    """One input tensor -> list of numpy outputs (what the decoders accept)."""

    def __init__(self, source: bytes | str | Path, device: str = "cpu", threads: int = 0,
                 label: str = "ONNX model") -> None:
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(
                source if isinstance(source, bytes) else str(source), session_options(threads),
                providers=providers_for(device))
        except RuntimeConfigError:
            raise
        except Exception as err:
            raise RuntimeConfigError(f"{label}: onnxruntime cannot load it ({err}); the file is "
                                     f"corrupt or not an ONNX model") from err
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_shape = tuple(int(d) for d in model_input.shape)
        self.input_dtype = np.float16 if "float16" in model_input.type else np.float32

    def __call__(self, tensor: torch.Tensor | np.ndarray) -> list[np.ndarray]:
        check_input(f"input {self.input_name!r}", tensor, self.input_shape, fixed_batch=True)
        array = tensor.numpy() if isinstance(tensor, torch.Tensor) else np.asarray(tensor)
        array = np.ascontiguousarray(array, dtype=self.input_dtype)
        outputs = self.session.run(None, {self.input_name: array})
        return [o.astype(np.float32, copy=False) for o in outputs]
