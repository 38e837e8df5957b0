"""Per-bag results kept on disk, so a long evaluation can be interrupted and resumed.

Each (variant, bag) result is a JSON file named by a fingerprint of everything that decides
it: the bag's files (size and modification time), the model files, the topic mapping, the
mode and the scorer version. Change any of them and the bag is evaluated again; change
nothing and a rerun only re-reads the JSON. JSON rather than pickle: a cache folder may
come from anywhere, and loading it must not execute code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ad_perception.core.types import Boxes3D, Detections2D
from ad_perception.eval.metrics import Frame3D
from ad_perception.eval.scoring import FramePredictions

SCORER_VERSION = "2"  # bump when scoring, pairing or fusion logic changes


def _stat_lines(path: Path) -> list[str]:
    if path.is_file():
        stat = path.stat()
        return [f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"]
    if path.is_dir():
        return [line for child in sorted(path.rglob("*")) if child.is_file()
                for line in _stat_lines(child)]
    return [f"{path}:missing"]


def fingerprint(*parts: Any) -> str:
    """A short hash of paths (by size and mtime of their files) and plain values."""
    digest = hashlib.sha256(SCORER_VERSION.encode())
    for part in parts:
        if isinstance(part, os.PathLike):
            for line in _stat_lines(Path(part)):
                digest.update(line.encode())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _d2(d: Detections2D) -> dict:
    return {"boxes": d.boxes.tolist(), "scores": d.scores.tolist(),
            "class_ids": d.class_ids.tolist(), "ids": d.ids.tolist()}


def _d2_back(data: dict) -> Detections2D:
    if not data["scores"]:
        return Detections2D.empty()
    return Detections2D(np.array(data["boxes"]), np.array(data["scores"]),
                        np.array(data["class_ids"]), np.array(data["ids"]))


def _b3(b: Boxes3D) -> dict:
    return {"centers": b.centers.tolist(), "sizes": b.sizes.tolist(), "yaws": b.yaws.tolist(),
            "scores": b.scores.tolist(), "class_ids": b.class_ids.tolist(),
            "ids": b.ids.tolist(), "frame_id": b.frame_id}


def _b3_back(data: dict) -> Boxes3D:
    if not data["scores"]:
        return Boxes3D.empty(data["frame_id"])
    return Boxes3D(np.array(data["centers"]), np.array(data["sizes"]), np.array(data["yaws"]),
                   np.array(data["scores"]), np.array(data["class_ids"]), np.array(data["ids"]),
                   frame_id=data["frame_id"])


def _f3(frame: Frame3D) -> dict:
    return {"gt": _b3(frame.gt), "predictions": _b3(frame.predictions),
            "num_points": None if frame.num_points is None else frame.num_points.tolist()}


def _f3_back(data: dict) -> Frame3D:
    return Frame3D(_b3_back(data["gt"]), _b3_back(data["predictions"]),
                   num_points=data["num_points"])


def predictions_to_dict(p: FramePredictions) -> dict:
    return {
        "camera": [[_d2(gt), _d2(pred), ignore.tolist()] for gt, pred, ignore in p.camera],
        "lidar": [_f3(f) for f in p.lidar], "fused": [_f3(f) for f in p.fused],
        "fused_class_pairs": p.fused_class_pairs, "lidar_class_pairs": p.lidar_class_pairs,
        "latency_ms": p.latency_ms, "latency_by_output": p.latency_by_output,
        "latency_kind": p.latency_kind, "frames_in": p.frames_in, "frames_out": p.frames_out,
        "notes": p.notes, "bag": p.bag,
    }


def predictions_from_dict(data: dict) -> FramePredictions:
    return FramePredictions(
        camera=[(_d2_back(gt), _d2_back(pred), np.array(ignore, dtype=bool))
                for gt, pred, ignore in data["camera"]],
        lidar=[_f3_back(f) for f in data["lidar"]], fused=[_f3_back(f) for f in data["fused"]],
        fused_class_pairs=[tuple(p) for p in data["fused_class_pairs"]],
        lidar_class_pairs=[tuple(p) for p in data["lidar_class_pairs"]],
        latency_ms=list(data["latency_ms"]), latency_by_output=dict(data["latency_by_output"]),
        latency_kind=data["latency_kind"], frames_in=dict(data["frames_in"]),
        frames_out=dict(data["frames_out"]), notes=list(data["notes"]), bag=data["bag"])


def save(path: Path, predictions: FramePredictions) -> None:
    """Atomic: an interrupted write never leaves a half file that a rerun would trust."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(predictions_to_dict(predictions)))
    partial.replace(path)


def load(path: Path) -> FramePredictions | None:
    """The cached result, or None when absent or unreadable (then it is recomputed)."""
    try:
        return predictions_from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
