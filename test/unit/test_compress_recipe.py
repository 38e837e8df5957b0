"""Recipes: every shipped recipe parses; every mistake is refused before any model is
touched, with a message naming the recipe, the step and the key."""

from __future__ import annotations

import pytest

from ad_perception.compress.recipe import (
    PruneParams,
    PtqParams,
    RecipeError,
    load_recipe,
    parse_recipe,
    shipped_recipe_dir,
)

REQUIRED = {"int8", "prune50_int8", "lowrank_int8", "fp16_gpu"}


def test_shipped_recipes_parse_and_include_the_required_ones():
    paths = sorted(shipped_recipe_dir().glob("*.yaml"))
    assert REQUIRED <= {p.stem for p in paths}
    for path in paths:
        recipe = load_recipe(path)
        assert recipe.name == path.stem, "file name and recipe name must agree"
        assert recipe.steps and recipe.budget.max_drop > 0
    assert "lidar" in load_recipe(shipped_recipe_dir() / "int8.yaml").models


def test_parameters_are_filled_and_typed():
    recipe = parse_recipe("name: r\nbudget: {max_drop: 2}\nsteps:\n"
                          "  - prune: {ratio: 0.3, scope: uniform}\n  - ptq\n")
    prune, ptq = recipe.steps[0].params, recipe.steps[1].params
    assert isinstance(prune, PruneParams) and prune.ratio == 0.3 and prune.scope == "uniform"
    assert prune.importance == PruneParams().importance  # defaults from the dataclass
    assert isinstance(ptq, PtqParams) and ptq.per_channel
    assert recipe.budget.max_drop == 2.0 and isinstance(recipe.budget.max_drop, float)
    assert recipe.to_dict()["steps"][0]["prune"]["ratio"] == 0.3


@pytest.mark.parametrize(("text", "message"), [
    ("steps: [{quantise: {}}]", r"step 1 'quantise' is unknown; known steps: \["),
    ("steps: [{prune: {ration: 0.5}}]", r"step 1 \(prune\): unknown key\(s\) \['ration'\]"),
    ("steps: [{prune: {ratio: high}}]", r"step 1 \(prune\): ratio must be int or float"),
    ("steps: [{prune: {ratio: 1.5}}]", r"ratio must be in \(0, 1\)"),
    ("steps: [{prune: {importance: random}}]", r"importance must be one of \['l1'"),
    ("steps: [{ptq: {per_channel: 1}}]", r"per_channel must be bool"),
    ("steps: [{ptq: {calibration: entropy}}]", r"entropy calibration is onnxruntime's"),
    ("steps: [{ptq: {engine: onnxruntime}}]", r"mean_minmax calibration is NNCF's"),
    ("steps: [{ptq: {engine: onnxruntime, calibration: minmax}}]",
     r"sensitivity search runs on the openvino"),
    ("steps: [{qat: {}}]", r"a qat step needs a ptq step"),
    ("steps: [ptq, {precision: {}}]", r"one ptq or one precision step"),
    ("steps: [{restem: {}}]", r"restem replaces the camera trunk's stem; the recipe's models "
     r"must be \[camera\]"),
    ("models: [camera]\nsteps: [{restem: {stem: conv3}}]", r"stem must be one of \['conv7_max"),
    ("models: [camera]\nsteps: [{restem: {epochs: 0}}]", r"epochs must be >= 1 and lr > 0"),
    ("models: [camera]\nsteps: [{restem: {fit_to: fpn}}]", r"fit_to must be one of \['stem'"),
    ("steps: [{drop_blocks: {count: 1}}]", r"drop_blocks removes camera trunk blocks"),
    ("models: [camera]\nsteps: [{drop_blocks: {}}]", r"give either blocks .* or count"),
    ("models: [camera]\nsteps: [{drop_blocks: {blocks: [layer1.1], count: 1}}]",
     r"give either blocks .* or count"),
    ("models: [camera]\nsteps: [{drop_blocks: {blocks: [layer1.1, layer1.1]}}]",
     r"distinct names"),
    ("models: [camera]\nsteps: [{drop_blocks: {blocks: [layer1.0]}}]",
     r"blocks \['layer1.0'\] cannot be dropped; droppable: \['layer1.1'"),
    ("models: [camera]\nsteps: [{drop_blocks: {blocks: layer1.1}}]",
     r"blocks must be a list of block names"),
    ("models: [camera]\nsteps: [{drop_blocks: {count: 5}}]", r"count 5 exceeds the 4"),
    ("steps: [{input_size: {width: 64, height: 64}}]",
     r"input_size sets the camera network's input; the recipe's models must be \[camera\]"),
    ("models: [camera]\nsteps: [{input_size: {width: 768, height: 450}}]",
     r"width and height must be positive multiples of 32 .*768x450"),
    ("models: [camera]\nsteps: [{input_size: {width: 768}}]", r"multiples of 32 .*768x0"),
    ("steps: []", r"'steps' must be a non-empty list"),
    ("stpes: [ptq]", r"unknown top-level key\(s\) \['stpes'\]"),
    ("budget: {max_loss: 1}\nsteps: [ptq]", r"budget: unknown key\(s\) \['max_loss'\]"),
    ("models: [radar]\nsteps: [ptq]", r"models must list camera and/or lidar"),
    ("models: [camera]\npair_with: {camera: int8}\nsteps: [ptq]",
     r"pair_with maps a model the recipe does not compress"),
    ("steps: [{ptq: {}, prune: {}}]", r"step 1 must be one 'name: \{params\}' mapping"),
    ("steps: [{ptq: {engine: openvino}}", r"not valid YAML"),
])
def test_mistakes_name_the_step_and_key(text, message):
    with pytest.raises(RecipeError, match=message):
        parse_recipe("name: broken\n" + text if not text.startswith("name") else text)


def test_missing_recipe_file_lists_the_shipped_ones(tmp_path):
    with pytest.raises(RecipeError, match=r"does not exist; shipped recipes: \[.*'int8'"):
        load_recipe(tmp_path / "nope.yaml")
