"""The frames a recipe works with, decoded once from bags with the training datasets:
calibration frames (``--calib``), fine-tuning frames (``--train``) and validation frames
(``--val``, labelled, scored as the evaluation scores them). Each set is loaded on first use
and cached on disk under the run's work directory, so a resumed run starts at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ad_perception.compress.frames import CameraFrames, LidarFrames


def subset(samples: Any, count: int, seed: int) -> Any:
    """At most ``count`` frames of ``samples`` (0: all), picked with a fixed seed."""
    if count <= 0 or count >= len(samples):
        return samples
    picked = np.sort(np.random.default_rng(seed).choice(len(samples), count, replace=False))
    values = {}
    for name, value in vars(samples).items():
        if isinstance(value, np.ndarray) and len(value) == len(samples):
            values[name] = value[picked]
        elif isinstance(value, list) and len(value) == len(samples):
            values[name] = [value[i] for i in picked]
        else:
            values[name] = value
    return type(samples)(**values)


@dataclass
class CompressData:
    kind: str
    config: Any  # the input size / point-cloud range frames are made for (use_config)
    calib_bags: list[Path]
    train_bags: list[Path] = field(default_factory=list)
    val_bags: list[Path] = field(default_factory=list)
    cache_dir: Path | None = None
    progress: bool = True
    _loaded: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for bag in [*self.calib_bags, *self.train_bags, *self.val_bags]:
            if not (Path(bag) / "metadata.yaml").is_file():
                raise ValueError(f"{bag} is not a rosbag2 folder (no metadata.yaml)")

    def _load(self, name: str, bags: list[Path], scoring: bool) -> Any:
        if name not in self._loaded:
            if not bags:
                flag = {"train": "--train", "val": "--val", "calib": "--calib"}[name]
                raise ValueError(f"this recipe needs {name} frames: give {flag} BAG...")
            if self.kind == "camera":
                from ad_perception.models.train_camera import load_camera_samples

                self._loaded[name] = load_camera_samples(
                    bags, self.config.input_size, "all", scoring=scoring,
                    cache_dir=self.cache_dir, progress=self.progress)
            else:
                from ad_perception.models.train_lidar import load_lidar_samples

                self._loaded[name] = load_lidar_samples(bags, self.config, "all",
                                                        cache_dir=self.cache_dir,
                                                        progress=self.progress)
        return self._loaded[name]

    def use_config(self, config: Any) -> None:
        """Frames from now on as ``config`` needs them (a new camera input size); frames
        loaded for the old config are dropped (the disk cache keeps them, keyed by size)."""
        if self.kind == "camera" and config.input_size != self.config.input_size:
            self._loaded.clear()
        self.config = config

    @property
    def has_val(self) -> bool:
        return bool(self.val_bags)

    @property
    def has_train(self) -> bool:
        return bool(self.train_bags)

    def train(self, max_frames: int = 0, seed: int = 0) -> Any:
        return subset(self._load("train", self.train_bags, False), max_frames, seed)

    def val(self) -> Any:
        return self._load("val", self.val_bags, True)

    def calib(self, max_frames: int = 0, seed: int = 0) -> Any:
        return subset(self._load("calib", self.calib_bags, False), max_frames, seed)

    def frames(self, samples: Any, model: Any, config: Any) -> CameraFrames | LidarFrames:
        """Core-level frames for ``model`` (the lidar BEV input uses its pillar encoder)."""
        if self.kind == "camera":
            return CameraFrames(samples, config)
        return LidarFrames(samples, config, model.pillar_encoder)

    def task(self, model: Any, config: Any, batch_size: int, max_frames: int, seed: int) -> Any:
        """A train_loop task adapter over the training and validation frames."""
        train = self.train(max_frames, seed)
        val = self.val()
        if self.kind == "camera":
            from ad_perception.models.train_camera import CameraTask

            return CameraTask(model, config, train, val, batch_size, seed)
        from ad_perception.models.train_lidar import LidarTask

        return LidarTask(model, config, train, val, batch_size, seed)
