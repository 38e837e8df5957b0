"""The compressed variants the package ships: every file matches its card, each was made
from the shipped baseline (by hash), its card records the accuracy measured against that
baseline and whether that is within the recipe's budget, and it loads and detects through
the runtime."""

from __future__ import annotations

import numpy as np
import pytest

from ad_perception.eval.variants import WEIGHTS_DIR, shipped_baseline
from ad_perception.models.checkpoint import file_sha256
from ad_perception.runtime.artifacts import is_variant_dir, read_variant_card, verify_files

SHIPPED = sorted(p for p in (WEIGHTS_DIR / "variants").glob("*/*") if is_variant_dir(p))
pytestmark = pytest.mark.skipif(not SHIPPED, reason="no shipped variants in this checkout")


def _ids(paths):
    return [f"{p.parent.name}/{p.name}" for p in paths]


@pytest.mark.parametrize("directory", SHIPPED, ids=_ids(SHIPPED))
def test_files_match_the_card_and_come_from_the_shipped_baseline(directory):
    card = read_variant_card(directory)
    verify_files(directory, card)
    assert card.model == directory.parent.name and card.name == directory.name
    assert card.source_checkpoint["sha256"] == file_sha256(shipped_baseline(card.model))
    metrics = card.metrics
    # The card tells the truth about the budget (a variant may ship over it; README says so).
    assert metrics["drop"] == metrics["baseline"]["value"] - metrics["final"]["value"]
    assert metrics["within_budget"] is (metrics["drop"] <= metrics["budget"])
    assert metrics["final"]["value"] > 0 and metrics["baseline"]["value"] > 0


def test_shipped_variants_fit_in_the_repository_budget():
    total = sum(f.stat().st_size for d in SHIPPED for f in d.iterdir() if f.is_file())
    assert total <= 40 * 1024 * 1024


@pytest.mark.parametrize("directory", SHIPPED, ids=_ids(SHIPPED))
def test_shipped_variant_loads_and_runs(directory):
    from ad_perception.core.types import PointCloud
    from ad_perception.runtime import load_pipeline

    pipeline = load_pipeline(directory, threads=1)
    rng = np.random.default_rng(0)
    if directory.parent.name == "camera":
        detections = pipeline(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8))
        assert detections.boxes.shape[1] == 4
    else:
        xyz = rng.uniform([0, -20, -2], [40, 20, 0], (20000, 3)).astype(np.float32)
        boxes = pipeline(PointCloud(xyz, intensity=rng.uniform(0, 1, 20000).astype(np.float32),
                                    frame_id="lidar_top"))
        assert boxes.centers.shape[1] == 3
