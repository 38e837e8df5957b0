"""``ad-perception train`` end to end on a tiny generated bag: checkpoint + card, resume."""

from __future__ import annotations

import json

import pytest

from ad_perception.cli import main
from ad_perception.models.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    from ad_perception.sim.bag_output import generate_bag

    path = tmp_path_factory.mktemp("train") / "bag"
    generate_bag(path, 4, 21, "mcap", "default", progress=False)
    return path


def test_camera_training_writes_card_and_resumes(bag, tmp_path):
    out = tmp_path / "run"
    common = ["train", "camera", "--data", str(bag), "--val", str(bag), "--out", str(out),
              "--batch-size", "2", "--input-size", "160", "96", "--width-multiplier", "0.25",
              "--fpn-channels", "16", "--threads", "1"]
    assert main([*common, "--epochs", "1"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1]
    assert "map50" in history[0]["val"]
    model, card = load_checkpoint(out / "best.pt")
    assert card.model == "camera" and card.config["input_size"] == [160, 96]
    assert card.produced_by["seed"] == 0 and "train camera" in card.produced_by["command"]
    assert main([*common, "--epochs", "2"]) == 0  # resumes at epoch 2, does not redo epoch 1
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]


def test_lidar_training_runs_one_epoch(bag, tmp_path):
    out = tmp_path / "lidar"
    assert main(["train", "lidar", "--data", str(bag), "--val", str(bag), "--out", str(out),
                 "--epochs", "1", "--batch-size", "2", "--threads", "1"]) == 0
    _, card = load_checkpoint(out / "best.pt")
    assert card.model == "lidar" and "validation" in card.metrics


def test_unreadable_data_fails_with_message(tmp_path, capsys):
    assert main(["train", "camera", "--data", str(tmp_path / "missing"), "--out",
                 str(tmp_path / "x"), "--epochs", "1"]) == 1
    assert "train:" in capsys.readouterr().err
