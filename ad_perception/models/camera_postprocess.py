"""Camera detector post-processing: raw core outputs -> ``Detections2D`` in image pixels.

Runs outside the exported graph, so it accepts the core's outputs from any backend (torch
tensors, or numpy arrays from onnxruntime / OpenVINO) and may use data-dependent ops freely
(thresholding, top-k, torchvision's class-wise NMS).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional
from torchvision.ops import batched_nms

from ad_perception.core.types import Detections2D
from ad_perception.models.camera_detector import CameraDetectorConfig, level_points, split_levels
from ad_perception.models.letterbox import LetterboxTransform


def decode_level_boxes(box_regression: torch.Tensor, points: torch.Tensor,
                       stride: float | torch.Tensor) -> torch.Tensor:
    """Raw (N, 4) ltrb regression at (N, 2) cell centres -> xyxy boxes in network pixels.

    Distances are ReLU(raw) * stride (FCOS with normalised regression targets): the loss uses
    the same function, so training and inference agree by construction. ``stride`` is one
    number for a level or (N,) per row for cells gathered from several levels.
    """
    scale = torch.as_tensor(stride, dtype=box_regression.dtype).reshape(-1, 1)
    distances = functional.relu(box_regression) * scale
    return torch.cat([points - distances[:, :2], points + distances[:, 2:]], dim=1)


def decode_camera_outputs(outputs: Sequence[torch.Tensor | np.ndarray],
                          transform: LetterboxTransform, config: CameraDetectorConfig,
                          batch_index: int = 0) -> Detections2D:
    """Detections of one image of the batch, un-letterboxed and clipped to the image.

    Score = sqrt(sigmoid(cls) * sigmoid(centerness)) as in torchvision's FCOS; the threshold
    applies to it, then the ``pre_nms_top_k`` best per level go to class-wise NMS.
    """
    with torch.no_grad():
        all_boxes, all_scores, all_labels = [], [], []
        levels = split_levels(list(outputs))
        if len(levels) != len(config.strides):
            raise ValueError(f"got {len(levels)} levels of outputs, config has "
                             f"{len(config.strides)} strides")
        for (cls_logits, box_regression, centerness), points, stride in zip(
            levels, level_points(config), config.strides, strict=True
        ):
            cls = torch.as_tensor(cls_logits)[batch_index].float()
            num_classes = cls.shape[0]
            cls = cls.reshape(num_classes, -1).T
            box = torch.as_tensor(box_regression)[batch_index].float().reshape(4, -1).T
            ctr = torch.as_tensor(centerness)[batch_index].float().reshape(-1)
            scores = torch.sqrt(torch.sigmoid(cls) * torch.sigmoid(ctr)[:, None])
            flat = scores.reshape(-1)
            keep = torch.nonzero(flat > config.score_threshold).squeeze(1)
            if keep.numel() > config.pre_nms_top_k:
                keep = keep[flat[keep].topk(config.pre_nms_top_k).indices]
            cell, label = keep // num_classes, keep % num_classes
            all_boxes.append(decode_level_boxes(box[cell], points[cell], stride))
            all_scores.append(flat[keep])
            all_labels.append(label)
        boxes = torch.cat(all_boxes).double().numpy()
        scores = torch.cat(all_scores)
        labels = torch.cat(all_labels)
        # Clip before NMS so two boxes sticking out of the image are compared as seen.
        image_boxes = torch.from_numpy(transform.to_image(boxes, clip=True))
        valid = (image_boxes[:, 2] > image_boxes[:, 0]) & (image_boxes[:, 3] > image_boxes[:, 1])
        image_boxes, scores, labels = image_boxes[valid], scores[valid], labels[valid]
        kept = batched_nms(image_boxes.float(), scores, labels, config.nms_iou_threshold)
        kept = kept[: config.max_detections]
        class_names = np.asarray(config.class_names)
        return Detections2D(
            boxes=image_boxes[kept].numpy(),
            scores=scores[kept].double().numpy(),
            class_ids=class_names[labels[kept].numpy()],
        )
