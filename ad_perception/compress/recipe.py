"""Compression recipes: YAML files with an accuracy budget and an ordered list of steps.

```yaml
name: prune50_int8
models: [camera]                # which detectors the recipe is meant for
pair_with: {lidar: int8}        # the variant named prune50_int8 uses int8's lidar model
budget: {max_drop: 1.0}         # points of mean AP@0.5 (camera) / car BEV AP (lidar) vs baseline
distillation: {response_weight: 1.0, feature_weight: 1.0}
steps:
  - prune: {importance: l1, ratio: 0.5, scope: global, iterations: 2}
  - finetune: {epochs: 8}
  - ptq: {calibration: minmax, sensitivity_search: true}
```

Every key is checked against the step's parameter dataclass: an unknown step or key, or a
value of the wrong type, is a ``RecipeError`` naming the recipe, the step and the key, before
any model is touched. Defaults live in the dataclasses below, nowhere else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ad_perception import CAMERA_DROPPABLE_BLOCKS, CAMERA_STEMS


class RecipeError(ValueError):
    """A recipe that cannot run as written; the message names the step and key to fix."""


@dataclass
class PruneParams:
    importance: str = "l1"  # l1 | l2 | group_norm | taylor
    ratio: float = 0.5  # fraction of channels removed (per layer: uniform, overall: global)
    scope: str = "global"  # global | uniform
    iterations: int = 1  # prune in this many equal steps ...
    finetune_epochs_between: int = 0  # ... with this many distillation epochs after each
    round_to: int = 8  # channel counts stay multiples of this
    max_layer_ratio: float = 0.8  # global pruning never removes more of one layer
    taylor_batches: int = 4  # batches whose gradients rank channels for taylor


@dataclass
class FinetuneParams:
    epochs: int = 8
    lr: float = 1e-3
    batch_size: int = 8
    max_frames: int = 0  # 0: every training frame
    seed: int = 0


@dataclass
class LowRankParams:
    energy: float = 0.9  # keep the smallest rank whose singular values hold this energy
    min_channels: int = 64  # leave layers narrower than this alone
    max_param_ratio: float = 0.75  # factor only if the pair has at most this share of params
    round_to: int = 8
    skip_output_layers: bool = True


# where a new stem's fit is measured: its own output, or after trunk stage N
RESTEM_FIT_DEPTHS = ("stem", "layer1", "layer2", "layer3", "layer4")
STRIDE_32 = 32  # the camera trunk's coarsest output stride: input sizes are multiples of it


@dataclass
class RestemParams:
    stem: str = "patch4"  # what the camera trunk's stem becomes (models/backbone.STEMS)
    # the new stem and the trunk stages up to this one learn the old output at this depth
    fit_to: str = "layer2"  # stem | layer1 | layer2 | layer3 | layer4
    epochs: int = 10  # passes over the training frames for that fit
    lr: float = 3e-3
    batch_size: int = 8
    max_frames: int = 0  # 0: every training frame
    seed: int = 0


@dataclass
class DropBlocksParams:
    # either the camera trunk blocks to remove, by name ("layer3.1") ...
    blocks: list[str] = field(default_factory=list)
    # ... or how many to remove, chosen greedily by validation accuracy without them
    count: int = 0


@dataclass
class InputSizeParams:
    # the camera network's new input (letterbox) size; the network is fully convolutional, so
    # the weights carry over and a distillation fine-tune at the new size should follow
    width: int = 0
    height: int = 0


@dataclass
class GraphParams:
    fold_batchnorm: bool = True  # BN folded into the convs of the exported graph
    simplify: bool = True  # onnxscript optimizer: constant folding, dead nodes, fusions
    # convs reading one tensor with one geometry become one conv + Split (graph_opt.py)
    merge_sibling_convs: bool = True


@dataclass
class PtqParams:
    engine: str = "openvino"  # openvino (NNCF, the fast path) | onnxruntime
    # mean_minmax (NNCF's default: per-frame extremes averaged) | minmax | percentile |
    # histogram (NNCF, quantisation-error-optimal) | entropy (KL, onnxruntime engine)
    calibration: str = "mean_minmax"
    percentile: float = 99.99  # for percentile calibration
    per_channel: bool = True  # per-channel weight scales
    calibration_frames: int = 300
    preset: str = "mixed"  # mixed (asymmetric activations) | performance (symmetric)
    fast_bias_correction: bool = True
    keep_output_layers_float: bool = True  # the final class/box convs stay in float
    sensitivity_search: bool = True  # keep the most sensitive layers float until in budget
    max_drop: float | None = None  # points; default: what the budget has left
    max_float_layers: int = 20  # the search stops after reverting this many
    ranking_frames: int = 50


@dataclass
class QatParams:
    when: str = "ptq_misses_budget"  # ptq_misses_budget | always
    epochs: int = 2
    lr: float = 1e-5
    batch_size: int = 8
    max_frames: int = 0
    seed: int = 0


@dataclass
class PrecisionParams:
    precision: str = "fp16"  # fp16 | bf16
    backend: str = "torch"  # torch | openvino | onnxruntime | tensorrt
    device: str = "cuda"  # where the variant is meant to run (recorded in the card)
    compile: bool = False


STEP_TYPES: dict[str, type] = {
    "prune": PruneParams, "finetune": FinetuneParams, "lowrank": LowRankParams,
    "restem": RestemParams, "drop_blocks": DropBlocksParams, "input_size": InputSizeParams,
    "graph": GraphParams,
    "ptq": PtqParams, "qat": QatParams, "precision": PrecisionParams,
}
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("prune", "importance"): ("l1", "l2", "group_norm", "taylor"),
    ("prune", "scope"): ("global", "uniform"),
    ("restem", "stem"): CAMERA_STEMS,
    ("restem", "fit_to"): RESTEM_FIT_DEPTHS,
    ("ptq", "engine"): ("openvino", "onnxruntime"),
    ("ptq", "calibration"): ("mean_minmax", "minmax", "percentile", "histogram", "entropy"),
    ("ptq", "preset"): ("mixed", "performance"),
    ("qat", "when"): ("ptq_misses_budget", "always"),
    ("precision", "precision"): ("fp16", "bf16"),
    ("precision", "backend"): ("torch", "openvino", "onnxruntime", "tensorrt"),
    ("precision", "device"): ("cpu", "cuda"),
}


@dataclass
class Budget:
    max_drop: float = 1.0  # accuracy points lost vs the baseline, whole recipe
    min_ptq_drop: float = 0.2  # what PTQ may always lose, even when earlier steps used it up


@dataclass
class Distillation:
    response_weight: float = 1.0
    feature_weight: float = 1.0
    temperature: float = 1.0


@dataclass
class Step:
    kind: str
    params: Any

    def to_dict(self) -> dict[str, Any]:
        return {self.kind: dataclasses.asdict(self.params)}


@dataclass
class Recipe:
    name: str
    steps: list[Step]
    models: tuple[str, ...] = ("camera", "lidar")
    budget: Budget = field(default_factory=Budget)
    distillation: Distillation = field(default_factory=Distillation)
    description: str = ""
    source: str = ""  # the YAML text as read, for the card
    # For the models the recipe does not compress: which variant's model the variant of this
    # name uses (default: the baseline), e.g. a camera recipe paired with the int8 lidar.
    pair_with: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "models": list(self.models),
                "budget": dataclasses.asdict(self.budget),
                "distillation": dataclasses.asdict(self.distillation),
                "steps": [step.to_dict() for step in self.steps]}

    def has(self, kind: str) -> bool:
        return any(step.kind == kind for step in self.steps)


def _coerce(where: str, key: str, value: Any, default: Any, annotation: str) -> Any:
    """Check ``value`` against the type of the field's default (ints accepted for floats)."""
    if value is None and "None" in annotation:
        return None
    expected: tuple[type, ...]
    if isinstance(default, bool) or annotation == "bool":
        expected = (bool,)
    elif isinstance(default, float) or annotation.startswith("float"):
        expected = (int, float)
    elif isinstance(default, int):
        expected = (int,)
    elif isinstance(default, str):
        expected = (str,)
    else:
        return value
    if isinstance(value, bool) and bool not in expected:
        raise RecipeError(f"{where}: {key} must be a number, got {value!r}")
    if not isinstance(value, expected):
        names = " or ".join(t.__name__ for t in expected)
        raise RecipeError(f"{where}: {key} must be {names}, got {value!r}")
    return float(value) if float in expected and not isinstance(value, bool) else value


def _fill(cls: type, values: Any, where: str, step: str = "") -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise RecipeError(f"{where}: expected a mapping of parameters, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(fields)}")
    instance = cls()
    for key, value in values.items():
        default = getattr(instance, key)
        value = _coerce(where, key, value, default, str(fields[key].type))
        choices = CHOICES.get((step, key))
        if choices is not None and value not in choices:
            raise RecipeError(f"{where}: {key} must be one of {list(choices)}, got {value!r}")
        setattr(instance, key, value)
    return instance


def _validate_ranges(recipe: Recipe, where: str) -> None:
    for index, step in enumerate(recipe.steps, 1):
        params, at = step.params, f"{where}: step {index} ({step.kind})"
        if step.kind == "prune" and not 0.0 < params.ratio < 1.0:
            raise RecipeError(f"{at}: ratio must be in (0, 1), got {params.ratio}")
        if step.kind == "prune" and (params.iterations < 1 or params.round_to < 1):
            raise RecipeError(f"{at}: iterations and round_to must be >= 1")
        if step.kind == "lowrank" and not 0.0 < params.energy <= 1.0:
            raise RecipeError(f"{at}: energy must be in (0, 1], got {params.energy}")
        if step.kind == "ptq" and not 50.0 < params.percentile <= 100.0:
            raise RecipeError(f"{at}: percentile must be in (50, 100], got {params.percentile}")
        calibration = getattr(params, "calibration", "")
        if step.kind == "ptq" and calibration == "entropy" and params.engine != "onnxruntime":
            raise RecipeError(f"{at}: entropy calibration is onnxruntime's (set engine: "
                              f"onnxruntime); with NNCF/OpenVINO use minmax, percentile or "
                              f"histogram")
        if step.kind == "ptq" and calibration in ("histogram", "mean_minmax") and \
                params.engine != "openvino":
            raise RecipeError(f"{at}: {calibration} calibration is NNCF's (engine: openvino); "
                              f"onnxruntime offers minmax, percentile and entropy")
        if step.kind == "ptq" and params.engine == "onnxruntime" and params.sensitivity_search:
            raise RecipeError(f"{at}: the sensitivity search runs on the openvino engine; set "
                              f"sensitivity_search: false with engine onnxruntime")
        if step.kind == "restem" and list(recipe.models) != ["camera"]:
            raise RecipeError(f"{at}: restem replaces the camera trunk's stem; the recipe's "
                              f"models must be [camera], got {list(recipe.models)}")
        if step.kind == "restem" and (params.epochs < 1 or params.lr <= 0):
            raise RecipeError(f"{at}: epochs must be >= 1 and lr > 0 (the new stem starts "
                              f"untrained)")
        if step.kind == "drop_blocks":
            _validate_drop_blocks(recipe, params, at)
        if step.kind == "input_size" and list(recipe.models) != ["camera"]:
            raise RecipeError(f"{at}: input_size sets the camera network's input; the "
                              f"recipe's models must be [camera], got {list(recipe.models)}")
        if step.kind == "input_size" and not all(
                v > 0 and v % STRIDE_32 == 0 for v in (params.width, params.height)):
            raise RecipeError(f"{at}: width and height must be positive multiples of "
                              f"{STRIDE_32} (the trunk's output stride), got "
                              f"{params.width}x{params.height}")
        if step.kind in ("finetune", "qat") and params.epochs < 0:
            raise RecipeError(f"{at}: epochs must be >= 0")
    kinds = [step.kind for step in recipe.steps]
    if "qat" in kinds and "ptq" not in kinds:
        raise RecipeError(f"{where}: a qat step needs a ptq step before it (QAT starts from "
                          f"the PTQ calibration)")
    if "qat" in kinds and kinds.index("qat") < kinds.index("ptq"):
        raise RecipeError(f"{where}: the qat step must come after the ptq step")
    if sum(k in ("ptq", "precision") for k in kinds) > 1:
        raise RecipeError(f"{where}: one ptq or one precision step per recipe (it decides the "
                          f"variant's backend and precision)")


def _validate_drop_blocks(recipe: Recipe, params: DropBlocksParams, at: str) -> None:
    if list(recipe.models) != ["camera"]:
        raise RecipeError(f"{at}: drop_blocks removes camera trunk blocks; the recipe's "
                          f"models must be [camera], got {list(recipe.models)}")
    blocks = params.blocks
    if not isinstance(blocks, list) or not all(isinstance(b, str) for b in blocks):
        raise RecipeError(f"{at}: blocks must be a list of block names, got {blocks!r}")
    unknown = sorted(set(blocks) - set(CAMERA_DROPPABLE_BLOCKS))
    if unknown:
        raise RecipeError(f"{at}: blocks {unknown} cannot be dropped; droppable: "
                          f"{list(CAMERA_DROPPABLE_BLOCKS)}")
    if bool(blocks) == bool(params.count) or params.count < 0 or \
            len(set(blocks)) != len(blocks):
        raise RecipeError(f"{at}: give either blocks (distinct names) or count (> 0, chosen "
                          f"by validation accuracy), not both and not neither")
    if params.count > len(CAMERA_DROPPABLE_BLOCKS):
        raise RecipeError(f"{at}: count {params.count} exceeds the "
                          f"{len(CAMERA_DROPPABLE_BLOCKS)} droppable blocks")


def parse_recipe(text: str, name: str = "recipe") -> Recipe:
    """A validated ``Recipe`` from YAML text; ``name`` is used in messages and as default."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RecipeError(f"{name}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise RecipeError(f"{name}: a recipe is a mapping with 'steps'")
    top = {"name", "description", "models", "pair_with", "budget", "distillation", "steps"}
    unknown = sorted(set(data) - top)
    if unknown:
        raise RecipeError(f"{name}: unknown top-level key(s) {unknown}; known: {sorted(top)}")
    where = f"recipe {data.get('name', name)!r}"
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise RecipeError(f"{where}: 'steps' must be a non-empty list")
    steps = []
    for index, entry in enumerate(raw_steps, 1):
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, dict) or len(entry) != 1:
            raise RecipeError(f"{where}: step {index} must be one 'name: {{params}}' mapping, "
                              f"got {entry!r}")
        ((kind, values),) = entry.items()
        if kind not in STEP_TYPES:
            raise RecipeError(f"{where}: step {index} {kind!r} is unknown; known steps: "
                              f"{sorted(STEP_TYPES)}")
        steps.append(Step(kind, _fill(STEP_TYPES[kind], values, f"{where}: step {index} "
                                      f"({kind})", kind)))
    models = data.get("models", ["camera", "lidar"])
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, list) or not set(models) <= {"camera", "lidar"} or not models:
        raise RecipeError(f"{where}: models must list camera and/or lidar, got {models!r}")
    pair_with = data.get("pair_with") or {}
    if (not isinstance(pair_with, dict)
            or not set(pair_with) <= {"camera", "lidar"} - set(models)
            or not all(isinstance(v, str) and v for v in pair_with.values())):
        raise RecipeError(f"{where}: pair_with maps a model the recipe does not compress "
                          f"(not in {models}) to a variant name, e.g. {{lidar: int8}}; "
                          f"got {pair_with!r}")
    recipe = Recipe(
        name=str(data.get("name", name)), steps=steps, models=tuple(models),
        pair_with=dict(pair_with),
        budget=_fill(Budget, data.get("budget"), f"{where}: budget"),
        distillation=_fill(Distillation, data.get("distillation"), f"{where}: distillation"),
        description=str(data.get("description", "")), source=text)
    _validate_ranges(recipe, where)
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    if not path.is_file():
        shipped = sorted(p.stem for p in shipped_recipe_dir().glob("*.yaml"))
        raise RecipeError(f"recipe file {path} does not exist; shipped recipes: {shipped} "
                          f"(config/compression/NAME.yaml)")
    return parse_recipe(path.read_text(), path.stem)


def shipped_recipe_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "config" / "compression"
