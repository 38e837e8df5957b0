"""Export the fixed-size network core of either detector to ONNX and OpenVINO IR.

The exported part is the camera detector whole (its core already excludes letterboxing and
decoding) and the lidar detector's ``bev_backbone_and_heads`` (the pillar encoder has
data-dependent sizes and stays in torch). The ONNX file is written by the TorchScript
exporter (``dynamo=False``, opset 17): one self-contained file, no ``.onnx.data`` sidecar
(FACTS.md). Batch size is fixed at 1: that is what runs on the vehicle, and static shapes let
OpenVINO and TensorRT pick their fastest kernels.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

ONNX_OPSET = 17
INPUT_NAME = "input"


def exportable_core(model: nn.Module, kind: str) -> nn.Module:
    """The part of a detector that becomes one fixed graph."""
    return model if kind == "camera" else model.bev_backbone_and_heads


def example_input(kind: str, config: Any, batch: int = 1) -> torch.Tensor:
    """A zero tensor of the exported core's input shape (values do not matter for tracing)."""
    if kind == "camera":
        width, height = config.input_size
        return torch.zeros(batch, 3, height, width)
    return torch.zeros(batch, *config.bev_shape)


def output_names(kind: str, config: Any) -> list[str]:
    if kind == "camera":
        return [f"{name}_s{stride}" for stride in config.strides
                for name in ("cls_logits", "box_regression", "centerness")]
    return ["heatmap", "regression"]


def export_onnx(core: nn.Module, example: torch.Tensor, names: list[str],
                path: str | Path | None = None) -> bytes | Path:
    """Trace ``core`` to ONNX; returns the file path, or the bytes when ``path`` is None."""
    core = core.eval()
    target: Any = io.BytesIO() if path is None else str(path)
    with warnings.catch_warnings():  # "legacy TorchScript exporter" is the point here
        warnings.simplefilter("ignore")
        torch.onnx.export(core, (example,), target, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=[INPUT_NAME], output_names=names,
                          do_constant_folding=True)
    return target.getvalue() if path is None else Path(path)


def export_model_onnx(model: nn.Module, kind: str, config: Any,
                      path: str | Path | None = None) -> bytes | Path:
    """``export_onnx`` of a detector's exportable core with our input/output names."""
    core = exportable_core(model, kind)
    example = example_input(kind, config).to(next(core.parameters()).device)
    return export_onnx(core, example, output_names(kind, config), path)


def to_openvino(onnx_source: bytes | str | Path) -> Any:
    """An ``openvino.Model`` from ONNX bytes or a file."""
    import openvino as ov

    if isinstance(onnx_source, bytes):
        return ov.Core().read_model(onnx_source)
    return ov.convert_model(str(onnx_source))


def save_openvino(model: Any, xml_path: str | Path, compress_to_fp16: bool = False) -> Path:
    """Write IR ``.xml`` + ``.bin``. Weights stay fp32 unless asked (int8 models carry their
    own int8 weights either way)."""
    import openvino as ov

    ov.save_model(model, str(xml_path), compress_to_fp16=compress_to_fp16)
    return Path(xml_path)
