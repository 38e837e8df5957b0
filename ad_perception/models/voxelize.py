"""Pillarisation: a lidar point cloud -> PointPillars pillar tensor, vectorised in torch.

Points become pillars through integer grid coordinates, one ``torch.unique`` and one stable
sort; there is no Python loop over points or pillars. This runs before the network core (its
output sizes depend on the data), so it is never part of an exported graph.

Per point the 9 features are x, y, z, intensity, the offsets to the mean of the points in its
pillar (3) and the x/y offsets to the pillar's geometric centre (2), as in PointPillars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

POINT_FEATURES = 9


@dataclass(frozen=True)
class PillarGrid:
    """The BEV grid pillars live on: range (x_min, y_min, z_min, x_max, y_max, z_max) in
    metres in the lidar frame, square pillars of ``pillar_size`` metres."""

    point_cloud_range: tuple[float, float, float, float, float, float]
    pillar_size: float
    max_points_per_pillar: int
    max_pillars: int

    @property
    def grid_size(self) -> tuple[int, int]:
        """(nx, ny): BEV image width (along x) and height (along y) in pillars."""
        x_min, y_min, _, x_max, y_max, _ = self.point_cloud_range
        return (round((x_max - x_min) / self.pillar_size),
                round((y_max - y_min) / self.pillar_size))


@dataclass
class Pillars:
    """Pillars of a batch: ``features`` (P, max_points, 9) with padding rows zeroed,
    ``num_points`` (P,), ``coords`` (P, 3) as batch index, iy, ix (int64)."""

    features: torch.Tensor
    num_points: torch.Tensor
    coords: torch.Tensor
    batch_size: int


def pillarize(points: torch.Tensor | np.ndarray, grid: PillarGrid) -> Pillars:
    """One cloud (N, 4) as x, y, z, intensity -> its pillars (batch index 0).

    When there are more than ``max_pillars`` occupied pillars the densest are kept (ties by
    grid order), which is deterministic and keeps the cells that carry most evidence; within
    a pillar the first ``max_points_per_pillar`` points in input order are kept.
    """
    points = torch.as_tensor(points, dtype=torch.float32)
    if points.ndim != 2 or points.shape[1] != 4:
        raise ValueError(f"expected (N, 4) points x, y, z, intensity, got {tuple(points.shape)}")
    x_min, y_min, z_min, x_max, y_max, z_max = grid.point_cloud_range
    nx, ny = grid.grid_size
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    # the range test is false for NaN and infinite coordinates: only intensity needs its own
    inside = ((x >= x_min) & (x < x_max) & (y >= y_min) & (y < y_max) & (z >= z_min)
              & (z < z_max) & torch.isfinite(points[:, 3]))
    points = points[inside]
    ix = ((points[:, 0] - x_min) / grid.pillar_size).floor().long().clamp(0, nx - 1)
    iy = ((points[:, 1] - y_min) / grid.pillar_size).floor().long().clamp(0, ny - 1)
    cell = iy * nx + ix

    # One stable sort by cell gives pillars (runs of equal cells) and each point's rank in
    # its pillar, with the input order kept inside a pillar. The points themselves are
    # gathered once, only those kept (a dense cloud fills many pillars past their cap).
    order = torch.argsort(cell, stable=True)
    cells, counts = torch.unique_consecutive(cell[order], return_counts=True)
    inverse = torch.repeat_interleave(torch.arange(len(cells)), counts)
    rank = torch.arange(len(order)) - (torch.cumsum(counts, 0) - counts)[inverse]
    kept = rank < grid.max_points_per_pillar
    if len(cells) > grid.max_pillars:
        kept_cells = torch.sort(torch.argsort(counts, descending=True, stable=True)
                                [: grid.max_pillars]).values
        remap = torch.full((len(cells),), -1, dtype=torch.long)
        remap[kept_cells] = torch.arange(len(kept_cells))
        inverse = remap[inverse]
        kept &= inverse >= 0
        cells, counts = cells[kept_cells], counts[kept_cells]
    points, inverse, rank = points[order[kept]], inverse[kept], rank[kept]

    num_pillars = len(cells)
    raw = torch.zeros(num_pillars, grid.max_points_per_pillar, 4)
    raw[inverse, rank] = points
    num_points = counts.clamp(max=grid.max_points_per_pillar)
    mask = (torch.arange(grid.max_points_per_pillar)[None, :] < num_points[:, None])
    mean = raw[:, :, :3].sum(dim=1) / num_points.clamp(min=1)[:, None].float()
    pillar_iy, pillar_ix = cells // nx, cells % nx
    centre = torch.stack([(pillar_ix.float() + 0.5) * grid.pillar_size + x_min,
                          (pillar_iy.float() + 0.5) * grid.pillar_size + y_min], dim=1)
    features = torch.cat([raw, raw[:, :, :3] - mean[:, None, :],
                          raw[:, :, :2] - centre[:, None, :]], dim=2)
    features = features * mask[:, :, None]
    coords = torch.stack([torch.zeros_like(pillar_iy), pillar_iy, pillar_ix], dim=1)
    return Pillars(features, num_points, coords, batch_size=1)


def pillarize_batch(clouds: Sequence[torch.Tensor | np.ndarray], grid: PillarGrid) -> Pillars:
    """Several clouds -> one pillar set whose ``coords[:, 0]`` says which cloud."""
    parts = [pillarize(cloud, grid) for cloud in clouds]
    coords = []
    for batch_index, part in enumerate(parts):
        part_coords = part.coords.clone()
        part_coords[:, 0] = batch_index
        coords.append(part_coords)
    return Pillars(
        features=torch.cat([p.features for p in parts]),
        num_points=torch.cat([p.num_points for p in parts]),
        coords=torch.cat(coords),
        batch_size=len(parts),
    )
