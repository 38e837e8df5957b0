"""A full recipe (prune + distillation fine-tune + 5x5 stem + block removal + graph + int8
PTQ with the sensitivity search) on the shipped camera baseline, with a small generated
calibration/training bag, so the real network, not only the tiny one, goes through every
step (slow: a few minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ad_perception.eval.variants import shipped_baseline

BASELINE = shipped_baseline("camera")
RECIPE = """
name: shipped_smoke
models: [camera]
budget: {max_drop: 100.0}
steps:
  - prune: {importance: group_norm, ratio: 0.5, scope: uniform, iterations: 2,
            finetune_epochs_between: 1}
  - finetune: {epochs: 1, batch_size: 4}
  - restem: {stem: conv5_maxpool, fit_to: stem, epochs: 1, batch_size: 4}
  - drop_blocks: {count: 1}
  - graph: {fold_batchnorm: true, simplify: true}
  - ptq: {calibration_frames: 8, sensitivity_search: true, max_float_layers: 2,
          ranking_frames: 4, max_drop: 0.0}
"""


def run_shipped_recipe(baseline: Path, root: Path) -> Path:
    from ad_perception.compress.recipe import parse_recipe
    from ad_perception.compress.runner import RecipeRunner, RunOptions
    from ad_perception.sim.bag_output import generate_bag

    bag = generate_bag(root / "bag", 8, 51, "mcap", "default", progress=False, workers=1)
    options = RunOptions("camera", baseline, [bag], root / "variant", train=[bag], val=[bag],
                         threads=1, command="test_compress_shipped", progress=False)
    return RecipeRunner(parse_recipe(RECIPE), options).run()


def check_variant(variant: Path, bag: Path) -> None:
    from ad_perception.compress.agreement import agreement
    from ad_perception.compress.heldout import camera_frames
    from ad_perception.runtime import load_pipeline

    card = json.loads((variant / "card.json").read_text())
    prune, finetune, restem, depth, graph, ptq = card["steps"]
    assert prune["size_after"]["macs"] <= 0.5 * prune["size_before"]["macs"]
    assert finetune["best_epoch"] == 1 and ptq["quantizers"] > 20
    assert restem["stem"]["to"] == "conv5_maxpool" and card["config"]["stem"] == "conv5_maxpool"
    assert card["config"]["dropped_blocks"] == depth["dropped_blocks"] and \
        depth["size_after"]["macs"] < depth["size_before"]["macs"]
    assert graph["convs_merged"] == 6  # per level: box + centerness, the two towers' first
    assert ptq["sensitivity_search_ran"] or ptq["drop"] <= 0.0
    float_pipeline = load_pipeline(variant, backend="openvino", precision="fp32", threads=1,
                                   score_threshold=0.05)
    int8 = load_pipeline(variant, threads=1, score_threshold=0.05)
    images = [image for image, _, _ in camera_frames([bag], int8.config.class_names, 4)]
    reference = [float_pipeline(i) for i in images]
    if sum(len(r) for r in reference):
        assert agreement(reference, [int8(i) for i in images]).f1 > 0.5
    assert all(np.isfinite(o).all() for o in int8.core(
        __import__("torch").zeros(*int8.core.input_shape)))


@pytest.mark.slow
@pytest.mark.skipif(not BASELINE.is_file(), reason=f"the shipped camera baseline {BASELINE} is "
                    "not in this checkout yet (it is trained, then shipped)")
@pytest.mark.usefixtures("torch_single_thread")
def test_full_recipe_on_the_shipped_camera_baseline(tmp_path):
    variant = run_shipped_recipe(BASELINE, tmp_path)
    check_variant(variant, tmp_path / "bag")
