"""Named model variants that evaluation, benchmarks and launch files refer to.

A variant is a camera model and a lidar model, each a checkpoint with its card. The
baseline is the shipped, uncompressed pair; the compression toolkit adds its outputs here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "models" / "weights"


@dataclass(frozen=True)
class Variant:
    name: str
    camera_checkpoint: Path
    lidar_checkpoint: Path


def shipped_variants() -> dict[str, Variant]:
    return {
        "baseline": Variant("baseline", WEIGHTS_DIR / "camera_baseline.pt",
                            WEIGHTS_DIR / "lidar_baseline.pt"),
    }


def resolve_variants(names: list[str], camera_override: Path | None = None,
                     lidar_override: Path | None = None) -> list[Variant]:
    """Variants by name; overrides replace the checkpoints (e.g. a fresh training run)."""
    known = shipped_variants()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; known: {sorted(known)}")
    variants = []
    for name in names:
        variant = known[name]
        variant = Variant(name, camera_override or variant.camera_checkpoint,
                          lidar_override or variant.lidar_checkpoint)
        for path in (variant.camera_checkpoint, variant.lidar_checkpoint):
            if not Path(path).exists():
                raise ValueError(f"variant {name}: model file {path} does not exist")
        variants.append(variant)
    return variants
