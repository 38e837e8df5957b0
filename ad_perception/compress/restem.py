"""Stem replacement: swap the camera trunk's stride-4 stem for a cheaper one, in place.

Channel pruning thins every layer but cannot change the stem's shape, and on the int8 CPU
path the stem of the 50 %-pruned detector (7x7 stride-2 conv over 3 input channels, then a
3x3 stride-2 max-pool over the half-resolution map) took about a third of the inference time
(OpenVINO per-layer counters, docs/benchmarks.md). ``patch4`` reaches the same stride and
channels with one 4x4 stride-4 conv, so everything after the stem keeps its weights.

The new stem starts untrained. It is first fitted to reproduce the old network's features
(mean squared error on training images): with ``fit_to: stem`` the stem alone learns the old
stem's output; with ``fit_to: layer2`` the stem and the stages up to layer2 learn the old
layer2 output, so those stages can make up for what a 4x4 patch cannot see. On the pruned
detector the second starts the recipe's next ``finetune`` step (distillation from the
uncompressed teacher) from 84.4 instead of 48.9 validation AP (docs/benchmarks.md).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ad_perception.compress.recipe import RESTEM_FIT_DEPTHS
from ad_perception.models.backbone import STEMS, ResNetTrunk, make_stem

FIT_FILE = "stem.pt"
FIT_DEPTHS = RESTEM_FIT_DEPTHS


def stem_of(trunk: ResNetTrunk, fit_to: str = "stem") -> nn.Sequential:
    """The trunk's stem modules, and its stages up to ``fit_to``, as one module (shared, not
    copied)."""
    if fit_to not in FIT_DEPTHS:
        raise ValueError(f"fit_to must be one of {', '.join(FIT_DEPTHS)}, got {fit_to!r}")
    stages = [getattr(trunk, name) for name in FIT_DEPTHS[1:FIT_DEPTHS.index(fit_to) + 1]]
    return nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool, *stages)


def replace_stem(trunk: ResNetTrunk, kind: str, seed: int = 0, fit_to: str = "stem"
                 ) -> nn.Sequential:
    """Give ``trunk`` a fresh stem of ``kind`` with the same output channels; returns a frozen
    copy of the old stem (and stages up to ``fit_to``), the target of the fit."""
    if kind not in STEMS:
        raise ValueError(f"unknown stem {kind!r}; choose one of {', '.join(STEMS)}")
    if kind == trunk.stem_kind:
        raise ValueError(f"the trunk already has a {kind} stem")
    old = copy.deepcopy(stem_of(trunk, fit_to)).eval()
    for parameter in old.parameters():
        parameter.requires_grad_(False)
    channels = trunk.conv1.out_channels
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        conv, pool = make_stem(kind, channels)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    bn = nn.BatchNorm2d(channels)
    if inherits_centre(trunk.conv1, conv):
        cut = (trunk.conv1.kernel_size[0] - conv.kernel_size[0]) // 2
        with torch.no_grad():
            conv.weight.copy_(trunk.conv1.weight[:, :, cut:cut + conv.kernel_size[0],
                                                 cut:cut + conv.kernel_size[1]])
        bn.load_state_dict(trunk.bn1.state_dict())
    trunk.conv1, trunk.maxpool, trunk.bn1 = conv, pool, bn
    trunk.stem_kind = kind
    return old


def inherits_centre(old: nn.Conv2d, new: nn.Conv2d) -> bool:
    """A smaller odd kernel at the same stride and padding rule starts as the centre of the
    old one (a 7x7 -> 5x5 stem keeps most of what it computed: the fit then only has to
    make up for the outer ring) instead of from random weights."""
    same = (old.stride == new.stride and old.in_channels == new.in_channels
            and old.out_channels == new.out_channels)
    sizes = (old.kernel_size[0], new.kernel_size[0])
    return (same and old.kernel_size[0] == old.kernel_size[1]
            and new.kernel_size[0] == new.kernel_size[1] and sizes[1] < sizes[0]
            and all(k % 2 == 1 for k in sizes)
            and old.padding[0] == sizes[0] // 2 and new.padding[0] == sizes[1] // 2)


def fit_stem(new: nn.Module, old: nn.Module, batches: Callable[[int], Iterable[torch.Tensor]],
             epochs: int, steps_per_epoch: int, lr: float,
             progress: Callable[[Iterable[Any], int, str], Iterator[Any]] | None = None
             ) -> list[dict[str, float]]:
    """Train ``new`` to reproduce ``old`` (both image -> features of the same shape).

    ``batches(epoch)`` yields normalised image batches. Adam with a cosine learning rate; the
    loss is the mean squared error divided by the target's variance, so the history reads as
    the share of the old features' variance the new ones have not learnt (0 = identical).
    """
    new.train()
    optimiser = torch.optim.Adam(new.parameters(), lr=lr)
    total = max(1, epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)))
    history = []
    for epoch in range(epochs):
        sums = [0.0, 0.0]
        source = batches(epoch)
        if progress is not None:
            source = progress(source, steps_per_epoch, f"restem epoch {epoch + 1}/{epochs}")
        for images in source:
            with torch.no_grad():
                target = old(images)
            output = new(images)
            error = (output - target).pow(2).mean()
            variance = target.var().clamp_min(1e-12)
            optimiser.zero_grad(set_to_none=True)
            (error / variance).backward()
            optimiser.step()
            schedule.step()
            sums[0] += float(error.detach())
            sums[1] += float(variance)
        history.append({"epoch": epoch + 1, "relative_error": sums[0] / max(sums[1], 1e-12)})
    new.eval()
    return history


def restem_camera(model: nn.Module, kind: str, batches: Callable[[int], Iterable[torch.Tensor]],
                  epochs: int, steps_per_epoch: int, lr: float, out_dir: Path, seed: int = 0,
                  progress: Callable[[Iterable[Any], int, str], Iterator[Any]] | None = None,
                  fit_to: str = "stem") -> dict[str, Any]:
    """Replace the stem of a camera detector and fit it (with the stages up to ``fit_to``);
    a finished fit in ``out_dir`` is reloaded instead of repeated (the runner's resume
    rule)."""
    trunk = model.trunk
    before = trunk.stem_kind
    old = replace_stem(trunk, kind, seed, fit_to)
    new = stem_of(trunk, fit_to)
    saved = out_dir / FIT_FILE
    reused = saved.exists()
    if reused:
        payload = torch.load(saved, map_location="cpu", weights_only=True)
        new.load_state_dict(payload["state"], strict=True)
        history = json.loads(payload["history"])
    else:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            history = fit_stem(new, old, batches, epochs, steps_per_epoch, lr, progress)
        out_dir.mkdir(parents=True, exist_ok=True)
        partial = saved.with_suffix(".partial")
        torch.save({"state": new.state_dict(), "history": json.dumps(history)}, partial)
        partial.replace(saved)
    new.eval()
    return {"stem": {"from": before, "to": kind}, "fit_to": fit_to, "fit": history,
            "reused_fit": reused}
