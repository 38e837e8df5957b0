"""Variant names: ``baseline`` and every recipe resolve to the shipped checkpoints or to
``artifacts/variants/<model>/<recipe>/``; a missing compressed variant names the command
that makes it; a camera-only recipe pairs with the lidar baseline."""

from __future__ import annotations

import pytest

from ad_perception.eval import variants
from ad_perception.runtime.artifacts import CARD_NAME


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("AD_PERCEPTION_ARTIFACTS", str(tmp_path))
    return tmp_path


def _make(artifacts, model, name):
    path = artifacts / "variants" / model / name
    path.mkdir(parents=True)
    (path / CARD_NAME).write_text("{}")
    return path


def test_every_shipped_recipe_is_a_variant_name(artifacts):
    names = variants.known_variant_names()
    assert {"baseline", "int8", "prune50_int8", "lowrank_int8", "fp16_gpu"} <= set(names)
    baseline = variants.shipped_variants()["baseline"]
    assert baseline.camera_checkpoint == variants.shipped_baseline("camera")


def test_recipe_names_resolve_to_variant_directories(artifacts):
    camera = _make(artifacts, "camera", "int8")
    lidar = _make(artifacts, "lidar", "int8")
    (resolved,) = variants.resolve_variants(["int8"])
    assert resolved.camera_checkpoint == camera and resolved.lidar_checkpoint == lidar


def test_missing_variant_tells_the_compress_command(artifacts):
    _make(artifacts, "lidar", "prune50_int8")
    with pytest.raises(ValueError) as error:
        variants.resolve_variants(["prune50_int8"])
    message = str(error.value)
    assert "camera model" in message and "does not exist" in message
    assert ("ad-perception compress --model camera --recipe "
            "config/compression/prune50_int8.yaml") in message


def test_unknown_names_are_listed(artifacts):
    with pytest.raises(ValueError, match=r"unknown variant\(s\) \['int4'\]; known: \["):
        variants.resolve_variants(["int4"])


def test_a_written_directory_counts_even_without_a_recipe(artifacts, tmp_path):
    path = _make(artifacts, "camera", "my_experiment")
    override = tmp_path / "lidar.pt"
    override.write_bytes(b"x")
    (resolved,) = variants.resolve_variants(["my_experiment"], lidar_override=override)
    assert resolved.camera_checkpoint == path and resolved.lidar_checkpoint == override
