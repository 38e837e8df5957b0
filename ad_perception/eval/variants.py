"""Named model variants that evaluation, benchmarks and launch files refer to.

A variant is a camera model and a lidar model. ``baseline`` is the shipped, uncompressed pair
(checkpoints in ``models/weights``); every other name is a compression recipe
(``config/compression/NAME.yaml``) whose output lives in
``artifacts/variants/<model>/<NAME>/`` (a directory with ``card.json``, written by
``ad-perception compress``), or, where the package ships a built variant, in
``models/weights/variants/<model>/<NAME>/`` (a variant built locally takes precedence).
A recipe meant for one model only (``models: [camera]``) pairs its compressed model with the
other model's baseline, or with the variant its ``pair_with`` names (``{lidar: int8}``).
Paths here are either checkpoints or variant directories;
``ad_perception.runtime.load_pipeline`` loads both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "models" / "weights"
REPO_ROOT = Path(__file__).resolve().parents[2]
BASELINE = "baseline"
MODELS = ("camera", "lidar")


def artifacts_dir() -> Path:
    """``$AD_PERCEPTION_ARTIFACTS`` or ``artifacts/`` at the repository root."""
    return Path(os.environ.get("AD_PERCEPTION_ARTIFACTS") or REPO_ROOT / "artifacts")


def recipe_dir() -> Path:
    return REPO_ROOT / "config" / "compression"


def shipped_baseline(model: str) -> Path:
    return WEIGHTS_DIR / f"{model}_baseline.pt"


def default_variant_dir(model: str, recipe: str) -> Path:
    return artifacts_dir() / "variants" / model / recipe


def shipped_variant_dir(model: str, recipe: str) -> Path:
    return WEIGHTS_DIR / "variants" / model / recipe


def variant_dir(model: str, recipe: str) -> Path:
    """Where the variant is read from: the locally built one, else the shipped one, else the
    place ``ad-perception compress`` writes it (which does not exist yet)."""
    local = default_variant_dir(model, recipe)
    if local.is_dir():
        return local
    shipped = shipped_variant_dir(model, recipe)
    return shipped if shipped.is_dir() else local


def compress_command(model: str, recipe: str) -> str:
    """The command that creates a missing variant (what error messages tell the user)."""
    return (f"ad-perception compress --model {model} --recipe "
            f"config/compression/{recipe}.yaml --calib data/train/* --train data/train/* "
            f"--val data/val/* --out {default_variant_dir(model, recipe)}")


@dataclass(frozen=True)
class Variant:
    name: str
    camera_checkpoint: Path  # a checkpoint (.pt with card) or a variant directory
    lidar_checkpoint: Path

    def model_path(self, model: str) -> Path:
        return self.camera_checkpoint if model == "camera" else self.lidar_checkpoint


def _recipe_models_and_pairs(name: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """The recipe's ``models`` (which it compresses) and ``pair_with`` (model -> the variant
    whose model it borrows), read without full validation."""
    import yaml

    path = recipe_dir() / f"{name}.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        data = {}
    data = data if isinstance(data, dict) else {}
    models = data.get("models", list(MODELS))
    pairs = data.get("pair_with") or {}
    pairs = {k: v for k, v in pairs.items() if k in MODELS and isinstance(v, str)} \
        if isinstance(pairs, dict) else {}
    return tuple([models] if isinstance(models, str) else models), pairs


def known_variant_names() -> list[str]:
    """``baseline``, every shipped recipe, and every variant directory already written."""
    names = {BASELINE} | {p.stem for p in recipe_dir().glob("*.yaml")}
    for root in (artifacts_dir() / "variants", WEIGHTS_DIR / "variants"):
        names |= {p.name for model in MODELS for p in (root / model).glob("*") if p.is_dir()}
    return sorted(names)


def shipped_variants() -> dict[str, Variant]:
    """Every known variant by name, with paths whether or not they exist yet."""
    variants = {}
    for name in known_variant_names():
        if name == BASELINE:
            variants[name] = Variant(name, shipped_baseline("camera"), shipped_baseline("lidar"))
            continue
        models, pairs = _recipe_models_and_pairs(name)
        compressed = set(models)
        for model in MODELS:  # a directory already written counts even without a recipe
            if variant_dir(model, name).is_dir():
                compressed.add(model)
        paths = {}
        for model in MODELS:
            if model in compressed:
                paths[model] = variant_dir(model, name)
            elif pairs.get(model, BASELINE) != BASELINE:
                paths[model] = variant_dir(model, pairs[model])
            else:
                paths[model] = shipped_baseline(model)
        variants[name] = Variant(name, paths["camera"], paths["lidar"])
    return variants


def resolve_variants(names: list[str], camera_override: Path | None = None,
                     lidar_override: Path | None = None) -> list[Variant]:
    """Variants by name; overrides replace the models (e.g. a fresh training run). Raises
    ``ValueError`` naming what is missing and, for a compressed variant, the command that
    makes it."""
    known = shipped_variants()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; known: {sorted(known)} (a variant is "
                         f"'baseline' or a recipe in {recipe_dir()})")
    variants = []
    for name in names:
        variant = known[name]
        variant = Variant(name, camera_override or variant.camera_checkpoint,
                          lidar_override or variant.lidar_checkpoint)
        for model in MODELS:
            path = Path(variant.model_path(model))
            if path.exists():
                continue
            if name != BASELINE and path.parent.parent.name == "variants":
                recipe = path.name  # this variant's own model, or one it pairs with
                raise ValueError(f"variant {name}: {model} model {path} does not exist; create "
                                 f"it with:\n  {compress_command(model, recipe)}")
            raise ValueError(f"variant {name}: model file {path} does not exist")
        variants.append(variant)
    return variants
