"""The compression benchmark's measurement: which variants, how each is timed, what it costs.

Every variant is timed in the same process and run: warm-up calls first, then rounds in
which the variants take turns in a freshly shuffled order (so drift and neighbours' noise
spread evenly), several calls per turn; median and p99 over all calls. What is timed is the
network core as the pipelines call it (camera: the letterboxed tensor in, raw maps out;
lidar: pillars in, including the torch pillar encoder), on one real held-out frame. Threads
are set explicitly for every backend and onnxruntime's thread spinning is off (FACTS.md:
otherwise interleaved torch runs slow down 20x).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
             "amx_int8", "amx_bf16")
FP32_BACKENDS = ("torch", "onnxruntime", "openvino")


@dataclass
class BenchVariant:
    name: str
    path: Path  # checkpoint or variant directory
    backend: str
    precision: str
    compile: bool = False
    note: str = ""


def cpu_isa_flags() -> list[str]:
    """The instruction sets that decide int8/bf16 speed (AMX, AVX512-VNNI/BF16), if present."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return [flag for flag in ISA_FLAGS if flag in flags]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def discover(model: str, baseline: Path, names: list[str] | None, compile_baseline: bool,
             log: Callable[[str], None] = print) -> list[BenchVariant]:
    """The baseline (torch fp32 eager), the baseline on every fp32 backend, and the written
    variant directories (``names`` or every one built or shipped for MODEL)."""
    from ad_perception.eval.variants import known_variant_names, variant_dir
    from ad_perception.runtime import BACKENDS
    from ad_perception.runtime.artifacts import is_variant_dir, read_variant_card

    found = [BenchVariant("baseline", baseline, "torch", "fp32")]
    if compile_baseline:
        found.append(BenchVariant("baseline_torch_compile", baseline, "torch", "fp32", True))
    found += [BenchVariant("baseline_onnxruntime", baseline, "onnxruntime", "fp32"),
              BenchVariant("baseline_openvino", baseline, "openvino", "fp32"),
              BenchVariant("baseline_openvino_bf16", baseline, "openvino", "bf16")]
    if names is None:
        names = [name for name in known_variant_names()
                 if is_variant_dir(variant_dir(model, name))]
    for name in names:
        path = Path(name) if Path(name).is_dir() else variant_dir(model, name)
        if not is_variant_dir(path):
            log(f"skip {name}: no variant directory at {path}")
            continue
        card = read_variant_card(path)
        spec = BACKENDS.get(card.backend)
        if spec is None or not spec.available():
            log(f"skip {name}: backend {card.backend} is not installed here")
            continue
        if card.io.get("device") == "cuda" and card.backend != "torch":
            log(f"skip {name}: a {card.backend} GPU model")
            continue
        note = "measured on the CPU (a GPU variant)" if card.io.get("device") == "cuda" else ""
        found.append(BenchVariant(card.name if path.parent.name == model else path.name, path,
                                  card.backend, card.precision, note=note))
    return [v for v in found if v.backend in BACKENDS and BACKENDS[v.backend].available()]


def load(variant: BenchVariant, threads: int) -> Any:
    from ad_perception.runtime import load_pipeline

    return load_pipeline(variant.path, backend=variant.backend, device="cpu",
                         precision=variant.precision, threads=threads, score_threshold=0.05,
                         compile=variant.compile)


def core_arguments(kind: str, pipeline: Any, frame: Any) -> tuple:
    """The exact arguments the pipeline passes its core for ``frame``."""
    if kind == "camera":
        from ad_perception.core.pipelines import input_layout
        from ad_perception.models.letterbox import letterbox

        return (letterbox(frame, pipeline.config.input_size, input_layout(pipeline.core))[0],)
    from ad_perception.models.voxelize import pillarize

    pillars = pillarize(frame.xyzi(), pipeline.config.grid)
    return pillars.features, pillars.num_points, pillars.coords, 1


def time_interleaved(calls: dict[str, Callable[[], Any]], rounds: int, per_turn: int,
                     warmup: int, seed: int = 0,
                     progress: Callable[[int], None] | None = None) -> dict[str, list[float]]:
    """Milliseconds per call for each named callable, interleaved in shuffled rounds."""
    import torch

    samples: dict[str, list[float]] = {name: [] for name in calls}
    with torch.inference_mode():
        for call in calls.values():
            for _ in range(warmup):
                call()
        rng = np.random.default_rng(seed)
        names = list(calls)
        for round_index in range(rounds):
            for index in rng.permutation(len(names)):
                name = names[index]
                for _ in range(per_turn):
                    started = time.perf_counter()
                    calls[name]()
                    samples[name].append((time.perf_counter() - started) * 1e3)
            if progress is not None:
                progress(round_index)
    return samples


def summarise(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples)
    return {"p50": float(np.median(values)), "p99": float(np.percentile(values, 99)),
            "mean": float(values.mean()), "n": int(len(values))}


def model_stats(kind: str, variant: BenchVariant) -> dict[str, Any]:
    """Params and MACs of the (compressed) network, bytes of the files the backend loads."""
    from ad_perception.compress.export import export_model_onnx
    from ad_perception.compress.prune import measure_size
    from ad_perception.models.checkpoint import load_checkpoint
    from ad_perception.runtime.artifacts import TORCH_FILE, is_variant_dir, read_variant_card

    path = Path(variant.path)
    card = read_variant_card(path) if is_variant_dir(path) else None
    model, model_card = load_checkpoint(path / TORCH_FILE if card else path)
    from ad_perception.models.checkpoint import MODEL_KINDS

    config = MODEL_KINDS[model_card.model].config_type.from_dict(model_card.config)
    size = measure_size(model, kind, config)
    if card is not None and card.backend == variant.backend and \
            card.precision == variant.precision:
        files = [card.primary] + (["model.bin"] if card.primary == "model.xml" else [])
        size_bytes = sum(os.path.getsize(path / name) for name in files)
    elif variant.backend == "torch":
        size_bytes = os.path.getsize(path / TORCH_FILE if card else path)
    else:  # a float model converted on the fly: what an exported file would weigh
        size_bytes = len(export_model_onnx(model, kind, config))
    return {"params": size.params, "macs": size.macs, "size_bytes": int(size_bytes)}
