"""Training readers over generated bags: shapes, splits, caching, camera-lidar pairing."""

import numpy as np
import pytest
import torch

from ad_perception.data.datasets import (
    CameraDetectionDataset,
    CameraLidarDataset,
    LidarDetectionDataset,
    collate_detections,
    split_of,
)
from ad_perception.sim.bag_output import generate_bag


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return generate_bag(tmp_path_factory.mktemp("ds") / "bag", 3, seed=21, progress=False)


def test_camera_dataset_items(bag):
    ds = CameraDetectionDataset(bag)
    assert len(ds) == 3
    item = ds[1]
    assert item["image"].shape == (3, 720, 1280) and item["image"].dtype == torch.uint8
    assert item["boxes"].shape[1] == 4 and len(item["boxes"]) == len(item["labels"]) > 0
    assert (item["labels"] >= 0).all()
    batch = collate_detections([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 720, 1280) and len(batch["boxes"]) == 2


def test_lidar_dataset_items_and_disk_cache(bag, tmp_path):
    ds = LidarDetectionDataset(bag, cache_dir=tmp_path / "cache")
    item = ds[2]
    assert item["points"].shape[1] == 4 and item["boxes"].shape[1] == 7
    assert list((tmp_path / "cache").glob("*.npz"))
    again = LidarDetectionDataset(bag, cache_dir=tmp_path / "cache")
    assert torch.equal(again[2]["points"], item["points"])
    assert again.cache.hits >= 1 and again.cache.misses == 0


def test_splits_are_deterministic_and_disjoint(bag):
    fractions = [split_of(bag, i, 0.5, 7) for i in range(200)]
    assert fractions == [split_of(bag, i, 0.5, 7) for i in range(200)]
    assert 60 < fractions.count("val") < 140
    train = LidarDetectionDataset(bag, split="train", val_fraction=0.5, split_seed=7)
    val = LidarDetectionDataset(bag, split="val", val_fraction=0.5, split_seed=7)
    assert len(train) + len(val) == 3
    stamps = {train[i]["stamp_ns"] for i in range(len(train))}
    assert stamps.isdisjoint({val[i]["stamp_ns"] for i in range(len(val))})


def test_camera_lidar_pairs_are_synchronised(bag):
    ds = CameraLidarDataset(bag, tolerance_ms=10)
    assert len(ds) == 3
    item = ds[0]
    assert abs(item["stamp_ns"] - item["camera_stamp_ns"]) <= 10_000_000
    assert item["image"].shape[0] == 3 and item["points"].shape[1] == 4
    assert np.isfinite(item["boxes"].numpy()).all()
