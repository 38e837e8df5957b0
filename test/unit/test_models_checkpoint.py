"""Checkpoint files and their cards: round trips, and every way a pair can be bad."""

from __future__ import annotations

import json

import pytest
import torch
import torch_pruning as tp

from ad_perception.models.camera_detector import CameraDetectorConfig, build_camera_detector
from ad_perception.models.checkpoint import (
    CheckpointError,
    card_path,
    file_sha256,
    load_checkpoint,
    read_card,
    save_checkpoint,
)
from ad_perception.models.lidar_detector import LidarDetectorConfig, build_lidar_detector

CAMERA = CameraDetectorConfig(input_size=(160, 96), width_multiplier=0.25, fpn_channels=32)
LIDAR = LidarDetectorConfig(point_cloud_range=(0.0, -12.8, -3.0, 25.6, 12.8, 1.0),
                            pillar_channels=16, backbone_channels=(16, 32, 64),
                            backbone_layers=(1, 1, 1), neck_channels=32, head_channels=32)
PRODUCED_BY = {"command": "pytest", "seed": 0, "data": "synthetic"}


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _same_outputs(first: torch.nn.Module, second: torch.nn.Module, *inputs) -> None:
    first.eval()
    second.eval()
    with torch.no_grad():
        for a, b in zip(first(*inputs), second(*inputs), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_camera_round_trip_with_card(tmp_path):
    model = build_camera_detector(CAMERA)
    path = tmp_path / "camera.pt"
    card = save_checkpoint(model, path, CAMERA, PRODUCED_BY, metrics={"map50": 0.5})
    on_disk = json.loads(card_path(path).read_text())
    assert set(on_disk) == {"sha256", "model", "config", "produced_by", "metrics", "created"}
    assert on_disk["sha256"] == file_sha256(path) and on_disk["model"] == "camera"
    loaded, loaded_card = load_checkpoint(path)
    assert loaded_card == card and loaded_card.config["layer_widths"] == {}
    _same_outputs(model, loaded, torch.randn(1, 3, 96, 160))


def test_lidar_round_trip(tmp_path):
    model = build_lidar_detector(LIDAR)
    save_checkpoint(model, tmp_path / "lidar.pt", LIDAR, PRODUCED_BY)
    loaded, card = load_checkpoint(tmp_path / "lidar.pt")
    assert card.model == "lidar"
    features = torch.rand(2, LIDAR.max_points_per_pillar, 9)
    coords = torch.tensor([[0, 3, 4], [0, 9, 1]])
    _same_outputs(model, loaded, features, torch.tensor([5, 2]), coords, 1)


def test_pruned_models_reload_without_pickled_modules(tmp_path):
    camera = build_camera_detector(CAMERA).eval()
    example = torch.randn(1, 3, 96, 160)
    tp.pruner.MetaPruner(camera, example, tp.importance.GroupMagnitudeImportance(p=1),
                         pruning_ratio=0.5, round_to=8,
                         ignored_layers=camera.output_layers()).step()
    card = save_checkpoint(camera, tmp_path / "camera.pt", CAMERA, PRODUCED_BY)
    assert card.config["layer_widths"]["trunk.conv1"]["out_channels"] == 8
    loaded, _ = load_checkpoint(tmp_path / "camera.pt")
    _same_outputs(camera, loaded, example)

    lidar = build_lidar_detector(LIDAR).eval()
    core = lidar.bev_backbone_and_heads
    tp.pruner.MetaPruner(core, torch.randn(1, *LIDAR.bev_shape),
                         tp.importance.GroupMagnitudeImportance(p=1), pruning_ratio=0.5,
                         round_to=8, ignored_layers=core.output_layers()).step()
    save_checkpoint(lidar, tmp_path / "lidar.pt", LIDAR, PRODUCED_BY)
    loaded_lidar, _ = load_checkpoint(tmp_path / "lidar.pt")
    bev = torch.rand(1, *LIDAR.bev_shape)
    _same_outputs(core, loaded_lidar.bev_backbone_and_heads, bev)


def test_changed_file_is_refused_naming_both_hashes(tmp_path):
    path = tmp_path / "camera.pt"
    card = save_checkpoint(build_camera_detector(CAMERA), path, CAMERA, PRODUCED_BY)
    other = tmp_path / "other.pt"
    save_checkpoint(build_camera_detector(CAMERA), other, CAMERA, PRODUCED_BY)
    path.write_bytes(other.read_bytes())
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    assert card.sha256 in str(raised.value) and file_sha256(path) in str(raised.value)


def test_truncated_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "camera.pt"
    save_checkpoint(build_camera_detector(CAMERA), path, CAMERA, PRODUCED_BY)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)
    # Even when the card was (wrongly) rewritten to match, the archive itself is refused.
    card = json.loads(card_path(path).read_text())
    card["sha256"] = file_sha256(path)
    card_path(path).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="not a readable state_dict"):
        load_checkpoint(path)


def test_pickled_module_is_refused(tmp_path):
    path = tmp_path / "camera.pt"
    save_checkpoint(build_camera_detector(CAMERA), path, CAMERA, PRODUCED_BY)
    torch.save(build_camera_detector(CAMERA), path)  # a whole module: needs full unpickling
    card = json.loads(card_path(path).read_text())
    card["sha256"] = file_sha256(path)
    card_path(path).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="not a readable state_dict"):
        load_checkpoint(path)


def test_missing_or_broken_card(tmp_path):
    path = tmp_path / "camera.pt"
    torch.save(build_camera_detector(CAMERA).state_dict(), path)
    with pytest.raises(CheckpointError, match="no card"):
        load_checkpoint(path)
    card_path(path).write_text("{not json")
    with pytest.raises(CheckpointError, match="not a valid model card"):
        read_card(path)


def test_weights_that_do_not_fit_the_config(tmp_path):
    path = tmp_path / "camera.pt"
    save_checkpoint(build_camera_detector(CAMERA), path, CAMERA, PRODUCED_BY)
    card = json.loads(card_path(path).read_text())
    card["config"]["fpn_channels"] = 48
    card_path(path).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path)


def test_produced_by_is_required():
    with pytest.raises(ValueError, match="missing"):
        save_checkpoint(build_camera_detector(CAMERA), "unused.pt", CAMERA, {"command": "x"})
