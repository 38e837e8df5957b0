"""GPU benchmark of the ROS-free core, for the GPU machine (torch + CUDA, no ROS, no
OpenVINO/TensorRT there; FACTS.md): the camera and lidar cores in fp32, fp16 and bf16, eager,
channels-last and ``torch.compile`` (CUDA graphs), each against fp32 eager in the same run,
and the whole per-frame pipeline (letterbox, pillarise, both cores, decoding, NMS, fusion).

    python -m ad_perception.compress.gpu_bench --out OUT.json [--camera CKPT] [--lidar CKPT]

Without checkpoints the default-size detectors run with random weights (latency does not
depend on the weights). Runs on the CPU too (``--device cpu --quick``) so it is tested here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(call: Callable[[], Any], device: torch.device, warmup: int, iterations: int
               ) -> dict[str, float]:
    """Per-call milliseconds (synchronised): median, p99."""
    for _ in range(warmup):
        call()
    _sync(device)
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        _sync(device)
        samples.append((time.perf_counter() - started) * 1e3)
    values = np.asarray(samples)
    return {"p50": float(np.median(values)), "p99": float(np.percentile(values, 99)),
            "n": len(samples)}


def _models(camera: Path | None, lidar: Path | None, quick: bool) -> dict[str, tuple]:
    from ad_perception.compress.tiny import TINY_CAMERA, TINY_LIDAR
    from ad_perception.models.camera_detector import CameraDetectorConfig, build_camera_detector
    from ad_perception.models.checkpoint import load_checkpoint
    from ad_perception.models.lidar_detector import LidarDetectorConfig, build_lidar_detector

    found = {}
    for kind, path, config_type, build, tiny in (
            ("camera", camera, CameraDetectorConfig, build_camera_detector, TINY_CAMERA),
            ("lidar", lidar, LidarDetectorConfig, build_lidar_detector, TINY_LIDAR)):
        if path is not None and Path(path).is_file():
            model, card = load_checkpoint(path)
            found[kind] = (model.eval(), config_type.from_dict(card.config), str(path))
        else:
            config = tiny if quick else config_type()
            found[kind] = (build(config).eval(), config, "random weights")
    return found


def core_variants(kind: str, model: torch.nn.Module, config: Any, device: torch.device,
                  compile_modes: list[str]) -> dict[str, Callable[[], Any]]:
    """Named callables running the exportable core in each precision/mode on ``device``."""
    import copy

    from ad_perception.compress.export import example_input, exportable_core

    calls = {}
    base = exportable_core(model, kind)
    example = example_input(kind, config).to(device)
    for precision, dtype in DTYPES.items():
        if device.type == "cpu" and precision == "fp16":
            continue  # no fast fp16 convolution on this CPU (FACTS.md)
        core = copy.deepcopy(base).to(device, dtype).eval()
        x = example.to(dtype)
        calls[f"{precision}_eager"] = (lambda c, i: lambda: c(i))(core, x)
        if device.type == "cuda":
            last = copy.deepcopy(core).to(memory_format=torch.channels_last)
            xl = x.contiguous(memory_format=torch.channels_last)
            calls[f"{precision}_channels_last"] = (lambda c, i: lambda: c(i))(last, xl)
        for mode in compile_modes:
            compiled = torch.compile(copy.deepcopy(core), mode=mode)
            calls[f"{precision}_compile_{mode}"] = (lambda c, i: lambda: c(i))(compiled, x)
    return calls


def pipeline_call(models: dict[str, tuple], device: str, precision: str) -> Callable[[], Any]:
    """One full frame: camera + lidar pipelines (pre/post-processing included) + fusion."""
    from ad_perception.core.camera_model import CameraModel
    from ad_perception.core.fusion import FusionPipeline
    from ad_perception.core.pipelines import CameraPipeline, LidarPipeline
    from ad_perception.core.types import PointCloud
    from ad_perception.runtime.torch_backend import load_core

    camera_model, camera_config, _ = models["camera"]
    lidar_model, lidar_config, _ = models["lidar"]
    camera = CameraPipeline(load_core(camera_model, "camera", camera_config, device, precision,
                                      fold=True), camera_config, 0.3)
    lidar = LidarPipeline(load_core(lidar_model, "lidar", lidar_config, device, precision,
                                    fold=True), lidar_config, 0.3)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    low, high = lidar_config.point_cloud_range[:3], lidar_config.point_cloud_range[3:]
    cloud = PointCloud(rng.uniform(low, high, (100_000, 3)).astype(np.float32),
                       rng.uniform(0, 1, 100_000).astype(np.float32), frame_id="lidar_top")
    intrinsics = CameraModel(np.array([[1000.0, 0, 640], [0, 1000.0, 360], [0, 0, 1]]), 1280,
                             720, frame_id="camera_front_optical")
    T_camera_from_lidar = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]])
    fusion = FusionPipeline()

    def frame() -> Any:
        return fusion(camera(image), lidar(cloud), intrinsics, T_camera_from_lidar, np.eye(4),
                      cloud)

    return frame


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.set_grad_enabled(False)
    models = _models(args.camera, args.lidar, args.quick)
    warmup, iterations = (2, 5) if args.quick else (20, 200)
    modes = [] if args.no_compile else (["default"] if args.quick else ["max-autotune"])
    result: dict[str, Any] = {"device": str(device), "torch": torch.__version__,
                              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda"
                              else None, "cores": {}, "pipeline": {}}
    for kind, (model, config, source) in models.items():
        entry: dict[str, Any] = {"weights": source}
        for name, call in core_variants(kind, model, config, device, modes).items():
            try:
                with torch.inference_mode():
                    entry[name] = time_calls(call, device, warmup, iterations)
            except Exception as err:  # noqa: BLE001 - a mode this GPU/torch lacks: record it
                entry[name] = {"error": f"{type(err).__name__}: {err}"[:300]}
            torch._dynamo.reset()
        base = entry.get("fp32_eager", {}).get("p50")
        for value in entry.values():
            if isinstance(value, dict) and "p50" in value and base:
                value["speedup_vs_fp32_eager"] = base / value["p50"]
        result["cores"][kind] = entry
        print(kind, json.dumps({k: round(v["p50"], 3) for k, v in entry.items()
                                if isinstance(v, dict) and "p50" in v}), flush=True)
    for precision in ("fp32", "fp16", "bf16"):
        if device.type == "cpu" and precision == "fp16":
            continue
        frame = pipeline_call(models, str(device), precision)
        with torch.inference_mode():
            result["pipeline"][precision] = time_calls(frame, device, warmup, iterations)
        print("pipeline", precision, result["pipeline"][precision], flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--camera", type=Path)
    parser.add_argument("--lidar", type=Path)
    parser.add_argument("--quick", action="store_true", help="tiny models, few iterations")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_bench: no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
