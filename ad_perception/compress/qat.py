"""Quantisation-aware training, for when post-training quantisation misses the budget.

NNCF inserts fake-quantisers (initialised from the same calibration frames and range
settings as PTQ) into the torch core; the network then fine-tunes through them with
distillation from the fp32 teacher, in the ordinary training loop, and the result is
converted to an OpenVINO IR whose FakeQuantize nodes run as int8 - the same deployable form
as PTQ. The heads are per level (not shared), which is what QAT needs (FACTS.md: QAT through
PT2E breaks on shared heads).

NNCF's compiled C++ fake-quantise kernels would be built with the system compiler at run
time; we use its reference (pure torch, eager) kernels instead, which are exact and fast
enough for a few epochs on the CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ad_perception.compress.export import example_input, exportable_core
from ad_perception.compress.ptq import _nncf_arguments

NNCF_STATE_PREFIX = "__nncf_hooks"


def _use_reference_kernels() -> None:
    """Point NNCF's CPU fake-quantise functions at its eager reference implementation: no
    C++ build at run time, and no ``torch.compile`` of the reference either (it recompiles
    per tensor shape, which cost minutes on two cores)."""
    from types import SimpleNamespace

    from nncf.torch.quantization import extensions
    from nncf.torch.quantization.reference import torch_executor

    namespace = extensions.QuantizedFunctionsCPU
    if getattr(namespace, "_loaded_namespace", None) is None:
        namespace._loaded_namespace = SimpleNamespace(Quantize_forward=torch_executor.forward,
                                                      Quantize_backward=torch_executor.backward)


def output_conv_nodes(core: nn.Module, example: torch.Tensor) -> list[str]:
    """NNCF torch-graph names of the convs that read the output layers' weights (NNCF names
    torch ops by call site, e.g. ``cls_logits/conv2d/2``, so they are looked up, not
    guessed)."""
    from nncf.torch.function_hook.nncf_graph.nncf_graph_builder import build_nncf_graph

    names = {id(m): n for n, m in core.named_modules()}
    weights = {f"{names[id(layer)]}.weight" for layer in core.output_layers()}
    graph = build_nncf_graph(core, example)
    found = sorted({edge.to_node.node_name for node in graph.get_all_nodes()
                    if node.node_name in weights for edge in graph.get_output_edges(node)})
    if len(found) != len(weights):
        raise RuntimeError(f"QAT: found {len(found)} output convs for {len(weights)} output "
                           f"layers in the NNCF graph; cannot keep them in float")
    return found


def insert_fake_quantizers(model: nn.Module, kind: str, config: Any, calibration: Any,
                           params: Any, keep_output_float: bool) -> nn.Module:
    """Quantise the exportable core of ``model`` with NNCF (torch backend); returns the
    model whose core now carries fake-quantisers."""
    import nncf

    logging.getLogger("nncf").setLevel(logging.WARNING)
    _use_reference_kernels()
    count = min(params.calibration_frames, len(calibration))
    dataset = nncf.Dataset(list(range(count)),
                           lambda i: torch.from_numpy(calibration.core_input(i)))
    core = exportable_core(model, kind).eval()
    arguments = _nncf_arguments(params, [], count)
    if keep_output_float:
        arguments["ignored_scope"] = nncf.IgnoredScope(
            names=output_conv_nodes(core, example_input(kind, config)))
    quantized = nncf.quantize(core, dataset, **arguments)
    if kind == "camera":
        return quantized
    model.bev_backbone_and_heads = quantized
    return model


def to_openvino_int8(model: nn.Module, kind: str, config: Any) -> Any:
    """The fake-quantised core as an ``openvino.Model`` (FakeQuantize -> int8 on CPU), through
    the same ONNX export as PTQ (NNCF exports its quantisers as OpenVINO FakeQuantize ops; a
    direct ``ov.convert_model`` of the hooked module re-traces it and took 3x longer).

    The weights' FakeQuantize ops are folded into int8 constants, as NNCF's PTQ stores them:
    exported as they are, the weights stay fp32 behind their quantisers and the variant's
    ``model.bin`` was 3.4 MB instead of 0.9 MB (same validation AP either way: 85.913 vs
    85.914 on the prune50_patch4_int8 variant)."""
    from openvino._offline_transformations import compress_quantize_weights_transformation

    from ad_perception.compress.export import export_model_onnx, to_openvino

    exportable_core(model, kind).eval()
    with torch.no_grad():
        converted = to_openvino(export_model_onnx(model, kind, config))
    compress_quantize_weights_transformation(converted)
    return converted


def float_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The plain weights under the fake-quantisers (what a float checkpoint holds)."""
    return {name: tensor for name, tensor in model.state_dict().items()
            if NNCF_STATE_PREFIX not in name}


def qat_out_dir(work: Path, index: int) -> Path:
    return work / f"step{index}_qat"
