"""The recipe steps, one function each: ``step(runner, index, params) -> effects``.

Each works on ``runner.student`` (in place) and/or sets what the variant deploys as
(``runner.deploy``); the runner measures size and accuracy around it. ``effects`` may carry
``metric`` (accuracy already measured, e.g. of the int8 model) or ``changes_weights: False``
(nothing to re-measure).
"""

from __future__ import annotations

import collections
import copy
import dataclasses
from pathlib import Path
from typing import Any

from ad_perception.compress.export import export_model_onnx, exportable_core, to_openvino
from ad_perception.compress.frames import evaluate_core
from ad_perception.compress.model_state import sync_config
from ad_perception.compress.recipe import STRIDE_32, FinetuneParams, RecipeError
from ad_perception.compress.variant import Deploy


def _finetune(runner: Any, index: int, params: FinetuneParams, out_dir: Path,
              model: Any = None, load_best: bool = True) -> dict[str, Any]:
    from ad_perception.compress.finetune import finetune as run_finetune

    return run_finetune(model or runner.student, runner.config, runner.teacher, runner.data,
                        params, runner.recipe.distillation, out_dir,
                        runner.produced_by(index, params.seed), runner.options.threads,
                        runner.options.progress, load_best)


def prune(runner: Any, index: int, params: Any) -> dict[str, Any]:
    from ad_perception.compress.prune import prune as run_prune
    from ad_perception.compress.prune import taylor_gradients

    gradients = None
    if params.importance == "taylor":
        task = runner.data.task(runner.student, runner.config, 4, 0, 0)
        gradients = taylor_gradients(task, params.taylor_batches)
    between = None
    if params.finetune_epochs_between > 0 and params.iterations > 1:
        def between(iteration: int) -> None:
            if iteration + 1 == params.iterations:
                return  # the recipe's own finetune step follows the last iteration
            runner.config = sync_config(runner.student, runner.kind, runner.config)
            out = runner.step_dir(index, f"prune_iter{iteration + 1}")
            _finetune(runner, index, FinetuneParams(epochs=params.finetune_epochs_between),
                      out)
    effects = run_prune(runner.student, runner.kind, runner.config, params, gradients, between)
    runner.config = sync_config(runner.student, runner.kind, runner.config)
    return effects


def _require_training_frames(runner: Any, index: int, step: str) -> None:
    if not runner.data.has_train:
        raise RecipeError(f"recipe {runner.recipe.name!r}: step {index} ({step}) needs "
                          f"training frames: give --train BAG...")


def finetune(runner: Any, index: int, params: Any) -> dict[str, Any]:
    _require_training_frames(runner, index, "finetune")
    return _finetune(runner, index, params, runner.step_dir(index, "finetune"))


def lowrank(runner: Any, index: int, params: Any) -> dict[str, Any]:
    from ad_perception.compress.lowrank import factorize

    ranks, layers = factorize(runner.student, runner.kind, params)
    low_rank = {**runner.config.low_rank, **ranks}
    runner.config = sync_config(runner.student, runner.kind,
                                dataclasses.replace(runner.config, low_rank=low_rank))
    return {"factored_layers": len(ranks), "layers": layers}


def restem(runner: Any, index: int, params: Any) -> dict[str, Any]:
    from tqdm import tqdm

    from ad_perception.compress.restem import restem_camera

    if runner.kind != "camera":
        raise RecipeError(f"recipe {runner.recipe.name!r}: step {index} (restem) is for the "
                          f"camera detector, not {runner.kind}")
    _require_training_frames(runner, index, "restem")
    task = runner.data.task(runner.student, runner.config, params.batch_size,
                            params.max_frames, params.seed)

    def batches(epoch: int) -> Any:
        return (task.inputs(batch) for batch in task.train_batches(epoch))

    def progress(items: Any, total: int, label: str) -> Any:
        return tqdm(items, total=total, desc=label, unit="batch", leave=False,
                    disable=not runner.options.progress)
    effects = restem_camera(runner.student, params.stem, batches, params.epochs,
                            task.batches_per_epoch(), params.lr,
                            runner.step_dir(index, "restem"), params.seed, progress,
                            params.fit_to)
    runner.config = sync_config(runner.student, runner.kind,
                                dataclasses.replace(runner.config, stem=params.stem))
    return effects


def drop_blocks(runner: Any, index: int, params: Any) -> dict[str, Any]:
    from ad_perception.compress.depth import choose_blocks, dropped
    from ad_perception.compress.depth import drop_blocks as remove

    if runner.kind != "camera":
        raise RecipeError(f"recipe {runner.recipe.name!r}: step {index} (drop_blocks) is for "
                          f"the camera detector, not {runner.kind}")
    gone = dropped(runner.student)
    ranking: list[dict[str, Any]] = []
    if params.blocks:
        again = sorted(set(params.blocks) & set(gone))
        if again:
            raise RecipeError(f"recipe {runner.recipe.name!r}: step {index} (drop_blocks): "
                              f"{again} already dropped by an earlier step")
        names = list(params.blocks)
    else:
        names, ranking = choose_blocks(runner.student, params.count,
                                       lambda model: runner.measure(model)["value"],
                                       runner.log)
    remove(runner.student, names)
    runner.config = sync_config(runner.student, runner.kind, dataclasses.replace(
        runner.config, dropped_blocks=tuple(gone + names)))
    return {"dropped_blocks": names, "ranking": ranking}


def input_size(runner: Any, index: int, params: Any) -> dict[str, Any]:
    if runner.kind != "camera":
        raise RecipeError(f"recipe {runner.recipe.name!r}: step {index} (input_size) is for "
                          f"the camera detector, not {runner.kind}")
    old = tuple(runner.config.input_size)
    new = (params.width, params.height)
    # The shipped detector was trained at 896x512 (16 rows of stride-32 cells); run at a
    # height with an odd number of cells (480, 416) its pyramid's upsampled maps no longer
    # line up and validation AP fell from 87 to 50-56 (docs/benchmarks.md), while 448 and
    # 384 kept 83 and 77 before any fine-tune. Keep the parity of both cell counts.
    odd = [f"{name} {n} ({n // STRIDE_32} cells, was {o // STRIDE_32})" for name, n, o in
           (("width", new[0], old[0]), ("height", new[1], old[1]))
           if (n // STRIDE_32) % 2 != (o // STRIDE_32) % 2]
    if odd:
        raise RecipeError(f"recipe {runner.recipe.name!r}: step {index} (input_size): "
                          f"{', '.join(odd)}: keep the parity of the stride-32 cell counts "
                          f"of the network's {old[0]}x{old[1]} input (e.g. 768x448 or 640x384 "
                          f"from 896x512)")
    runner.config = dataclasses.replace(runner.config, input_size=new)
    runner.data.use_config(runner.config)
    return {"input_size": {"from": list(old), "to": list(new)}}


def _op_counts(onnx_bytes: bytes) -> dict[str, int]:
    import onnx

    return dict(collections.Counter(n.op_type for n in onnx.load_from_string(onnx_bytes)
                                    .graph.node))


def simplify_onnx(onnx_bytes: bytes) -> bytes:
    import onnx
    import onnxscript.optimizer

    return onnxscript.optimizer.optimize(onnx.load_from_string(onnx_bytes)).SerializeToString()


def optimise_onnx(onnx_bytes: bytes, params: Any) -> tuple[bytes, int]:
    """The graph step's passes over an exported core; returns it and the convs merged."""
    merged = 0
    if params.simplify:
        onnx_bytes = simplify_onnx(onnx_bytes)
    if params.merge_sibling_convs:
        import onnx

        from ad_perception.compress.graph_opt import merge_sibling_convs

        model, merged = merge_sibling_convs(onnx.load_from_string(onnx_bytes))
        onnx_bytes = model.SerializeToString()
    return onnx_bytes, merged


def export_float_onnx(runner: Any, name: str = "float.onnx") -> Path:
    """The student's core as ONNX (BN folded by the exporter; simplified and merged if the
    recipe's graph step asks), written into the work directory."""
    onnx_bytes, _ = optimise_onnx(export_model_onnx(runner.student, runner.kind, runner.config),
                                  runner.graph)
    path = runner.work / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onnx_bytes)
    return path


def graph(runner: Any, index: int, params: Any) -> dict[str, Any]:
    runner.graph = params
    raw = export_model_onnx(runner.student, runner.kind, runner.config)
    optimised, merged = optimise_onnx(raw, params)
    before, after = _op_counts(raw), _op_counts(optimised)
    if params.fold_batchnorm and after.get("BatchNormalization", 0):
        raise RuntimeError(f"graph: {after['BatchNormalization']} BatchNormalization nodes "
                           f"survived folding")
    runner.deploy.io["fold_batchnorm"] = params.fold_batchnorm
    return {"changes_weights": False, "onnx_ops_exported": before, "onnx_ops_optimised": after,
            "convs_merged": merged,
            "torch_batchnorm_layers": sum(type(m).__name__.startswith("BatchNorm")
                                          for m in runner.student.modules())}


def ptq(runner: Any, index: int, params: Any) -> dict[str, Any]:
    from ad_perception.compress.ptq import (
        output_layer_patterns,
        quantize_onnxruntime,
        quantize_openvino,
    )

    runner.ptq_params = params
    core = exportable_core(runner.student, runner.kind)
    patterns = output_layer_patterns(core) if params.keep_output_layers_float else []
    calibration = runner.data.frames(runner.data.calib(params.calibration_frames),
                                     runner.student, runner.config)
    validation = runner.val_frames()
    allowed = runner.allowed_ptq_drop(params)
    onnx_path = export_float_onnx(runner)
    if params.engine == "openvino":
        result = quantize_openvino(to_openvino(onnx_path), calibration, validation, params,
                                   allowed, patterns, runner.options.threads, runner.log)
        runner.deploy = Deploy("openvino", "int8", result.model,
                               {**runner.deploy.io,
                                "openvino_precision_hint": result.precision_hint})
        metric = evaluate_core(validation, _openvino_core(result.model, result.precision_hint,
                                                          runner.options.threads))
    else:
        from ad_perception.runtime.onnxruntime_backend import OnnxRuntimeCore

        result = quantize_onnxruntime(onnx_path, runner.work / "int8.onnx", calibration, params,
                                      patterns)
        runner.deploy = Deploy("onnxruntime", "int8", result.model, dict(runner.deploy.io))
        metric = evaluate_core(validation, OnnxRuntimeCore(result.model,
                                                           threads=runner.options.threads))
    float_value = runner.current_metric["value"] if runner.current_metric else None
    drop = None if float_value is None else float_value - metric["value"]
    runner.ptq_missed = drop is not None and drop > allowed
    return {"metric": metric, "engine": params.engine, "allowed_drop": allowed, "drop": drop,
            "quantizers": result.quantizers, "sensitivity_search_ran": result.search_ran,
            "first_pass_metric": result.first_pass_metric,
            "reverted_to_float": result.reverted_layers, "missed_budget": runner.ptq_missed,
            "kept_float_patterns": patterns}


def _openvino_core(model: Any, hint: str, threads: int) -> Any:
    from ad_perception.runtime.openvino_backend import OpenVinoCore

    return OpenVinoCore(model, hint, threads, label="compressed core")


def qat(runner: Any, index: int, params: Any) -> dict[str, Any]:
    from ad_perception.compress.qat import float_state, insert_fake_quantizers, to_openvino_int8

    if params.when == "ptq_misses_budget" and not runner.ptq_missed:
        return {"skipped": "post-training quantisation met the budget", "metric": None,
                "changes_weights": False}
    ptq_params = runner.ptq_params
    if ptq_params.engine != "openvino":
        raise RecipeError(f"recipe {runner.recipe.name!r}: qat deploys through OpenVINO; set "
                          f"the ptq step's engine to openvino")
    _require_training_frames(runner, index, "qat")
    calibration = runner.data.frames(runner.data.calib(ptq_params.calibration_frames),
                                     runner.student, runner.config)
    model = insert_fake_quantizers(copy.deepcopy(runner.student), runner.kind, runner.config,
                                   calibration, ptq_params, ptq_params.keep_output_layers_float)
    training = _finetune(runner, index, FinetuneParams(params.epochs, params.lr,
                                                       params.batch_size, params.max_frames,
                                                       params.seed),
                         runner.step_dir(index, "qat"), model=model, load_best=False)
    hint = runner.deploy.io.get("openvino_precision_hint", "f32")
    int8 = to_openvino_int8(model, runner.kind, runner.config)
    validation = runner.data.frames(runner.val_frames().samples, model, runner.config)
    metric = evaluate_core(validation, _openvino_core(int8, hint, runner.options.threads))
    previous = runner.current_metric["value"] if runner.current_metric else float("-inf")
    if metric["value"] >= previous:
        runner.student.load_state_dict(float_state(model), strict=True)
        runner.deploy = Deploy("openvino", "int8", int8, dict(runner.deploy.io))
        return {"metric": metric, "training": training, "adopted": True}
    return {"metric": runner.current_metric, "qat_metric": metric, "training": training,
            "adopted": False, "changes_weights": False}


def precision(runner: Any, index: int, params: Any) -> dict[str, Any]:
    from ad_perception.runtime.table import backend_spec

    spec = backend_spec(params.backend)
    if params.precision not in spec.precisions:
        raise RecipeError(f"recipe {runner.recipe.name!r}: backend {params.backend!r} has no "
                          f"{params.precision} (it supports {list(spec.precisions)})")
    io = {**runner.deploy.io, "device": params.device, "compile": params.compile}
    validation = runner.val_frames()
    if params.backend == "torch":
        runner.deploy = Deploy("torch", params.precision, None, io)
        metric = evaluate_core(validation, _torch_precision_core(runner, params.precision))
        return {"metric": metric, "measured_on": "cpu"}
    onnx_path = export_float_onnx(runner)
    if params.backend == "openvino":
        io["openvino_precision_hint"] = params.precision
        runner.deploy = Deploy("openvino", params.precision, to_openvino(onnx_path), io)
        metric = evaluate_core(validation, _openvino_core(runner.deploy.model, params.precision,
                                                          runner.options.threads))
        return {"metric": metric}
    if params.backend == "onnxruntime":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        half = runner.work / "fp16.onnx"
        onnx.save(convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True),
                  str(half))
        runner.deploy = Deploy("onnxruntime", params.precision, half, io)
        return {"metric": None, "changes_weights": False,
                "note": "fp16 ONNX is for the CUDA execution provider; not measured on CPU"}
    runner.deploy = Deploy("tensorrt", params.precision, onnx_path, io)
    return {"metric": None, "changes_weights": False,
            "note": "TensorRT engines are built on the GPU machine at first load"}


def _torch_precision_core(runner: Any, name: str) -> Any:
    import torch

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[name]
    core = copy.deepcopy(exportable_core(runner.student, runner.kind)).eval().to(dtype)

    def call(array: Any) -> list[Any]:
        with torch.inference_mode():
            return [o.float() for o in core(torch.from_numpy(array).to(dtype))]

    return call
