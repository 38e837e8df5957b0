"""Per-layer channel widths: how a pruned model is rebuilt without pickling modules.

Structured pruning changes layer widths in place, so a pruned model no longer matches the one
its config builds. Rather than pickling the module (which ``torch.load(weights_only=True)``
refuses, rightly) or torch-pruning's ``tp.state_dict`` (a copy of every module's ``__dict__``,
also a pickle), the widths that differ from a fresh build are recorded as plain JSON in the
config (``layer_widths``). Loading builds the unpruned model, reshapes those layers to the
recorded widths and then loads an ordinary state_dict into it, strictly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)
_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)


def layer_widths(model: nn.Module) -> dict[str, dict[str, int]]:
    """Widths of every conv, linear and batch-norm layer, keyed by module name."""
    widths: dict[str, dict[str, int]] = {}
    for name, module in model.named_modules():
        if isinstance(module, _CONV_TYPES):
            widths[name] = {"in_channels": module.in_channels,
                            "out_channels": module.out_channels, "groups": module.groups}
        elif isinstance(module, nn.Linear):
            widths[name] = {"in_features": module.in_features,
                            "out_features": module.out_features}
        elif isinstance(module, _NORM_TYPES):
            widths[name] = {"num_features": module.num_features}
    return widths


def changed_layer_widths(model: nn.Module, reference: nn.Module) -> dict[str, dict[str, int]]:
    """The entries of ``layer_widths(model)`` that differ from ``reference`` (an unpruned build
    of the same config); empty for a model that was never pruned."""
    original = layer_widths(reference)
    current = layer_widths(model)
    if set(original) != set(current):
        raise ValueError("model and reference have different layers; was the model built from "
                         "this config?")
    return {name: widths for name, widths in current.items() if widths != original[name]}


def apply_layer_widths(model: nn.Module, widths: dict[str, dict[str, Any]]) -> nn.Module:
    """Reshape the named layers in place to ``widths``; their weights become uninitialised
    and are expected to be overwritten by ``load_state_dict``."""
    modules = dict(model.named_modules())
    for name, entry in widths.items():
        module = modules.get(name)
        if module is None:
            raise ValueError(f"layer_widths names {name!r}, which the model does not have")
        if isinstance(module, _CONV_TYPES):
            _resize_conv(module, int(entry["in_channels"]), int(entry["out_channels"]),
                         int(entry["groups"]))
        elif isinstance(module, nn.Linear):
            module.in_features, module.out_features = (int(entry["in_features"]),
                                                       int(entry["out_features"]))
            module.weight = nn.Parameter(torch.empty(module.out_features, module.in_features))
            if module.bias is not None:
                module.bias = nn.Parameter(torch.empty(module.out_features))
        elif isinstance(module, _NORM_TYPES):
            _resize_norm(module, int(entry["num_features"]))
        else:
            raise ValueError(f"layer {name!r} is a {type(module).__name__}; only conv, linear "
                             f"and batch-norm widths can be applied")
    return model


def _resize_conv(conv: nn.Module, in_channels: int, out_channels: int, groups: int) -> None:
    kernel = tuple(conv.weight.shape[2:])
    if isinstance(conv, nn.ConvTranspose2d):
        shape = (in_channels, out_channels // groups, *kernel)
    else:
        shape = (out_channels, in_channels // groups, *kernel)
    conv.in_channels, conv.out_channels, conv.groups = in_channels, out_channels, groups
    conv.weight = nn.Parameter(torch.empty(shape))
    if conv.bias is not None:
        conv.bias = nn.Parameter(torch.empty(out_channels))


def _resize_norm(norm: nn.Module, num_features: int) -> None:
    norm.num_features = num_features
    if norm.affine:
        norm.weight = nn.Parameter(torch.empty(num_features))
        norm.bias = nn.Parameter(torch.empty(num_features))
    if norm.track_running_stats:
        norm.running_mean = torch.zeros(num_features)
        norm.running_var = torch.ones(num_features)


def factored_module(module: nn.Module, rank: int) -> nn.Sequential:
    """The rank-``rank`` factor pair that replaces a conv or linear layer (weights left
    uninitialised): a k x k conv to ``rank`` channels then a 1 x 1 conv back out (or two
    linears). ``compress/lowrank.py`` fills it from an SVD; loading rebuilds it from the
    config's ``low_rank`` entry, so a factored model is a plain state_dict like any other."""
    if isinstance(module, nn.Conv2d) and module.groups == 1:
        first = nn.Conv2d(module.in_channels, rank, module.kernel_size, module.stride,
                          module.padding, module.dilation, bias=False)
        second = nn.Conv2d(rank, module.out_channels, 1, bias=module.bias is not None)
        return nn.Sequential(first, second)
    if isinstance(module, nn.Linear):
        return nn.Sequential(nn.Linear(module.in_features, rank, bias=False),
                             nn.Linear(rank, module.out_features, bias=module.bias is not None))
    raise ValueError(f"only ungrouped Conv2d and Linear layers can be factored, not a "
                     f"{type(module).__name__}")


def apply_low_rank(model: nn.Module, ranks: dict[str, int]) -> nn.Module:
    """Replace each named layer by ``factored_module(layer, rank)`` in place."""
    for name, rank in ranks.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if not hasattr(parent, child):
            raise ValueError(f"low_rank names {name!r}, which the model does not have")
        setattr(parent, child, factored_module(getattr(parent, child), int(rank)))
    return model
