"""Compressed-model artifacts: one directory per variant with its files and a card.

``artifacts/variants/camera/prune50_int8/`` holds the compressed float model as an ordinary
checkpoint (``model.pt`` + ``model.pt.json``, so training, evaluation and the torch backend
load it like any other), the deployable file(s) of the recipe's backend (``model.xml`` +
``model.bin`` for OpenVINO, ``model.onnx``, ...) and ``card.json``: the sha256 of every file,
the recipe (name and content), the source checkpoint's sha256, each step with its measured
effect, the model config, backend/precision and the command. Loading verifies every hash
before any file is parsed, so a truncated or swapped file is refused with its name.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ad_perception.runtime.errors import RuntimeConfigError

CARD_NAME = "card.json"
CARD_FORMAT = "ad_perception.variant/1"
TORCH_FILE = "model.pt"


@dataclass
class VariantCard:
    """What ``card.json`` holds; ``files`` maps file name (relative) -> sha256."""

    name: str
    model: str  # "camera" or "lidar"
    backend: str
    precision: str
    primary: str  # the file the backend loads (model.xml, model.onnx, model.pt)
    files: dict[str, str]
    config: dict[str, Any]
    recipe: dict[str, Any] = field(default_factory=dict)
    source_checkpoint: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    produced_by: dict[str, Any] = field(default_factory=dict)
    io: dict[str, Any] = field(default_factory=dict)  # input/output names and shapes
    created: str = ""
    format: str = CARD_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def sha256_of(path: str | Path) -> str:
    from ad_perception.models.checkpoint import file_sha256

    return file_sha256(path)


def is_variant_dir(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / CARD_NAME).is_file()


def read_variant_card(directory: str | Path) -> VariantCard:
    """Parse ``card.json`` of a variant directory (no hash check; see ``verify_files``)."""
    directory = Path(directory)
    path = directory / CARD_NAME
    if not path.is_file():
        raise RuntimeConfigError(f"{directory}: no {CARD_NAME}; a variant directory is written "
                                 f"by `ad-perception compress`")
    try:
        values = json.loads(path.read_text())
        card = VariantCard(**values)
    except (json.JSONDecodeError, TypeError) as err:
        raise RuntimeConfigError(f"{path}: not a valid variant card ({err}); rerun "
                                 f"`ad-perception compress` to rewrite it") from err
    if card.format != CARD_FORMAT:
        raise RuntimeConfigError(f"{path}: card format {card.format!r}, this version reads "
                                 f"{CARD_FORMAT!r}")
    return card


def verify_files(directory: str | Path, card: VariantCard,
                 names: list[str] | None = None) -> None:
    """Check the sha256 of ``names`` (default: every file in the card) against the card."""
    directory = Path(directory)
    for name in names if names is not None else sorted(card.files):
        if name not in card.files:
            raise RuntimeConfigError(f"{directory}: {name} is not listed in {CARD_NAME}; "
                                     f"refusing a file of unknown origin")
        path = directory / name
        if not path.is_file():
            raise RuntimeConfigError(f"{path}: missing (listed in {CARD_NAME}); rerun "
                                     f"`ad-perception compress` for this variant")
        actual = sha256_of(path)
        if actual != card.files[name]:
            raise RuntimeConfigError(
                f"{path}: sha256 mismatch ({actual[:12]}... on disk, {card.files[name][:12]}... "
                f"in {CARD_NAME}); the file was changed, truncated or replaced")


def write_variant_card(directory: str | Path, card: VariantCard) -> Path:
    """Hash every file the card names (they must exist), then write ``card.json``
    atomically. Returns the card path."""
    directory = Path(directory)
    card.files = {name: sha256_of(directory / name) for name in sorted(card.files)}
    card.created = card.created or datetime.datetime.now(datetime.UTC).isoformat(
        timespec="seconds")
    path = directory / CARD_NAME
    temporary = directory / f".{CARD_NAME}.{os.getpid()}.tmp"
    temporary.write_text(card.to_json())
    os.replace(temporary, path)
    return path
