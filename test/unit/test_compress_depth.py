"""Depth pruning (compress/depth.py, ``dropped_blocks``): a dropped block is the identity, a
model with dropped blocks and a 5x5 stem rebuilds from its checkpoint, bad names are refused,
and the greedy choice re-ranks after each removal."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ad_perception.compress.depth import choose_blocks, drop_blocks, dropped
from ad_perception.compress.prune import measure_size
from ad_perception.compress.restem import inherits_centre, replace_stem
from ad_perception.models.camera_detector import CameraDetector, CameraDetectorConfig
from ad_perception.models.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("torch_single_thread")
CONFIG = CameraDetectorConfig(input_size=(128, 64), width_multiplier=0.25, fpn_channels=16)


def _model(config: CameraDetectorConfig = CONFIG, seed: int = 0) -> CameraDetector:
    torch.manual_seed(seed)
    return CameraDetector(config).eval()


def _example() -> torch.Tensor:
    return torch.randn(1, 3, 64, 128, generator=torch.Generator().manual_seed(1))


def test_a_dropped_block_passes_its_input_through_and_saves_its_macs():
    model = _model()
    example = _example()
    with torch.no_grad():
        stem = model.trunk.maxpool(model.trunk.relu(model.trunk.bn1(model.trunk.conv1(example))))
        first = model.trunk.layer1[0](stem)
    before = measure_size(model, "camera", CONFIG).macs
    drop_blocks(model, ["layer1.1"])
    assert dropped(model) == ["layer1.1"]
    with torch.no_grad():
        assert torch.equal(model.trunk.layer1(stem), first)
    assert measure_size(model, "camera", CONFIG).macs < before
    with pytest.raises(ValueError, match=r"block 'layer2.0' cannot be dropped; droppable"):
        drop_blocks(model, ["layer2.0"])


def test_dropped_blocks_and_a_5x5_stem_survive_a_checkpoint_round_trip(tmp_path):
    config = CameraDetectorConfig(input_size=(128, 64), width_multiplier=0.25, fpn_channels=16,
                                  stem="conv5_maxpool", dropped_blocks=("layer3.1", "layer1.1"))
    assert config.dropped_blocks == ("layer1.1", "layer3.1")  # one canonical order
    model = _model(config)
    assert isinstance(model.trunk.layer3[1], nn.Identity)
    assert tuple(model.trunk.conv1.kernel_size) == (5, 5)
    save_checkpoint(model, tmp_path / "m.pt", config, {"command": "test", "seed": 0,
                                                       "data": []}, {})
    loaded, card = load_checkpoint(tmp_path / "m.pt")
    assert card.config["dropped_blocks"] == ["layer1.1", "layer3.1"]
    example = _example()
    with torch.no_grad():
        for a, b in zip(model(example), loaded.eval()(example), strict=True):
            assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"dropped_blocks \['layer9.1'\] cannot be dropped"):
        CameraDetectorConfig(dropped_blocks=("layer9.1",))


def test_the_greedy_choice_re_ranks_after_each_removal():
    # Alone, layer2.1 costs least; once it is gone, removing layer3.1 too costs less than
    # removing layer1.1 (the interaction a single ranking would miss).
    costs = {frozenset({"layer2.1"}): 1.0, frozenset({"layer1.1"}): 2.0,
             frozenset({"layer3.1"}): 3.0, frozenset({"layer4.1"}): 9.0,
             frozenset({"layer2.1", "layer3.1"}): 1.5}
    seen = []

    def score(model: nn.Module) -> float:
        gone = frozenset(dropped(model))
        seen.append(gone)
        return 90.0 - costs.get(gone, 5.0)

    model = _model()
    chosen, rounds = choose_blocks(model, 2, score, log=lambda _: None)
    assert chosen == ["layer2.1", "layer3.1"]
    assert [r["dropped"] for r in rounds] == chosen
    assert len(rounds[0]["scores"]) == 4 and len(rounds[1]["scores"]) == 3
    assert dropped(model) == [] and len(seen) == 7  # trials run on copies
    with pytest.raises(ValueError, match="cannot drop 5 blocks: 4 droppable blocks left"):
        choose_blocks(model, 5, score, log=lambda _: None)


def test_a_smaller_stem_kernel_starts_as_the_centre_of_the_old_one():
    model = _model()
    old_weight = model.trunk.conv1.weight.detach().clone()
    model.trunk.bn1.running_mean.fill_(0.25)
    replace_stem(model.trunk, "conv5_maxpool")
    assert torch.equal(model.trunk.conv1.weight, old_weight[:, :, 1:6, 1:6])
    assert torch.equal(model.trunk.bn1.running_mean, torch.full_like(
        model.trunk.bn1.running_mean, 0.25))
    # a patch stem shares no geometry with the 7x7 kernel: it starts from random weights
    seven = nn.Conv2d(3, 8, 7, stride=2, padding=3)
    assert inherits_centre(seven, nn.Conv2d(3, 8, 5, stride=2, padding=2))
    assert not inherits_centre(seven, nn.Conv2d(3, 8, 4, stride=4))
    assert not inherits_centre(seven, nn.Conv2d(3, 8, 5, stride=2, padding=0))
    assert not inherits_centre(nn.Conv2d(3, 8, 5, stride=2, padding=2), seven)


def test_sibling_convs_merge_into_one_exactly():
    import numpy as np
    import onnx
    import onnxruntime as ort

    from ad_perception.compress.export import export_model_onnx
    from ad_perception.compress.graph_opt import merge_sibling_convs
    from ad_perception.compress.steps import simplify_onnx

    raw = simplify_onnx(export_model_onnx(_model(), "camera", CONFIG))
    merged, removed = merge_sibling_convs(onnx.load_from_string(raw))
    # per level: box regression + centerness read the regression tower, and the first convs
    # of both towers read the pyramid level (the untrained centerness conv has no bias)
    assert removed == 2 * len(CONFIG.strides)
    convs = [n for n in merged.graph.node if n.op_type == "Conv"]
    assert sum("box_regression" in n.name and "+" in n.name for n in convs) == 3
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 128)).astype(np.float32)
    before = ort.InferenceSession(raw).run(None, {"input": x})
    after = ort.InferenceSession(merged.SerializeToString()).run(None, {"input": x})
    assert [o.name for o in merged.graph.output] == [o.name for o in
                                                     onnx.load_from_string(raw).graph.output]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    again, none = merge_sibling_convs(merged)
    assert none == 0


def test_grouped_convs_and_old_opsets_are_left_alone():
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from ad_perception.compress.graph_opt import merge_sibling_convs

    rng = np.random.default_rng(0)

    def build(group: int, opset: int):
        weights = [numpy_helper.from_array(rng.normal(size=(4, 4 // group, 3, 3))
                                           .astype(np.float32), f"w{i}") for i in range(2)]
        nodes = [helper.make_node("Conv", ["x", f"w{i}"], [f"y{i}"], group=group,
                                  pads=[1, 1, 1, 1], name=f"conv{i}") for i in range(2)]
        graph = helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
            [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [1, 4, 8, 8])
             for i in range(2)], weights)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])

    assert merge_sibling_convs(build(1, 17))[1] == 1
    assert merge_sibling_convs(build(2, 17))[1] == 0  # depthwise/grouped: not stackable
    assert merge_sibling_convs(build(1, 11))[1] == 0  # Split without a sizes input
    onnx.checker.check_model(build(1, 11))
