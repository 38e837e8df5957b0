"""Boxes drawn into an RGB image for the camera node's debug output (numpy only: no OpenCV
needed, and a node without subscribers on the debug topic never calls it)."""

from __future__ import annotations

import numpy as np

from ad_perception.core.types import Detections2D

CLASS_COLORS = {"car": (0, 200, 255), "truck": (255, 160, 0), "pedestrian": (255, 40, 80),
                "cyclist": (120, 255, 80)}
OTHER_COLOR = (255, 255, 255)


def draw_detections(image_rgb: np.ndarray, detections: Detections2D,
                    thickness: int = 2) -> np.ndarray:
    """A copy of ``image_rgb`` (H, W, 3) uint8 with one rectangle outline per detection,
    coloured by class; boxes are clipped to the image."""
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got {image_rgb.shape}")
    if thickness < 1:
        raise ValueError(f"thickness must be >= 1, got {thickness}")
    out = np.array(image_rgb, dtype=np.uint8, copy=True)
    height, width = out.shape[:2]
    boxes = np.round(detections.boxes).astype(np.int64)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width - 1)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height - 1)
    for (x0, y0, x1, y1), class_id in zip(boxes, detections.class_ids, strict=True):
        if x1 < x0 or y1 < y0:
            continue
        color = CLASS_COLORS.get(str(class_id), OTHER_COLOR)
        t = thickness
        out[y0:min(y0 + t, y1 + 1), x0:x1 + 1] = color
        out[max(y1 - t + 1, y0):y1 + 1, x0:x1 + 1] = color
        out[y0:y1 + 1, x0:min(x0 + t, x1 + 1)] = color
        out[y0:y1 + 1, max(x1 - t + 1, x0):x1 + 1] = color
    return out
