"""The shipped baselines: small enough for the repository, verified by hash, and their cards
say what a fresh measurement on the same held-out bags gives."""

from __future__ import annotations

import json
import math

import pytest

from ad_perception.eval.variants import shipped_variants
from ad_perception.models.checkpoint import card_path, load_checkpoint, read_card

BASELINE = shipped_variants()["baseline"]
pytestmark = pytest.mark.skipif(not BASELINE.camera_checkpoint.exists(),
                                reason="no shipped baseline weights in this checkout")


def test_weights_fit_in_the_repository_budget():
    total = sum(p.stat().st_size for p in (BASELINE.camera_checkpoint,
                                           BASELINE.lidar_checkpoint))
    assert total <= 30 * 1024 * 1024


@pytest.mark.parametrize("kind", ["camera", "lidar"])
def test_cards_verify_and_say_how_the_model_was_made(kind):
    path = getattr(BASELINE, f"{kind}_checkpoint")
    _, card = load_checkpoint(path)  # sha256 checked against the card
    assert card.model == kind
    assert {"command", "seed", "data"} <= set(card.produced_by)
    heldout = card.metrics["heldout"]
    assert heldout["seeds"] and not set(heldout["seeds"]) & _training_seeds(card)


def _training_seeds(card) -> set[int]:
    bags = [*card.produced_by["data"], *card.produced_by.get("val", [])]
    return {int(b.rsplit("seed", 1)[1]) for b in bags if "seed" in b}


def test_tampered_weights_are_refused(tmp_path):
    copy = tmp_path / "camera.pt"
    data = bytearray(BASELINE.camera_checkpoint.read_bytes())
    data[-100] ^= 0xFF
    copy.write_bytes(bytes(data))
    card_path(copy).write_text(card_path(BASELINE.camera_checkpoint).read_text())
    from ad_perception.models.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(copy)


@pytest.mark.slow
def test_cards_match_a_fresh_measurement(tmp_path):
    """Regenerate the held-out bags from their seeds and re-score: the numbers must equal the
    cards' (generation and offline evaluation are deterministic)."""
    from ad_perception.cli import main

    camera_card = read_card(BASELINE.camera_checkpoint).metrics["heldout"]
    lidar_card = read_card(BASELINE.lidar_checkpoint).metrics["heldout"]
    seeds = ",".join(str(s) for s in camera_card["seeds"])
    assert main(["dataset", "--out", str(tmp_path), "--frames",
                 str(camera_card["frames_per_bag"]), "--train-seeds", "", "--val-seeds", "",
                 "--heldout-seeds", seeds]) == 0
    out = tmp_path / "results.json"
    bags = [str(tmp_path / "heldout" / name) for name in camera_card["bags"]]
    assert main(["eval", *bags, "--variants", "baseline", "--json", str(out),
                 "--threads", str(camera_card["threads"]), "--no-progress"]) == 0
    measured = json.loads(out.read_text())["variants"]["baseline"]

    def close(a, b):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, abs_tol=1e-6)

    for key in ("map50", "map"):
        assert close(measured["camera"][key], camera_card["camera"][key]), key
    for cls, value in camera_card["camera"]["ap50"].items():
        assert close(measured["camera"]["ap50"][cls], value), cls
    for cls, value in lidar_card["lidar"]["bev_ap"].items():
        assert close(measured["lidar"]["bev_ap"][cls], value), cls
    assert close(measured["fused"]["class_accuracy"], lidar_card["fused"]["class_accuracy"])
