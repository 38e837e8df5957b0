"""Inference backends behind one interface.

``load_pipeline(path, backend, device, precision, threads, score_threshold)`` turns a
checkpoint or a compressed-variant directory into the same ``CameraPipeline`` /
``LidarPipeline`` every consumer uses (nodes, offline evaluation, benchmarks), with the network
core running on torch, onnxruntime, OpenVINO or TensorRT. ``BACKENDS`` is the one table of
backends (suffixes, devices, precisions, availability) that validation reads. Every failure
to load is a ``RuntimeConfigError`` (a ``ValueError``) whose message says what to fix.
"""

from __future__ import annotations

from ad_perception.runtime.device import require_device, resolve_device
from ad_perception.runtime.errors import RuntimeConfigError, RuntimeInputError
from ad_perception.runtime.loader import load_pipeline
from ad_perception.runtime.table import BACKENDS, BackendSpec, available_backends, backend_spec

__all__ = ["BACKENDS", "BackendSpec", "RuntimeConfigError", "RuntimeInputError",
           "available_backends", "backend_spec", "load_pipeline", "require_device",
           "resolve_device"]
