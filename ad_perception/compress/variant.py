"""Write a compressed variant directory: the float checkpoint, the deployable file of the
recipe's backend, and ``card.json`` with hashes, recipe, source, steps and metrics."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ad_perception.runtime.artifacts import TORCH_FILE, VariantCard, write_variant_card

DEPLOY_FILES = ("model.xml", "model.bin", "model.onnx")


@dataclass
class Deploy:
    """What the variant runs as: backend, precision and its model object or file."""

    backend: str = "torch"
    precision: str = "fp32"
    model: Any = None  # openvino.Model, or Path of an .onnx file
    io: dict[str, Any] = field(default_factory=dict)  # precision hint, device, compile, ...


def write_variant(out: Path, name: str, kind: str, student: Any, config: Any, deploy: Deploy,
                  recipe: Any, recipe_path: Path | None, baseline: Path, baseline_sha256: str,
                  steps: list[dict[str, Any]], metrics: dict[str, Any],
                  produced_by: dict[str, Any]) -> Path:
    from ad_perception.compress.export import output_names, save_openvino
    from ad_perception.models.checkpoint import save_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    for stale in DEPLOY_FILES:
        (out / stale).unlink(missing_ok=True)
    save_checkpoint(student, out / TORCH_FILE, config, produced_by, metrics)
    files = [TORCH_FILE, f"{TORCH_FILE}.json"]
    primary = TORCH_FILE
    if deploy.backend == "openvino":
        save_openvino(deploy.model, out / "model.xml")
        files += ["model.xml", "model.bin"]
        primary = "model.xml"
    elif deploy.backend in ("onnxruntime", "tensorrt"):
        shutil.copyfile(deploy.model, out / "model.onnx")
        files.append("model.onnx")
        primary = "model.onnx"
    from ad_perception.models.checkpoint import read_card

    saved_config = read_card(out / TORCH_FILE).config
    card = VariantCard(
        name=name, model=kind, backend=deploy.backend, precision=deploy.precision,
        primary=primary, files=dict.fromkeys(files, ""), config=saved_config,
        recipe={"name": recipe.name, "path": str(recipe_path) if recipe_path else "",
                "content": recipe.to_dict(), "yaml": recipe.source},
        source_checkpoint={"path": str(baseline), "sha256": baseline_sha256},
        steps=steps, metrics=metrics, produced_by=produced_by,
        io={**deploy.io, "output_names": output_names(kind, config),
            "input_shape": _input_shape(kind, config)})
    write_variant_card(out, card)
    return out


def _input_shape(kind: str, config: Any) -> list[int]:
    from ad_perception.compress.export import example_input

    return list(example_input(kind, dataclasses.replace(config)).shape)
