"""Model files with sidecar cards: save, verify and rebuild camera and lidar detectors.

A checkpoint is two files: ``<name>.pt``, a plain state_dict (tensors only), and
``<name>.pt.json``, the card: the file's sha256, which model and config rebuild it, how it was
produced (command, seed, data), its measured metrics and when it was written. Loading checks
the hash before unpickling anything and uses ``torch.load(weights_only=True)``, so a file from
an unknown source is refused rather than executed. Pruned models are rebuilt from the per-layer
widths their config records (``structure.py``), never by pickling a module.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ad_perception.models.camera_detector import CameraDetectorConfig, build_camera_detector
from ad_perception.models.lidar_detector import LidarDetectorConfig, build_lidar_detector
from ad_perception.models.structure import changed_layer_widths

CARD_SUFFIX = ".json"
PRODUCED_BY_KEYS = ("command", "seed", "data")


@dataclass(frozen=True)
class ModelKind:
    """How a card's ``"model"`` name turns back into a config and a module."""

    config_type: type
    build: Callable[[Any], nn.Module]


MODEL_KINDS: dict[str, ModelKind] = {
    "camera": ModelKind(CameraDetectorConfig, build_camera_detector),
    "lidar": ModelKind(LidarDetectorConfig, build_lidar_detector),
}


class CheckpointError(RuntimeError):
    """A model file or its card is missing, corrupt, or does not belong together."""


@dataclass
class ModelCard:
    sha256: str
    model: str
    config: dict[str, Any]
    produced_by: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def card_path(checkpoint_path: str | Path) -> Path:
    return Path(f"{checkpoint_path}{CARD_SUFFIX}")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _kind_of(config: object) -> str:
    for name, kind in MODEL_KINDS.items():
        if isinstance(config, kind.config_type):
            return name
    raise TypeError(f"no model kind for a {type(config).__name__}; expected one of "
                    f"{[k.config_type.__name__ for k in MODEL_KINDS.values()]}")


def save_checkpoint(model: nn.Module, path: str | Path,
                    config: CameraDetectorConfig | LidarDetectorConfig,
                    produced_by: dict[str, Any],
                    metrics: dict[str, Any] | None = None) -> ModelCard:
    """Write ``path`` (state_dict) and its card; returns the card.

    ``config`` is the config the model was built from; if the model has since been pruned,
    its changed layer widths are recorded into the card's config automatically.
    """
    missing = [key for key in PRODUCED_BY_KEYS if key not in produced_by]
    if missing:
        raise ValueError(f"produced_by needs {list(PRODUCED_BY_KEYS)}; missing {missing}")
    kind = _kind_of(config)
    reference = MODEL_KINDS[kind].build(dataclasses.replace(config, layer_widths={}))
    config = dataclasses.replace(config, layer_widths=changed_layer_widths(model, reference))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    _atomic_write(path, lambda stream: torch.save(state, stream))
    card = ModelCard(
        sha256=file_sha256(path), model=kind, config=config.to_dict(),
        produced_by=dict(produced_by), metrics=dict(metrics or {}),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    text = card.to_json()
    _atomic_write(card_path(path), lambda stream: stream.write(text.encode()))
    return ModelCard(**json.loads(text))  # exactly what a later read_card returns


def read_card(path: str | Path) -> ModelCard:
    """The card of checkpoint ``path`` (not the card file itself)."""
    sidecar = card_path(path)
    try:
        values = json.loads(sidecar.read_text())
        return ModelCard(**values)
    except FileNotFoundError as err:
        raise CheckpointError(f"{path}: no card at {sidecar}; refusing a model file whose "
                              f"origin is unknown") from err
    except (json.JSONDecodeError, TypeError) as err:
        raise CheckpointError(f"{sidecar}: not a valid model card ({err})") from err


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"
                    ) -> tuple[nn.Module, ModelCard]:
    """Verify ``path`` against its card, rebuild the model from the card's config and load
    the weights. Raises ``CheckpointError`` for every way the pair can be bad."""
    card = read_card(path)
    try:
        actual = file_sha256(path)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read model file ({err})") from err
    if actual != card.sha256:
        raise CheckpointError(f"{path}: sha256 {actual} does not match the card's "
                              f"{card.sha256}; the file was changed or truncated")
    if card.model not in MODEL_KINDS:
        raise CheckpointError(f"{path}: unknown model kind {card.model!r} in card; known: "
                              f"{sorted(MODEL_KINDS)}")
    kind = MODEL_KINDS[card.model]
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a bad archive
        raise CheckpointError(f"{path}: not a readable state_dict ({type(err).__name__}: "
                              f"{err})") from err
    try:
        config = kind.config_type.from_dict(card.config)
        model = kind.build(config)
        model.load_state_dict(state, strict=True)
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: weights do not fit the card's {card.model} config "
                              f"({err})") from err
    return model.to(map_location), card


def _atomic_write(path: Path, write: Callable[[Any], object]) -> None:
    """Write to a temporary sibling then rename, so a crash never leaves half a file that
    still has a matching name."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as stream:
        write(stream)
    os.replace(temporary, path)
