"""ONNX graph passes of the ``graph`` step beyond batch-norm folding and simplification.

``merge_sibling_convs``: convolutions that read the same tensor with the same geometry become
one convolution with their output channels stacked, followed by a ``Split``. In the camera
head the box-regression (4 channels) and centerness (1 channel) convs both read the
regression tower; on the int8 CPU path each such thin conv costs a full pass over its input
(0.14 ms each at stride 8, OpenVINO per-layer counters), and one 5-channel conv costs about
what one 4-channel conv does. The result is exact: the same sums in the same order.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

CONV_GEOMETRY = ("dilations", "group", "kernel_shape", "pads", "strides", "auto_pad")
SPLIT_SIZES_AS_INPUT = 13  # the ONNX opset from which Split takes its sizes as an input


def _geometry(node: Any) -> tuple:
    import onnx

    values = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return tuple((key, str(values.get(key))) for key in CONV_GEOMETRY)


def merge_sibling_convs(model: Any) -> tuple[Any, int]:
    """``model`` (onnx.ModelProto, changed in place) with sibling convs merged; returns it and
    the number of convolutions removed."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                default=0)
    if opset < SPLIT_SIZES_AS_INPUT:
        return model, 0
    weights = {init.name: init for init in graph.initializer}
    groups: dict[tuple, list[int]] = defaultdict(list)
    for index, node in enumerate(graph.node):
        if node.op_type != "Conv" or len(node.output) != 1:
            continue
        if dict(_geometry(node))["group"] not in ("None", "1"):
            continue  # grouped convs: stacking kernels would change the channel groups
        names = list(node.input)
        if len(names) < 2 or any(n not in weights for n in names[1:]):
            continue  # weights computed at run time (e.g. fake-quantised): leave alone
        groups[(names[0], _geometry(node))].append(index)
    removed = 0
    replaced: dict[int, list[Any]] = {}
    dropped: set[int] = set()
    for (source, _geom), indices in groups.items():
        if len(indices) < 2:
            continue
        nodes = [graph.node[i] for i in indices]
        kernels = [numpy_helper.to_array(weights[n.input[1]]) for n in nodes]
        if len({k.shape[1:] for k in kernels}) != 1:
            continue
        stem = "+".join(n.name or n.output[0] for n in nodes)
        tensors = [onnx.numpy_helper.from_array(np.concatenate(kernels), f"{stem}.weight")]
        conv_inputs = [source, tensors[0].name]
        if any(len(n.input) == 3 for n in nodes):
            # the exporter leaves out an all-zero bias: such a sibling adds zeros
            biases = [numpy_helper.to_array(weights[n.input[2]]) if len(n.input) == 3
                      else np.zeros(k.shape[0], k.dtype) for n, k in zip(nodes, kernels,
                                                                          strict=True)]
            tensors.append(numpy_helper.from_array(np.concatenate(biases), f"{stem}.bias"))
            conv_inputs.append(tensors[1].name)
        sizes = numpy_helper.from_array(np.array([k.shape[0] for k in kernels], np.int64),
                                        f"{stem}.split")
        graph.initializer.extend([*tensors, sizes])
        merged = onnx.helper.make_node("Conv", conv_inputs, [f"{stem}.out"], name=stem)
        merged.attribute.extend(nodes[0].attribute)
        split = onnx.helper.make_node("Split", [merged.output[0], sizes.name],
                                      [n.output[0] for n in nodes], axis=1,
                                      name=f"{stem}.split")
        # The first sibling's place is topologically safe: all read the same input.
        replaced[indices[0]] = [merged, split]
        dropped.update(indices[1:])
        removed += len(indices) - 1
    if not removed:
        return model, 0
    kept = []
    for index, node in enumerate(graph.node):
        if index in replaced:
            kept.extend(replaced[index])
        elif index not in dropped:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in graph.node for name in node.input}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    onnx.checker.check_model(model)
    return model, removed
