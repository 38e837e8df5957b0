"""The one backend table: name, file suffixes, devices, precisions, whether it is installed.

Like an exporter's format table, everything that validates a request (``load_pipeline``,
the compressor's export step, the benchmark's variant list, ``ad-perception info``) reads this
table instead of keeping its own list, so adding a backend is one row here plus its module.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from ad_perception.runtime.errors import RuntimeConfigError

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def _installed(module: str) -> Callable[[], bool]:
    def available() -> bool:
        return importlib.util.find_spec(module) is not None

    return available


@dataclass(frozen=True)
class BackendSpec:
    """One row of the table. ``module`` implements ``load_core(...)`` for this backend."""

    name: str
    suffixes: tuple[str, ...]  # model file suffixes this backend runs (first: what it writes)
    devices: tuple[str, ...]
    precisions: tuple[str, ...]
    module: str
    requires: str  # the Python module that must be importable
    available: Callable[[], bool]

    def check(self, device: str, precision: str) -> None:
        """Raise ``RuntimeConfigError`` unless this backend can run ``device``/``precision``."""
        if not self.available():
            raise RuntimeConfigError(
                f"backend {self.name!r} is not installed here (Python module {self.requires!r} "
                f"is missing); installed backends: {available_backends()}")
        if device.split(":")[0] not in self.devices:
            raise RuntimeConfigError(f"backend {self.name!r} runs on {list(self.devices)}, not "
                                     f"{device!r}")
        if precision not in self.precisions:
            raise RuntimeConfigError(f"backend {self.name!r} supports precisions "
                                     f"{list(self.precisions)}, not {precision!r}")


BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec for spec in (
        BackendSpec("torch", (".pt",), ("cpu", "cuda"), ("fp32", "fp16", "bf16"),
                    "ad_perception.runtime.torch_backend", "torch", _installed("torch")),
        BackendSpec("onnxruntime", (".onnx",), ("cpu", "cuda"), ("fp32", "fp16", "int8"),
                    "ad_perception.runtime.onnxruntime_backend", "onnxruntime",
                    _installed("onnxruntime")),
        BackendSpec("openvino", (".xml",), ("cpu",), ("fp32", "bf16", "int8"),
                    "ad_perception.runtime.openvino_backend", "openvino",
                    _installed("openvino")),
        BackendSpec("tensorrt", (".engine", ".onnx"), ("cuda",), ("fp32", "fp16", "int8"),
                    "ad_perception.runtime.tensorrt_backend", "tensorrt",
                    _installed("tensorrt")),
    )
}


def available_backends() -> list[str]:
    return [name for name, spec in BACKENDS.items() if spec.available()]


def backend_spec(name: str) -> BackendSpec:
    """The row for ``name``, or a ``RuntimeConfigError`` listing the known names."""
    if name not in BACKENDS:
        raise RuntimeConfigError(f"unknown backend {name!r}; known backends: {list(BACKENDS)} "
                                 f"(installed here: {available_backends()})")
    return BACKENDS[name]


def backend_for_suffix(suffix: str) -> str:
    """The backend that runs a model file with this suffix (the first row that lists it)."""
    for name, spec in BACKENDS.items():
        if suffix in spec.suffixes:
            return name
    known = sorted({s for spec in BACKENDS.values() for s in spec.suffixes})
    raise RuntimeConfigError(f"no backend runs {suffix!r} files; known suffixes: {known}")


def normalise_precision(precision: str | None) -> str | None:
    """Accept the spellings people type (``float32``, ``f32``, ``half``) and return ours."""
    if precision is None:
        return None
    aliases = {"float32": "fp32", "f32": "fp32", "float": "fp32", "float16": "fp16",
               "f16": "fp16", "half": "fp16", "bfloat16": "bf16", "i8": "int8"}
    value = aliases.get(precision.lower(), precision.lower())
    if value not in PRECISIONS:
        raise RuntimeConfigError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
    return value
