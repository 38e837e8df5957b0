from __future__ import annotations

import json

import pytest

from ad_perception.cli import main
from ad_perception.sim.dataset import bag_is_complete, parse_seeds


def test_parse_seeds():
    assert parse_seeds("3-5,9, 4") == [3, 4, 5, 9]
    for bad in ("", "a-b", "5-3"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_dataset_generation_resumes_and_regenerates_partial_bags(tmp_path):
    args = ["dataset", "--out", str(tmp_path), "--frames", "2", "--train-seeds", "1-2",
            "--val-seeds", "", "--heldout-seeds", "5"]
    partial = tmp_path / "train" / "seed2"
    partial.mkdir(parents=True)
    (partial / "junk.mcap").write_bytes(b"half a bag")  # an interrupted earlier run
    assert main(args) == 0
    bags = [tmp_path / "train/seed1", tmp_path / "train/seed2", tmp_path / "heldout/seed5"]
    assert all(bag_is_complete(b) for b in bags)
    assert not (partial / "junk.mcap").exists()
    stamp = (tmp_path / "train/seed1/metadata.yaml").stat().st_mtime_ns
    assert main(args) == 0  # nothing to do the second time
    assert (tmp_path / "train/seed1/metadata.yaml").stat().st_mtime_ns == stamp
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["splits"] == {"train": [1, 2], "heldout": [5]}
    assert main([*args[:4], "3", *args[5:]]) == 2  # other frame count: refuse to mix
