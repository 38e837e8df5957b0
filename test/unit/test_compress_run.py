"""``ad-perception compress`` end to end on a tiny checkpoint and a small generated bag: a
recipe with every step writes a variant directory whose files all load, run and agree with
their source; rerunning resumes; bad recipes, baselines and files are refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ad_perception.cli import main
from ad_perception.compress.agreement import agreement, output_difference
from ad_perception.compress.tiny import save_tiny_checkpoint
from ad_perception.core.pipelines import CameraPipeline, as_core_input
from ad_perception.runtime import RuntimeConfigError, load_pipeline

pytestmark = pytest.mark.usefixtures("torch_single_thread")

RECIPE = """
name: every_step
models: [camera]
budget: {max_drop: 100.0}
steps:
  - prune: {importance: l1, ratio: 0.5, scope: uniform, iterations: 2,
            finetune_epochs_between: 1}
  - input_size: {width: 96, height: 96}
  - finetune: {epochs: 1, batch_size: 2}
  - restem: {stem: patch4, epochs: 1, batch_size: 2}
  - drop_blocks: {count: 1}
  - lowrank: {energy: 0.9, min_channels: 16, max_param_ratio: 0.9}
  - graph: {fold_batchnorm: true, simplify: true}
  - ptq: {calibration_frames: 4, sensitivity_search: false}
  - qat: {when: ptq_misses_budget}
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from ad_perception.sim.bag_output import generate_bag

    root = tmp_path_factory.mktemp("compress")
    bag = generate_bag(root / "bag", 5, 31, "mcap", "default", progress=False, workers=1)
    baseline = save_tiny_checkpoint("camera", root / "camera.pt")
    (root / "every_step.yaml").write_text(RECIPE)
    return root, bag, baseline


def _compress(root, bag, baseline, recipe, out, capsys, train=True):
    code = main(["compress", "--model", "camera", "--recipe", str(recipe), "--calib", str(bag),
                 *(["--train", str(bag)] if train else []), "--val", str(bag), "--baseline",
                 str(baseline), "--out", str(out), "--threads", "1", "--no-progress"])
    return code, capsys.readouterr()


@pytest.fixture(scope="module")
def variant(workspace):
    root, bag, baseline = workspace
    out = root / "variant"
    assert main(["compress", "--model", "camera", "--recipe", str(root / "every_step.yaml"),
                 "--calib", str(bag), "--train", str(bag), "--val", str(bag), "--baseline",
                 str(baseline), "--out", str(out), "--threads", "1", "--no-progress"]) == 0
    return out


def test_card_records_every_step(variant, workspace):
    card = json.loads((variant / "card.json").read_text())
    assert card["backend"] == "openvino" and card["precision"] == "int8"
    assert [s["step"] for s in card["steps"]] == ["prune", "input_size", "finetune", "restem",
                                                  "drop_blocks", "lowrank", "graph", "ptq",
                                                  "qat"]
    prune, size, _, restem, depth, *_, ptq, qat = card["steps"]
    # chosen by validation accuracy over all four candidates; the card rebuilds without it
    assert len(depth["ranking"]) == 1 and len(depth["ranking"][0]["scores"]) == 4
    assert card["config"]["dropped_blocks"] == depth["dropped_blocks"] == \
        [depth["ranking"][0]["dropped"]]
    assert depth["size_after"]["macs"] < depth["size_before"]["macs"]
    assert size["input_size"] == {"from": [160, 96], "to": [96, 96]}
    assert card["config"]["input_size"] == [96, 96]
    assert restem["stem"] == {"from": "conv7_maxpool", "to": "patch4"}
    assert card["config"]["stem"] == "patch4" and len(restem["fit"]) == 1
    assert not restem["reused_fit"]
    assert prune["size_after"]["macs"] <= 0.5 * prune["size_before"]["macs"]
    assert ptq["quantizers"] > 5 and "skipped" in qat
    assert set(card["files"]) == {"model.pt", "model.pt.json", "model.xml", "model.bin"}
    assert card["source_checkpoint"]["sha256"] == json.loads(
        (workspace[2].parent / "camera.pt.json").read_text())["sha256"]
    assert card["recipe"]["name"] == "every_step" and "prune" in card["recipe"]["yaml"]
    assert card["config"]["layer_widths"]
    assert card["metrics"]["baseline"]["value"] is not None


def test_every_file_of_the_variant_runs_and_agrees_with_its_source(variant):
    torch_pipeline = load_pipeline(variant, backend="torch", threads=1, score_threshold=0.05)
    openvino_float = load_pipeline(variant, backend="openvino", precision="fp32", threads=1,
                                   score_threshold=0.05)
    int8 = load_pipeline(variant, threads=1, score_threshold=0.05)
    assert isinstance(int8, CameraPipeline) and type(int8.core).__name__ == "OpenVinoCore"
    width, height = int8.config.input_size  # the recipe's input_size step set it
    # channels last: the OpenVINO core takes (1, H, W, 3)
    assert openvino_float.core.input_shape == (1, height, width, 3) == (1, 96, 96, 3)
    example = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    source = [o.numpy() for o in torch_pipeline.core(example)]
    assert output_difference(source, openvino_float.core(
        as_core_input(example, openvino_float.core)))["max_abs"] < 1e-3
    images = [np.random.default_rng(i).integers(0, 256, (120, 200, 3), dtype=np.uint8)
              for i in range(3)]
    reference = [torch_pipeline(i) for i in images]
    assert agreement(reference, [openvino_float(i) for i in images]).f1 >= 0.99
    quantized = agreement(reference, [int8(i) for i in images])
    assert quantized.reference > 0 and quantized.f1 > 0.5, quantized


@pytest.mark.slow  # reruns the whole recipe (~10 s)
def test_rerun_resumes_the_finetunes(variant, workspace, capsys):
    root, bag, baseline = workspace
    code, captured = _compress(root, bag, baseline, root / "every_step.yaml", variant, capsys)
    assert code == 0
    # the between-iterations and main fine-tunes pick up their finished states, not retrain,
    # and the stem fit is reloaded (the same weights as the first run's)
    reused = captured.out.count("already trained") + captured.out.count("resuming")
    assert reused >= 2, captured.out[-2000:]
    card = json.loads((variant / "card.json").read_text())
    assert card["steps"][3]["stem"]["to"] == "patch4" and card["steps"][3]["reused_fit"]


def test_tampered_variant_files_are_named(variant, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(variant, copy, ignore=shutil.ignore_patterns("work"))
    weights = copy / "model.bin"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(RuntimeConfigError, match=r"model.bin: sha256 mismatch"):
        load_pipeline(copy)
    weights.unlink()
    with pytest.raises(RuntimeConfigError, match=r"model.bin: missing"):
        load_pipeline(copy)
    from ad_perception.runtime.artifacts import read_variant_card, write_variant_card

    weights.write_bytes(b"\0" * 64)  # corrupt but listed with its own hash: the parser refuses
    write_variant_card(copy, read_variant_card(copy))
    with pytest.raises(RuntimeConfigError, match=r"model.xml: OpenVINO cannot load it"):
        load_pipeline(copy)
    (copy / "card.json").write_text("{not json")
    with pytest.raises(RuntimeConfigError, match="not a valid variant card"):
        load_pipeline(copy)


def test_bad_recipe_and_baseline_are_refused(workspace, tmp_path, capsys):
    root, bag, baseline = workspace
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("name: bad\nsteps: [{prune: {ratio: 0.5, sparsity: 2}}]\n")
    code, captured = _compress(root, bag, baseline, recipe, tmp_path / "out", capsys)
    assert code == 2 and "unknown key(s) ['sparsity']" in captured.err
    recipe.write_text("name: bad\nsteps: [{finetune: {epochs: 1}}]\n")
    code, captured = _compress(root, bag, baseline, recipe, tmp_path / "out", capsys,
                               train=False)
    assert code == 2 and "step 1 (finetune) needs training frames: give --train" in captured.err
    recipe.write_text("name: bad\nmodels: [lidar]\nsteps: [ptq]\n")
    code, captured = _compress(root, bag, baseline, recipe, tmp_path / "out", capsys)
    assert code == 2 and "is for ['lidar'], not 'camera'" in captured.err
    recipe.write_text("name: bad\nmodels: [camera]\nsteps: [{input_size: {width: 128, "
                      "height: 96}}]\n")
    code, captured = _compress(root, bag, baseline, recipe, tmp_path / "out", capsys)
    assert code == 2 and "width 128 (4 cells, was 5): keep the parity" in captured.err
    code, captured = _compress(root, bag, tmp_path / "none.pt", root / "every_step.yaml",
                               tmp_path / "out", capsys)
    assert code == 2 and "none.pt does not exist" in captured.err


def test_shipped_int8_recipe_on_the_lidar_detector(workspace, tmp_path):
    from ad_perception.core.pipelines import LidarPipeline
    from ad_perception.data import bag_io
    from ad_perception.data.datasets import CLOUD_TYPE

    root, bag, _ = workspace
    baseline = save_tiny_checkpoint("lidar", tmp_path / "lidar.pt")
    out = tmp_path / "lidar_int8"
    assert main(["compress", "--model", "lidar", "--recipe", "int8", "--calib", str(bag),
                 "--val", str(bag), "--baseline", str(baseline), "--out", str(out),
                 "--threads", "1", "--no-progress"]) == 0
    card = json.loads((out / "card.json").read_text())
    assert (card["backend"], card["precision"]) == ("openvino", "int8")
    assert card["recipe"]["name"] == "int8"
    int8 = load_pipeline(out, threads=1, score_threshold=0.05)
    source = load_pipeline(out, backend="torch", threads=1, score_threshold=0.05)
    assert isinstance(int8, LidarPipeline) and type(int8.core).__name__ == "LidarSplitCore"
    topic = next(t for t, m in bag_io.topic_types(bag).items() if m == CLOUD_TYPE)
    clouds = [bag_io.pointcloud2_to_cloud(m) for _, _, m in bag_io.read_messages(bag, [topic])]
    reference = [source(c) for c in clouds]
    assert sum(len(r) for r in reference) > 0
    assert agreement(reference, [int8(c) for c in clouds]).f1 > 0.5


@pytest.mark.parametrize(("recipe", "backend", "precision"), [
    ("bf16_cpu", "openvino", "bf16"),
    ("steps: [{precision: {precision: fp16, backend: onnxruntime, device: cuda}}]",
     "onnxruntime", "fp16"),
])
def test_precision_variants_load_and_agree(workspace, tmp_path, recipe, backend, precision):
    root, bag, baseline = workspace
    if recipe.startswith("steps"):
        path = tmp_path / "half.yaml"
        path.write_text("name: half\n" + recipe)
        recipe = str(path)
    out = tmp_path / "variant"
    assert main(["compress", "--model", "camera", "--recipe", recipe, "--calib", str(bag),
                 "--val", str(bag), "--baseline", str(baseline), "--out", str(out),
                 "--threads", "1", "--no-progress"]) == 0
    card = json.loads((out / "card.json").read_text())
    assert (card["backend"], card["precision"]) == (backend, precision)
    source = load_pipeline(baseline, threads=1, score_threshold=0.05)
    variant = load_pipeline(out, threads=1, score_threshold=0.05)  # fp16 ONNX runs on CPU too
    images = [np.random.default_rng(i).integers(0, 256, (120, 200, 3), dtype=np.uint8)
              for i in range(3)]
    score = agreement([source(i) for i in images], [variant(i) for i in images])
    assert score.reference > 0 and score.f1 >= 0.8, score


def test_openvino_profile_groups_the_variants_layers_by_network_part(variant):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "profile_openvino.py"
    spec = importlib.util.spec_from_file_location("profile_openvino", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.profile(variant / "model.xml", "f32", threads=1, rounds=3, seed=0)
    assert {"stem", "trunk stages", "heads"} <= set(result["parts"])
    assert sum(p["share"] for p in result["parts"].values()) == pytest.approx(1.0)
    assert any("conv1" in layer["name"] for layer in result["layers"])
    assert module.part_of("input/fq_output_0") == "input"
    assert module.part_of("/trunk/layer2/layer2.0/conv1/Conv") == "trunk stages"
