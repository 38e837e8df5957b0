"""Letterboxing: any camera image -> the camera detector's fixed input size, and back.

The network core has one fixed input size (no dynamic shapes in the exported graph), so an
image is resized with its aspect ratio kept and padded. The transform keeps a separate scale
per axis (the exact ratio ``cv2.resize`` applies after rounding the resized size), so boxes map
back to the original pixels exactly rather than to within a rounding of the scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

# ImageNet statistics: keeps the input range what a torchvision trunk expects, so ImageNet
# weights could be dropped in where a user has them.
RGB_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255.0
RGB_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255.0
PAD_VALUE = 114  # mid grey: after normalisation close to zero, so padding looks like "nothing"
# Every uint8 level of every channel after normalisation, (3, 256): looking values up is one
# pass straight into the (C, H, W) tensor instead of four over the image (cast, subtract,
# divide, transpose). Computed with the same two float32 operations, so bit-identical.
NORMALISED_LEVELS = (np.arange(256, dtype=np.float32)[None, :] - RGB_MEAN[:, None]) \
    / RGB_STD[:, None]
# The same levels as a 3-channel table for ``cv2.LUT``: one pass from the uint8 (H, W, 3)
# canvas to a float32 (H, W, 3) image, channels last.
NORMALISED_LUT = np.ascontiguousarray(NORMALISED_LEVELS.T.reshape(256, 1, 3))
# Tensor layouts a core can ask for: planar (torch, onnxruntime) or channels last (OpenVINO:
# its int8 first conv reads channels last, and a planar input cost it a reorder of the whole
# image, 0.37 of 5.3 ms for the pruned detector; docs/benchmarks.md).
LAYOUTS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class LetterboxTransform:
    """network_xy = image_xy * scale + pad, per axis."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    image_size: tuple[int, int]  # original (width, height)
    network_size: tuple[int, int]  # (width, height)

    def to_network(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        pad = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y])
        return boxes * scale + pad

    def to_image(self, boxes_xyxy: np.ndarray, clip: bool = True) -> np.ndarray:
        """Network-pixel boxes back to image pixels, clipped to the image by default."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        pad = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y])
        boxes = (boxes - pad) / scale
        if clip:
            width, height = self.image_size
            boxes = np.clip(boxes, 0.0, [width, height, width, height])
        return boxes


def letterbox_transform(image_size: tuple[int, int],
                        network_size: tuple[int, int]) -> LetterboxTransform:
    """The transform ``letterbox`` would use for an image of ``image_size`` (width, height)."""
    width, height = image_size
    net_width, net_height = network_size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {image_size}")
    ratio = min(net_width / width, net_height / height)
    resized_width = min(net_width, max(1, round(width * ratio)))
    resized_height = min(net_height, max(1, round(height * ratio)))
    return LetterboxTransform(
        scale_x=resized_width / width,
        scale_y=resized_height / height,
        pad_x=float((net_width - resized_width) // 2),
        pad_y=float((net_height - resized_height) // 2),
        image_size=(int(width), int(height)),
        network_size=(int(net_width), int(net_height)),
    )


def _resize(image_hwc_uint8: np.ndarray, size: tuple[int, int]
            ) -> tuple[np.ndarray, LetterboxTransform]:
    image = np.asarray(image_hwc_uint8)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} "
                         f"{image.dtype}")
    transform = letterbox_transform((image.shape[1], image.shape[0]), size)
    resized_width = round(transform.scale_x * image.shape[1])
    resized_height = round(transform.scale_y * image.shape[0])
    return cv2.resize(image, (resized_width, resized_height),
                      interpolation=cv2.INTER_LINEAR), transform


def _padded(image_hwc_uint8: np.ndarray,
            size: tuple[int, int]) -> tuple[np.ndarray, LetterboxTransform]:
    """The resized image on a PAD_VALUE canvas of ``size``, uint8 (H, W, 3)."""
    resized, transform = _resize(image_hwc_uint8, size)
    canvas = np.full((size[1], size[0], 3), PAD_VALUE, dtype=np.uint8)
    x0, y0 = int(transform.pad_x), int(transform.pad_y)
    canvas[y0:y0 + resized.shape[0], x0:x0 + resized.shape[1]] = resized
    return canvas, transform


def letterbox_reference(image_hwc_uint8: np.ndarray,
                        size: tuple[int, int]) -> tuple[torch.Tensor, LetterboxTransform]:
    """The arithmetic form of :func:`letterbox` (pad, cast, subtract, divide, transpose): the
    definition the lookup must match bit for bit, and the benchmark's reference."""
    canvas, transform = _padded(image_hwc_uint8, size)
    normalised = (canvas.astype(np.float32) - RGB_MEAN) / RGB_STD
    return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))[None], \
        transform


def letterbox(image_hwc_uint8: np.ndarray, size: tuple[int, int],
              layout: str = "NCHW") -> tuple[torch.Tensor, LetterboxTransform]:
    """RGB uint8 image (H, W, 3) -> normalised float32 tensor for the core, (1, 3, h, w) or,
    with ``layout="NHWC"``, (1, h, w, 3); both hold exactly the values of
    :func:`letterbox_reference`."""
    if layout == "NHWC":
        return _letterbox_nhwc(image_hwc_uint8, size)
    if layout != "NCHW":
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    resized, transform = _resize(image_hwc_uint8, size)
    resized_height, resized_width = resized.shape[:2]
    x0, y0 = int(transform.pad_x), int(transform.pad_y)
    tensor = np.empty((1, 3, size[1], size[0]), dtype=np.float32)
    for channel, levels in enumerate(NORMALISED_LEVELS):
        plane = tensor[0, channel]
        plane.fill(levels[PAD_VALUE])
        np.take(levels, resized[:, :, channel], mode="clip",  # clip: unbuffered, in place
                out=plane[y0:y0 + resized_height, x0:x0 + resized_width])
    return torch.from_numpy(tensor), transform


def _letterbox_nhwc(image_hwc_uint8: np.ndarray,
                    size: tuple[int, int]) -> tuple[torch.Tensor, LetterboxTransform]:
    # Channels last is the image's own order: pad in uint8, then one table lookup per pixel
    # (OpenCV, 3-channel table) writes the float tensor contiguously.
    canvas, transform = _padded(image_hwc_uint8, size)
    return torch.from_numpy(cv2.LUT(canvas, NORMALISED_LUT))[None], transform
