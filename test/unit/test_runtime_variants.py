"""Variant names: ``baseline`` and every recipe resolve to the shipped checkpoints or to
``artifacts/variants/<model>/<recipe>/``; a missing compressed variant names the command
that makes it; a camera-only recipe pairs with the lidar baseline."""

from __future__ import annotations

import pytest

from ad_perception.eval import variants
from ad_perception.runtime.artifacts import CARD_NAME


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    """A private artifacts folder, and a private shipped-weights folder so that the
    variants the package ships do not change what these tests see."""
    monkeypatch.setenv("AD_PERCEPTION_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr(variants, "WEIGHTS_DIR", tmp_path / "shipped")
    return tmp_path


def _make(root, model, name):
    path = root / "variants" / model / name
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


def test_shipped_variants_are_found_and_a_local_build_takes_precedence(artifacts):
    shipped = artifacts / "shipped"
    camera = _make(shipped, "camera", "shipped_experiment")
    lidar = _make(shipped, "lidar", "int8")
    assert {"shipped_experiment", "int8"} <= set(variants.known_variant_names())
    (resolved,) = variants.resolve_variants(["shipped_experiment"], lidar_override=camera)
    assert resolved.camera_checkpoint == camera
    assert variants.variant_dir("lidar", "int8") == lidar
    local = _make(artifacts, "lidar", "int8")
    assert variants.variant_dir("lidar", "int8") == local


def test_a_camera_recipe_borrows_the_paired_variants_lidar(artifacts, monkeypatch, tmp_path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "cam_only.yaml").write_text(
        "name: cam_only\nmodels: [camera]\npair_with: {lidar: int8}\nsteps: [graph]\n")
    monkeypatch.setattr(variants, "recipe_dir", lambda: recipes)
    camera = _make(artifacts, "camera", "cam_only")
    with pytest.raises(ValueError, match="recipe config/compression/int8.yaml"):
        variants.resolve_variants(["cam_only"])
    lidar = _make(artifacts, "lidar", "int8")
    (resolved,) = variants.resolve_variants(["cam_only"])
    assert resolved.camera_checkpoint == camera and resolved.lidar_checkpoint == lidar
