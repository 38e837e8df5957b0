"""Low-rank factorisation of convolutions and linear layers, rank chosen by energy.

A k x k conv with weight W (C_out, C_in*k*k) is replaced by a k x k conv to r channels and a
1 x 1 conv back to C_out, from the truncated SVD W ~= (U_r sqrt(S_r)) (sqrt(S_r) V_r^T): the
smallest r whose singular values keep ``energy`` of sum(S^2), rounded up to ``round_to``.
A layer is factored only when the pair has at most ``max_param_ratio`` of the original
weights (otherwise two convs are slower than one). Output convs are left alone by default.
The ranks are recorded in the model config (``low_rank``) so the factored model reloads from
an ordinary state_dict (``models/structure.py``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ad_perception.compress.export import exportable_core
from ad_perception.models.structure import factored_module


def choose_rank(singular_values: torch.Tensor, energy: float, round_to: int = 1) -> int:
    """Smallest rank whose squared singular values reach ``energy`` of the total, rounded up
    to a multiple of ``round_to`` and never above the number of singular values."""
    squared = singular_values.double().pow(2)
    total = float(squared.sum())
    if total == 0.0:
        return min(round_to, len(singular_values))
    cumulative = torch.cumsum(squared, 0) / total
    rank = int(torch.searchsorted(cumulative, torch.tensor(energy, dtype=cumulative.dtype))) + 1
    rank = int(math.ceil(min(rank, len(singular_values)) / round_to) * round_to)
    return max(1, min(rank, len(singular_values)))


def _matrix(module: nn.Module) -> torch.Tensor:
    return module.weight.detach().reshape(module.weight.shape[0], -1).double()


def factor_layer(module: nn.Module, rank: int) -> nn.Sequential:
    """The factor pair of ``module`` at ``rank``, filled from its weight's SVD."""
    u, s, vh = torch.linalg.svd(_matrix(module), full_matrices=False)
    root = s[:rank].sqrt()
    pair = factored_module(module, rank)
    first, second = pair[0], pair[1]
    with torch.no_grad():
        first.weight.copy_((root[:, None] * vh[:rank]).reshape(first.weight.shape))
        second.weight.copy_((u[:, :rank] * root[None, :]).reshape(second.weight.shape))
        if module.bias is not None:
            second.bias.copy_(module.bias.detach())
    return pair.to(module.weight.device, module.weight.dtype)


def _candidates(core: nn.Module, params: Any) -> list[tuple[str, nn.Module]]:
    skipped = {id(m) for m in core.output_layers()} if params.skip_output_layers else set()
    found = []
    for name, module in core.named_modules():
        if id(module) in skipped:
            continue
        if isinstance(module, nn.Conv2d) and module.groups == 1:
            narrow = min(module.in_channels, module.out_channels)
        elif isinstance(module, nn.Linear):
            narrow = min(module.in_features, module.out_features)
        else:
            continue
        if narrow >= params.min_channels:
            found.append((name, module))
    return found


def factorize(model: nn.Module, kind: str, params: Any) -> tuple[dict[str, int], dict[str, Any]]:
    """Factor eligible layers of the exportable core in place.

    Returns (ranks by full-model layer name, effect per layer)."""
    core = exportable_core(model, kind)
    prefix = "" if core is model else next(n for n, m in model.named_modules() if m is core) + "."
    ranks: dict[str, int] = {}
    layers: dict[str, Any] = {}
    for name, module in _candidates(core, params):
        matrix = _matrix(module)
        singular_values = torch.linalg.svdvals(matrix)
        rank = choose_rank(singular_values, params.energy, params.round_to)
        out_size, in_size = matrix.shape
        ratio = rank * (in_size + out_size) / (out_size * in_size)
        kept = float(singular_values[:rank].pow(2).sum() / singular_values.pow(2).sum())
        if ratio > params.max_param_ratio:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = core.get_submodule(parent_name) if parent_name else core
        setattr(parent, child, factor_layer(module, rank))
        ranks[prefix + name] = rank
        layers[prefix + name] = {"rank": rank, "full_rank": len(singular_values),
                                 "param_ratio": round(ratio, 4), "energy_kept": round(kept, 4)}
    return ranks, layers
