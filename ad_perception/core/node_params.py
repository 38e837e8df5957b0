"""Parameters of the perception nodes: names, defaults, checks — without ROS.

Each node declares the specs of its table, reads the values back and hands them to
:func:`validate`, which either returns them or raises one :class:`ConfigError` listing every
bad value with what to change, so a misconfigured node fails at startup with a message a
person can act on instead of a traceback from deep inside a backend. ``runtime=True`` marks
the parameters a running node accepts changes of (thresholds, budgets, sync tolerance); the
rest (model, backend, device, QoS) need a restart and are refused while running.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ParamValue = bool | int | float | str | list
Check = Callable[[ParamValue], str | None]

RELIABILITIES = ("best_effort", "reliable")
BACKEND_CHOICES = ("auto", "torch", "onnxruntime", "openvino", "tensorrt")
PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16", "int8")
_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


class ConfigError(ValueError):
    """Startup configuration that cannot work; the message says which parameter and how."""


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: its default fixes the type; ``check`` returns a problem or None."""

    name: str
    default: ParamValue
    description: str
    runtime: bool = False
    check: Check | None = None


# ------------------------------------------------------------------------------- checks
def in_range(low: float | None = None, high: float | None = None, *,
             low_open: bool = False) -> Check:
    def check(value: ParamValue) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            return "must be a finite number"
        if low is not None and (value <= low if low_open else value < low):
            return f"must be {'>' if low_open else '>='} {low:g}"
        if high is not None and value > high:
            return f"must be <= {high:g}"
        return None

    return check


def one_of(choices: Iterable[str]) -> Check:
    choices = tuple(choices)

    def check(value: ParamValue) -> str | None:
        return None if value in choices else f"must be one of {list(choices)}"

    return check


def device_check(value: ParamValue) -> str | None:
    if isinstance(value, str) and _DEVICE.match(value):
        return None
    return "must be 'cpu', 'cuda', 'cuda:N' (N = GPU index) or 'auto'"


def input_size_check(value: ParamValue) -> str | None:
    if list(value) == [0, 0]:
        return None
    if len(value) != 2 or any(v < 32 or v % 32 for v in value):
        return "must be [width, height], both multiples of 32, or [0, 0] for the model's own"
    return None


def topics_check(value: ParamValue) -> str | None:
    if not value or any(not isinstance(t, str) or not t.strip() for t in value):
        return "must be a non-empty list of topic names"
    return None


# ------------------------------------------------------------------------------- tables
def _qos(direction: str, reliability: str) -> list[ParamSpec]:
    return [
        ParamSpec(f"qos.{direction}.reliability", reliability,
                  f"{direction} QoS reliability (best_effort or reliable)",
                  check=one_of(RELIABILITIES)),
        ParamSpec(f"qos.{direction}.depth", 1, f"{direction} QoS keep-last depth; 1 never "
                  "queues stale frames", check=in_range(1, 100)),
    ]


COMMON = [
    *_qos("input", "best_effort"),
    *_qos("output", "reliable"),
    ParamSpec("expected_rate_hz", 10.0, "input rate the diagnostics expect (0: don't check)",
              runtime=True, check=in_range(0.0)),
    ParamSpec("latency_warn_ms", 120.0, "pipeline latency p99 above this: WARN", runtime=True,
              check=in_range(0.0, low_open=True)),
    ParamSpec("latency_error_ms", 150.0, "pipeline latency p99 above this: ERROR",
              runtime=True, check=in_range(0.0, low_open=True)),
    ParamSpec("processing_warn_ms", 80.0, "processing time p99 above this: WARN", runtime=True,
              check=in_range(0.0, low_open=True)),
    ParamSpec("processing_error_ms", 100.0, "processing time p99 above this: ERROR",
              runtime=True, check=in_range(0.0, low_open=True)),
    ParamSpec("diagnostics_period_s", 1.0, "how often /diagnostics is published",
              check=in_range(0.05, 60.0)),
    ParamSpec("summary_path", "", "write a JSON summary here at shutdown ('' = none)"),
]

DETECTOR = [
    ParamSpec("variant", "baseline", "model variant by name (ad_perception.eval.variants); "
              "ignored when model_path is set"),
    ParamSpec("model_path", "", "model file or variant directory; '' = the variant's"),
    ParamSpec("backend", "auto", "inference backend; auto picks it from the model file",
              check=one_of(BACKEND_CHOICES)),
    ParamSpec("device", "cpu", "cpu, cuda or cuda:N; cuda falls back to cpu with a "
              "diagnostic when no GPU is present", check=device_check),
    ParamSpec("precision", "auto", "numeric precision (auto: the variant's own, else fp32)",
              check=one_of(PRECISION_CHOICES)),
    ParamSpec("threads", 1, "CPU threads for inference (0: the backend's default)",
              check=in_range(0, 64)),
    ParamSpec("score_threshold", 0.3, "detections below this score are dropped",
              runtime=True, check=in_range(0.0, 1.0)),
]

CAMERA = [
    *DETECTOR,
    ParamSpec("input_size", [0, 0], "network input [width, height] the model must have; "
              "[0, 0] = whatever the model was built for",
              check=input_size_check),
    ParamSpec("publish_debug_image", False, "publish ~/debug/image with the boxes drawn "
              "(only while someone subscribes)", runtime=True),
]
LIDAR = [*DETECTOR]

FUSION = [
    ParamSpec("base_frame", "base_link", "frame of the fused objects (for planning)"),
    ParamSpec("camera_offset_ms", 0.0, "expected camera stamp minus lidar stamp",
              runtime=True, check=in_range(-1000.0, 1000.0)),
    ParamSpec("sync_tolerance_ms", 50.0, "camera and lidar stamps match when they differ "
              "from the offset by at most this", runtime=True,
              check=in_range(0.0, 1000.0, low_open=True)),
    ParamSpec("sync_timeout_ms", 60.0, "wait at most this long for the other sensor, beyond "
              "its learned arrival lag, before publishing a degraded result", runtime=True,
              check=in_range(0.0, 5000.0, low_open=True)),
    ParamSpec("publish_camera_only", True, "publish camera-only (lifted) objects when the "
              "lidar detections are missing", runtime=True),
    ParamSpec("tf_topics", ["/tf_static"], "topics carrying the sensor extrinsics "
              "(carla-ros-bridge publishes them on /tf)", check=topics_check),
    ParamSpec("use_points", True, "subscribe to the point cloud to lift camera-only objects "
              "to 3D"),
    ParamSpec("score_threshold", 0.1, "fused objects below this score are dropped",
              runtime=True, check=in_range(0.0, 1.0)),
    ParamSpec("max_association_cost", 0.7, "camera-lidar association gate, in [0, 1]",
              runtime=True, check=in_range(0.0, 1.0)),
    ParamSpec("camera_class_weight", 0.1, "share of the camera in the class of a matched "
              "pair (the lidar gets the rest); tune with scripts/tune_fusion.py",
              runtime=True, check=in_range(0.0, 1.0)),
    ParamSpec("score_fusion", "geometric", "how class scores combine: linear (weighted mean) "
              "or geometric (weighted product)", runtime=True,
              check=one_of(["linear", "geometric"])),
    ParamSpec("marker_lifetime_s", 0.3, "lifetime of the RViz markers",
              check=in_range(0.0, 10.0)),
    ParamSpec("tracking", True, "vote on each object's class over time and publish track ids "
              "(core.tracking); off: every frame on its own", runtime=True),
    ParamSpec("class_half_life_s", 8.0, "class votes of a track lose half their weight in "
              "this time; tune with scripts/tune_fusion.py --tracking", runtime=True,
              check=in_range(0.0, 3600.0, low_open=True)),
    ParamSpec("track_gate_m", 2.5, "largest distance between a track's predicted position and "
              "a detection it takes", runtime=True, check=in_range(0.0, 50.0, low_open=True)),
    ParamSpec("track_max_age_s", 0.35, "a track unseen for longer is dropped", runtime=True,
              check=in_range(0.0, 60.0, low_open=True)),
]

MONITOR = [
    ParamSpec("topics", ["/perception/camera/front/detections", "/perception/lidar/detections",
                         "/perception/objects"],
              "output topics whose end-to-end latency is watched (types found in the graph)",
              check=topics_check),
    ParamSpec("window_s", 10.0, "sliding window of the live statistics",
              check=in_range(0.0, 3600.0, low_open=True)),
    ParamSpec("warmup_s", 0.0, "messages in the first seconds after a topic's first one count "
              "only as 'warmup' in the shutdown totals (start-up is not steady state)",
              check=in_range(0.0, 600.0)),
    ParamSpec("stale_after_s", 1.0, "a topic silent for longer is reported STALE",
              runtime=True, check=in_range(0.0, 600.0, low_open=True)),
]

NODE_PARAMS: dict[str, list[ParamSpec]] = {
    "camera_detector": [*COMMON, *CAMERA],
    "lidar_detector": [*COMMON, *LIDAR],
    "fusion": [*COMMON, *FUSION],
    "latency_monitor": [p for p in COMMON if not p.name.startswith("processing_")] + MONITOR,
}


# ---------------------------------------------------------------------------- validation
def _problem(spec: ParamSpec, value: ParamValue) -> str | None:
    expected = type(spec.default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        return f"must be a {expected.__name__}, got {type(value).__name__} {value!r}"
    return spec.check(value) if spec.check else None


def check_one(spec: ParamSpec, value: ParamValue) -> str | None:
    """The problem with one value (for set-parameter requests), or None."""
    problem = _problem(spec, value)
    return None if problem is None else f"parameter '{spec.name}' = {value!r}: {problem}"


def validate(specs: Iterable[ParamSpec], values: Mapping[str, ParamValue]) -> dict:
    """The values, typed (ints promoted where floats are declared), or one ConfigError with
    every problem: individual ranges first, then the warn <= error pairs."""
    specs = list(specs)
    problems = [p for spec in specs if (p := check_one(spec, values.get(spec.name,
                                                                         spec.default)))]
    if problems:
        raise ConfigError("invalid parameters:\n  " + "\n  ".join(problems))
    result = {}
    for spec in specs:
        value = values.get(spec.name, spec.default)
        result[spec.name] = float(value) if isinstance(spec.default, float) else value
    check_pairs(result)
    return result


def check_pairs(values: Mapping[str, ParamValue]) -> None:
    """Warn thresholds must not exceed error thresholds (the warning must come first)."""
    for warn, error in (("latency_warn_ms", "latency_error_ms"),
                        ("processing_warn_ms", "processing_error_ms")):
        if warn in values and error in values and values[warn] > values[error]:
            raise ConfigError(f"parameter '{warn}' ({values[warn]:g}) must be <= '{error}' "
                              f"({values[error]:g}): the warning must come first")


def resolve_model_path(kind: str, variant: str, model_path: str) -> Path:
    """The model file a detector loads: ``model_path`` if set, else the variant's."""
    if model_path:
        path = Path(model_path).expanduser()
        if not path.exists():
            raise ConfigError(f"parameter 'model_path': {path} does not exist; point it at a "
                              "checkpoint (.pt with its .pt.json card), an exported model or "
                              "a variant directory, or set it to '' to use 'variant'")
        return path
    from ad_perception.eval.variants import shipped_variants

    known = shipped_variants()
    if variant not in known:
        raise ConfigError(f"parameter 'variant' = {variant!r}: unknown variant; known: "
                          f"{sorted(known)} (or set model_path)")
    path = Path(getattr(known[variant], f"{kind}_checkpoint"))
    if not path.exists():
        raise ConfigError(f"variant {variant!r}: {kind} model {path} is not there yet; build "
                          "it (README: Models / compression) or set model_path")
    return path


def load_detector(kind: str, values: Mapping[str, ParamValue]) -> tuple[object, str, bool]:
    """(pipeline, device it runs on, fell back to CPU) for a validated detector table.

    ``cuda`` without a GPU is not an error for a node: it runs on the CPU and reports the
    fallback on /diagnostics. Everything else the runtime refuses becomes a ConfigError.
    """
    path = resolve_model_path(kind, str(values["variant"]), str(values["model_path"]))
    # torch is imported only now, so a wrong path fails in a fraction of a second
    from ad_perception.core.pipelines import CameraPipeline, LidarPipeline
    from ad_perception.runtime import RuntimeConfigError, load_pipeline, resolve_device

    try:
        device, fell_back = resolve_device(str(values["device"]))
        precision = None if values["precision"] == "auto" else str(values["precision"])
        pipeline = load_pipeline(path, str(values["backend"]), device, precision,
                                 int(values["threads"]), float(values["score_threshold"]))
    except RuntimeConfigError as err:
        raise ConfigError(f"cannot load the {kind} model {path}: {err}") from err
    expected = CameraPipeline if kind == "camera" else LidarPipeline
    if not isinstance(pipeline, expected):
        raise ConfigError(f"{path} is not a {kind} model (got {type(pipeline).__name__}); set "
                          f"model_path/variant to a {kind} detector")
    if kind == "camera":
        _check_input_size(pipeline, values, path)
    return pipeline, device, fell_back


def _check_input_size(pipeline: object, values: Mapping[str, ParamValue], path: Path) -> None:
    """The network core is a fixed-size graph (DESIGN.md), so ``input_size`` can only
    confirm the model's own size; another size needs a model exported for it."""
    size = [int(v) for v in values.get("input_size", [0, 0])]
    model_size = [int(v) for v in pipeline.config.input_size]
    if size not in ([0, 0], model_size):
        raise ConfigError(f"parameter 'input_size' = {size}: {path} was built for "
                          f"{model_size}; set input_size to [0, 0] (use the model's) or load "
                          "a model exported for that size")
