"""``load_pipeline``: any model file or variant directory -> a Camera- or LidarPipeline whose
core runs on the requested backend, device and precision.

Accepted inputs: a checkpoint ``.pt`` with its card (the shipped baselines, training runs), or
a variant directory written by ``ad-perception compress`` (``card.json`` + files). A
directory runs on the backend its card names unless another is asked for; any backend can
also run a float model converted on the fly from the torch weights, which is how the
benchmark gets "the baseline on onnxruntime" without a separate export step. Every hash is
checked before a file is parsed, and every failure is a ``RuntimeConfigError`` that says what
to change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ad_perception.runtime.artifacts import (
    TORCH_FILE,
    VariantCard,
    is_variant_dir,
    read_variant_card,
    verify_files,
)
from ad_perception.runtime.device import require_device
from ad_perception.runtime.errors import RuntimeConfigError
from ad_perception.runtime.table import backend_spec, normalise_precision


def _load_torch_model(path: Path) -> tuple[Any, str, Any]:
    """(module, kind, config) from a checkpoint with its card, errors as RuntimeConfigError."""
    from ad_perception.models.checkpoint import CheckpointError, load_checkpoint

    if not path.is_file():
        raise RuntimeConfigError(f"model file {path} does not exist")
    try:
        model, card = load_checkpoint(path)
    except CheckpointError as err:
        raise RuntimeConfigError(str(err)) from err
    return model.eval(), card.model, _config(card.model, card.config)


def _config(kind: str, values: dict[str, Any]) -> Any:
    from ad_perception.models.checkpoint import MODEL_KINDS

    if kind not in MODEL_KINDS:
        raise RuntimeConfigError(f"unknown model kind {kind!r}; known: {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[kind].config_type.from_dict(values)


def _pipeline(kind: str, core: Any, config: Any, score_threshold: float | None) -> Any:
    from ad_perception.core.pipelines import CameraPipeline, LidarPipeline

    pipeline_type = CameraPipeline if kind == "camera" else LidarPipeline
    return pipeline_type(core, config, score_threshold)


def _set_torch_threads(threads: int) -> None:
    """The detector's thread budget covers its pre/post-processing too: torch ops
    (pillarisation, NMS) and OpenCV's resize would otherwise each fan out to every core."""
    if threads:
        import cv2
        import torch

        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)


def _float_core_from_torch(model: Any, kind: str, config: Any, backend: str, device: str,
                           precision: str, threads: int) -> Any:
    """A backend core converted on the fly from a float torch model."""
    from ad_perception.compress.export import export_model_onnx, to_openvino

    if precision == "int8":
        raise RuntimeConfigError(f"an int8 {backend} model has to be made by `ad-perception "
                                 f"compress` (calibration data needed); this is a float model")
    onnx_bytes = export_model_onnx(model, kind, config)
    if backend == "onnxruntime":
        from ad_perception.runtime.onnxruntime_backend import OnnxRuntimeCore

        if precision != "fp32":
            raise RuntimeConfigError("onnxruntime runs float models converted on the fly in "
                                     "fp32 only; use a compressed variant for fp16/int8")
        return OnnxRuntimeCore(onnx_bytes, device, threads, label=f"{kind} (converted)")
    if backend == "openvino":
        from ad_perception.runtime.openvino_backend import HINTS, OpenVinoCore

        return OpenVinoCore(to_openvino(onnx_bytes), HINTS[precision], threads,
                            label=f"{kind} (converted)", channels_last=kind == "camera")
    raise RuntimeConfigError(f"backend {backend!r} needs an exported model file; run "
                             f"`ad-perception compress` with a recipe that exports for it")


def _file_core(directory: Path, card: VariantCard, device: str, precision: str,
               threads: int) -> Any:
    """The core of a variant's own deployable file (card backend == requested backend)."""
    path = directory / card.primary
    label = str(path)
    if card.backend == "onnxruntime":
        from ad_perception.runtime.onnxruntime_backend import OnnxRuntimeCore

        return OnnxRuntimeCore(path, device, threads, label=label)
    if card.backend == "openvino":
        from ad_perception.runtime.openvino_backend import HINTS, OpenVinoCore

        hint = card.io.get("openvino_precision_hint") or HINTS.get(precision, "f32")
        return OpenVinoCore(path, hint, threads, label=label,
                            channels_last=card.model == "camera")
    if card.backend == "tensorrt":
        from ad_perception.runtime.tensorrt_backend import TensorRTCore

        return TensorRTCore(path, card.files[card.primary], precision, device)
    raise RuntimeConfigError(f"{directory}: card backend {card.backend!r} has no file loader")


def load_pipeline(model_path: str | Path, backend: str = "auto", device: str = "cpu",
                  precision: str | None = None, threads: int = 0,
                  score_threshold: float | None = None, compile: bool = False) -> Any:
    """A ``CameraPipeline`` or ``LidarPipeline`` for ``model_path`` (checkpoint or variant
    directory) on ``backend`` (``auto``: the card's, or torch for a checkpoint)."""
    path = Path(model_path)
    if not path.exists():
        raise RuntimeConfigError(f"model path {path} does not exist; give a checkpoint (.pt "
                                 f"with its .pt.json card) or a variant directory")
    precision = normalise_precision(precision)
    card: VariantCard | None = None
    if path.is_dir():
        if not is_variant_dir(path):
            raise RuntimeConfigError(f"{path} is a directory without card.json; a variant "
                                     f"directory is written by `ad-perception compress`")
        card = read_variant_card(path)
        verify_files(path, card)
        chosen = card.backend if backend == "auto" else backend
        if precision is None:
            precision = card.precision if chosen == card.backend else "fp32"
    else:
        if path.suffix != ".pt":
            raise RuntimeConfigError(f"{path}: load the variant directory that holds this file "
                                     f"(its card.json carries the model config and hashes)")
        chosen = "torch" if backend == "auto" else backend
        precision = precision or "fp32"
    spec = backend_spec(chosen)
    device = require_device(device)
    spec.check(device, precision)
    _set_torch_threads(threads)

    if card is not None and chosen == card.backend and precision == card.precision \
            and chosen != "torch":
        config = _config(card.model, card.config)
        core = _file_core(path, card, device, precision, threads)
        if card.model == "lidar":
            from ad_perception.runtime.cores import LidarSplitCore

            model, _, _ = _load_torch_model(path / TORCH_FILE)
            core = LidarSplitCore(model.pillar_encoder, core, config)
        return _pipeline(card.model, core, config, score_threshold)

    torch_file = path / TORCH_FILE if card is not None else path
    if card is not None and TORCH_FILE not in card.files:
        raise RuntimeConfigError(f"{path}: variant has no {TORCH_FILE}, so it runs only on "
                                 f"{card.backend!r}")
    model, kind, config = _load_torch_model(torch_file)
    if chosen == "torch":
        from ad_perception.runtime.torch_backend import load_core

        io = card.io if card is not None else {}
        core = load_core(model, kind, config, device, precision,
                         compile or bool(io.get("compile")) and device != "cpu",
                         fold=bool(io.get("fold_batchnorm")))
        return _pipeline(kind, core, config, score_threshold)
    core = _float_core_from_torch(model, kind, config, chosen, device, precision, threads)
    if kind == "lidar":
        from ad_perception.runtime.cores import LidarSplitCore

        core = LidarSplitCore(model.pillar_encoder, core, config)
    return _pipeline(kind, core, config, score_threshold)
