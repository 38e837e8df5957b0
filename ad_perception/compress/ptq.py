"""int8 post-training quantisation, with a sensitivity search that keeps layers in float.

Fast path (FACTS.md: 11.3x over torch fp32 eager on this CPU): the float core goes ONNX ->
OpenVINO -> NNCF PTQ -> an OpenVINO IR with int8 FakeQuantize nodes. Calibration frames come
from bags through ``frames.py``; ranges are min-max, mean of per-frame min-max (NNCF's
default), percentile (mean of per-frame quantiles), or NNCF's histogram estimator
(quantisation-error-optimal ranges); weights are per-channel unless the recipe says
otherwise; the final class/box convs stay in float.

If the measured loss on the validation frames exceeds the allowance, NNCF's accuracy-control
loop ranks quantised operations by how much reverting each one recovers (output distance on
a ranking subset) and reverts the worst to float, re-validating, until the loss is within the
allowance or ``max_float_layers`` are reverted. That search is NNCF's
``quantize_with_accuracy_control``; we give it our metric (decoded AP, exactly as reported).

The onnxruntime engine (``quantize_static``, QDQ, u8 activations / s8 weights) is kept for
its entropy (KL) calibrator and as a second int8 backend; it has no search.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ad_perception.compress.frames import CameraFrames, LidarFrames, evaluate_core

Frames = CameraFrames | LidarFrames


@dataclass
class PtqResult:
    model: Any  # openvino.Model (engine openvino) or Path of the int8 .onnx (onnxruntime)
    engine: str
    precision_hint: str
    float_metric: float | None = None
    quantized_metric: float | None = None
    first_pass_metric: float | None = None
    reverted_layers: list[str] = field(default_factory=list)
    quantizers: int = 0
    search_ran: bool = False

    @property
    def drop(self) -> float | None:
        if self.float_metric is None or self.quantized_metric is None:
            return None
        return self.float_metric - self.quantized_metric


def output_layer_patterns(core: Any) -> list[str]:
    """Regexes for the final convs of an exportable core that match both ONNX/OpenVINO node
    names (``/heads.0/cls_logits/Conv``) and NNCF torch names (``heads/0/cls_logits/...``)."""
    names = {id(module): name for name, module in core.named_modules()}
    return [f".*{names[id(layer)].replace('.', '[./]')}/.*" for layer in core.output_layers()]


def _range_estimator(calibration: str, percentile: float) -> Any:
    from nncf.quantization.range_estimator import (
        AggregatorType,
        RangeEstimatorParameters,
        RangeEstimatorParametersSet,
        StatisticsCollectorParameters,
        StatisticsType,
    )

    if calibration == "minmax":
        return RangeEstimatorParametersSet.MINMAX
    if calibration == "mean_minmax":
        return RangeEstimatorParametersSet.MEAN_MINMAX
    if calibration == "histogram":
        return RangeEstimatorParametersSet.HISTOGRAM
    outlier = 1.0 - percentile / 100.0
    quantile = StatisticsCollectorParameters(StatisticsType.QUANTILE, AggregatorType.MEAN,
                                             quantile_outlier_prob=outlier)
    return RangeEstimatorParameters(min=quantile, max=quantile)


def _nncf_arguments(params: Any, patterns: list[str], calibration_count: int) -> dict[str, Any]:
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        QuantizationParameters,
    )

    advanced = AdvancedQuantizationParameters(
        activations_range_estimator_params=_range_estimator(params.calibration,
                                                            params.percentile),
        weights_quantization_params=QuantizationParameters(per_channel=params.per_channel))
    preset = (nncf.QuantizationPreset.MIXED if params.preset == "mixed"
              else nncf.QuantizationPreset.PERFORMANCE)
    # validate=False: a head whose output conv was folded or pruned out of the exported graph
    # (tiny test models, shared heads) leaves a pattern without a match, which is not an error.
    ignored = nncf.IgnoredScope(patterns=patterns, validate=False) if patterns else None
    return {"preset": preset, "target_device": nncf.TargetDevice.CPU,
            "subset_size": calibration_count, "fast_bias_correction": params.fast_bias_correction,
            "ignored_scope": ignored, "advanced_parameters": advanced}


def _fake_quantize_names(model: Any) -> list[str]:
    return sorted(op.get_friendly_name() for op in model.get_ops()
                  if op.get_type_name() == "FakeQuantize")


def _ov_core_fn(model: Any, hint: str, threads: int):
    from ad_perception.runtime.openvino_backend import OpenVinoCore

    return OpenVinoCore(model, hint, threads, label="quantised core")


def quantize_openvino(float_model: Any, calibration: Frames, validation: Frames | None,
                      params: Any, allowed_drop: float, patterns: list[str], threads: int = 0,
                      log: Any = print) -> PtqResult:
    """PTQ of an ``openvino.Model`` (float), then the sensitivity search when over budget."""
    import nncf

    from ad_perception.runtime.openvino_backend import cpu_supports_bf16

    logging.getLogger("nncf").setLevel(logging.WARNING)
    hint = "bf16" if cpu_supports_bf16() else "f32"
    count = min(params.calibration_frames, len(calibration))
    calibration_set = nncf.Dataset(list(range(count)), calibration.core_input)
    arguments = _nncf_arguments(params, patterns, count)
    quantized = nncf.quantize(float_model, calibration_set, **arguments)
    result = PtqResult(quantized, "openvino", hint,
                       quantizers=len(_fake_quantize_names(quantized)))
    if validation is None:
        return result
    result.float_metric = evaluate_core(validation, _ov_core_fn(float_model, "f32", threads))[
        "value"]
    result.quantized_metric = result.first_pass_metric = evaluate_core(
        validation, _ov_core_fn(quantized, hint, threads))["value"]
    log(f"ptq: {validation.metric_name} float {result.float_metric:.2f}, int8 "
        f"{result.quantized_metric:.2f} (allowed drop {allowed_drop:.2f})")
    drop = result.drop
    if not params.sensitivity_search or drop is None or not np.isfinite(drop) or \
            drop <= allowed_drop:
        return result
    searched = _accuracy_control(float_model, calibration_set, validation, arguments, params,
                                 allowed_drop, count)
    result.search_ran = True
    searched_metric = evaluate_core(validation, _ov_core_fn(searched, hint, threads))["value"]
    reverted = sorted(set(_fake_quantize_names(quantized)) - set(_fake_quantize_names(searched)))
    if not searched_metric >= result.first_pass_metric:
        # NNCF re-quantises inside its search, so its result can come out worse than the
        # first pass on our validation frames; never trade down.
        log(f"ptq: sensitivity search gave {searched_metric:.2f} (reverted {len(reverted)} "
            f"quantizers), worse than the first pass; keeping the first pass")
        return result
    result.model = searched
    result.reverted_layers = reverted
    result.quantizers = len(_fake_quantize_names(searched))
    result.quantized_metric = searched_metric
    log(f"ptq: sensitivity search reverted {len(result.reverted_layers)} quantizers to float; "
        f"int8 {result.quantized_metric:.2f}")
    return result


def _accuracy_control(float_model: Any, calibration_set: Any, validation: Frames,
                      arguments: dict[str, Any], params: Any, allowed_drop: float,
                      count: int) -> Any:
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    indices = list(range(len(validation)))

    def validation_fn(compiled_model: Any, items: Any) -> tuple[float, list[list[Any]]]:
        picked = list(items)
        outputs = []
        for index in picked:
            result = compiled_model(validation.core_input(index))
            outputs.append([np.asarray(result[o]) for o in compiled_model.outputs])
        detections = [validation.decode(o) for o in outputs]
        value = validation.score_detections(detections, picked)["value"]
        return (0.0 if not np.isfinite(value) else value), outputs

    restorer = AdvancedAccuracyRestorerParameters(
        max_num_iterations=params.max_float_layers,
        ranking_subset_size=min(params.ranking_frames, len(indices)))
    return nncf.quantize_with_accuracy_control(
        float_model, calibration_set, nncf.Dataset(indices, validation.core_input),
        validation_fn, max_drop=allowed_drop, drop_type=nncf.DropType.ABSOLUTE,
        preset=arguments["preset"], target_device=arguments["target_device"], subset_size=count,
        fast_bias_correction=arguments["fast_bias_correction"],
        ignored_scope=arguments["ignored_scope"],
        advanced_quantization_parameters=arguments["advanced_parameters"],
        advanced_accuracy_restorer_parameters=restorer)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over our frames."""

    def __init__(self, frames: Frames, input_name: str, count: int) -> None:
        self.frames, self.input_name, self.count, self.index = frames, input_name, count, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= self.count:
            return None
        self.index += 1
        return {self.input_name: self.frames.core_input(self.index - 1)}

    def rewind(self) -> None:
        self.index = 0


def quantize_onnxruntime(onnx_path: Path, out_path: Path, calibration: Frames, params: Any,
                         patterns: list[str]) -> PtqResult:
    """Static QDQ int8 with onnxruntime's calibrators (min-max, percentile, entropy)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from ad_perception.compress.export import INPUT_NAME

    graph = onnx.load(str(onnx_path)).graph
    excluded = [node.name for node in graph.node
                if any(re.match(pattern, node.name) for pattern in patterns)]
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    count = min(params.calibration_frames, len(calibration))
    quantize_static(str(onnx_path), str(out_path), _Reader(calibration, INPUT_NAME, count),
                    quant_format=QuantFormat.QDQ, per_channel=params.per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=methods[params.calibration], nodes_to_exclude=excluded,
                    extra_options={"CalibPercentile": params.percentile})
    return PtqResult(out_path, "onnxruntime", "fp32",
                     quantizers=sum(n.op_type == "QuantizeLinear"
                                    for n in onnx.load(str(out_path)).graph.node))
