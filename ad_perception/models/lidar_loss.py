"""CenterPoint-style training loss: focal loss on Gaussian heatmaps + L1 at object centres.

Targets are drawn for all objects of a frame at once as (N, H, W) Gaussians reduced per class
with ``scatter_reduce(amax)``; there is no Python loop over objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ad_perception.models.lidar_detector import LidarDetectorConfig


def gaussian_radius(length_cells: torch.Tensor, width_cells: torch.Tensor,
                    min_overlap: float = 0.1) -> torch.Tensor:
    """CornerNet/CenterNet radius: how far a centre may move while a box of this size still
    overlaps the true one by ``min_overlap``; the smallest of the three cases."""
    h, w = length_cells, width_cells
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + torch.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + torch.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def build_targets(target: dict[str, torch.Tensor], config: LidarDetectorConfig,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One frame -> heatmap (K, H, W), centre cells (M, 2) as iy, ix, regression (M, 8)."""
    height, width = config.output_shape
    cell = config.pillar_size * config.output_stride
    centers = torch.as_tensor(target["centers"], dtype=torch.float32, device=device).reshape(-1, 3)
    sizes = torch.as_tensor(target["sizes"], dtype=torch.float32, device=device).reshape(-1, 3)
    yaws = torch.as_tensor(target["yaws"], dtype=torch.float32, device=device).reshape(-1)
    labels = torch.as_tensor(target["labels"], device=device).long().reshape(-1)
    fx = (centers[:, 0] - config.point_cloud_range[0]) / cell
    fy = (centers[:, 1] - config.point_cloud_range[1]) / cell
    ix, iy = fx.floor().long(), fy.floor().long()
    inside = (ix >= 0) & (ix < width) & (iy >= 0) & (iy < height)
    fx, fy, ix, iy = fx[inside], fy[inside], ix[inside], iy[inside]
    centers, sizes, yaws, labels = centers[inside], sizes[inside], yaws[inside], labels[inside]

    radius = gaussian_radius(sizes[:, 0] / cell, sizes[:, 1] / cell).floor()
    radius = radius.clamp(min=config.min_gaussian_radius)
    sigma = (2 * radius + 1) / 6
    grid_y = torch.arange(height, device=device, dtype=torch.float32)[None, :, None]
    grid_x = torch.arange(width, device=device, dtype=torch.float32)[None, None, :]
    dy = grid_y - iy[:, None, None].float()
    dx = grid_x - ix[:, None, None].float()
    gauss = torch.exp(-(dx ** 2 + dy ** 2) / (2 * sigma[:, None, None] ** 2))
    window = (dx.abs() <= radius[:, None, None]) & (dy.abs() <= radius[:, None, None])
    gauss = gauss * window
    heatmap = torch.zeros(config.num_classes, height, width, device=device)
    heatmap.view(config.num_classes, -1).scatter_reduce_(
        0, labels[:, None].expand(-1, height * width), gauss.reshape(len(labels), -1), "amax")
    regression = torch.stack([fx - ix, fy - iy, centers[:, 2], *sizes.clamp(min=1e-3).log().T,
                              torch.sin(yaws), torch.cos(yaws)], dim=1)
    return heatmap, torch.stack([iy, ix], dim=1), regression


def centre_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of peaks: cells near
    a centre (high Gaussian) are penalised less for firing than far background."""
    probability = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    positive_loss = torch.log(probability) * (1 - probability) ** 2 * positive
    negative_loss = (torch.log(1 - probability) * probability ** 2 * (1 - target) ** 4
                     * (1 - positive))
    return -(positive_loss.sum() + negative_loss.sum()) / positive.sum().clamp(min=1)


class LidarDetectorLoss(nn.Module):
    """``loss(outputs, targets) -> {"heatmap", "regression", "total"}``.

    ``targets``: one dict per cloud with ``centers`` (N, 3), ``sizes`` (N, 3) as length,
    width, height, ``yaws`` (N,) and ``labels`` (N,) class indices, in the lidar frame.
    ``regression_weight`` 0.25 is CenterPoint's.
    """

    def __init__(self, config: LidarDetectorConfig, regression_weight: float = 0.25) -> None:
        super().__init__()
        self.config = config
        self.regression_weight = regression_weight

    def forward(self, outputs: Sequence[torch.Tensor],
                targets: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        heatmap_logits, regression = outputs
        if len(targets) != heatmap_logits.shape[0]:
            raise ValueError(f"{len(targets)} targets for a batch of {heatmap_logits.shape[0]}")
        built = [build_targets(t, self.config, heatmap_logits.device) for t in targets]
        heatmap_target = torch.stack([b[0] for b in built])
        heatmap = centre_focal_loss(heatmap_logits, heatmap_target)
        batch_index = torch.cat([torch.full((len(b[1]),), i, dtype=torch.long)
                                 for i, b in enumerate(built)]).to(heatmap_logits.device)
        cells = torch.cat([b[1] for b in built])
        regression_target = torch.cat([b[2] for b in built])
        if len(cells):
            predicted = regression[batch_index, :, cells[:, 0], cells[:, 1]]
            regression_loss = (predicted - regression_target).abs().sum() / len(cells)
        else:  # keep the regression head in the graph with a zero gradient
            regression_loss = regression.sum() * 0.0
        total = heatmap + self.regression_weight * regression_loss
        return {"heatmap": heatmap, "regression": regression_loss, "total": total}
