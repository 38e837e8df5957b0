"""Structured channel pruning with torch-pruning (DepGraph): whole channels leave the
network, so the pruned core is a smaller dense network that runs faster on every backend
(unstructured sparsity gave 0.99x here, FACTS.md).

Importance criteria: ``l1``/``l2`` (magnitude of each layer's own filters, Li et al.),
``group_norm`` (L2 over every layer coupled to the channel, DepGraph), ``taylor`` (first-order
loss change, needs gradients from a few labelled batches). ``global`` ranks channels across
layers (capped per layer by ``max_layer_ratio``), ``uniform`` removes the same share from each.
The final class/box convs are in the ignored list (pruning their outputs would change what
the outputs mean); the lidar pillar encoder is never pruned (only the BEV network is).
Channel counts are rounded to ``round_to`` so int8/bf16 kernels stay on vector paths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ad_perception.compress.export import example_input, exportable_core


@dataclass(frozen=True)
class ModelSize:
    params: int
    macs: int

    def to_dict(self) -> dict[str, int]:
        return {"params": self.params, "macs": self.macs}


def measure_size(model: nn.Module, kind: str, config: Any) -> ModelSize:
    """Parameters of the whole detector and MACs of its exportable core at batch 1 (the
    lidar pillar encoder's MACs depend on the cloud and are a small share)."""
    import torch_pruning as tp

    core = exportable_core(model, kind)
    example = example_input(kind, config).to(next(core.parameters()).device)
    was_training = core.training
    core.eval()
    with torch.no_grad():
        macs, _ = tp.utils.count_ops_and_params(core, example)
    core.train(was_training)
    return ModelSize(sum(p.numel() for p in model.parameters()), int(macs))


def build_importance(name: str) -> Any:
    import torch_pruning as tp

    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1, group_reduction="first")
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2, group_reduction="first")
    if name == "group_norm":
        return tp.importance.GroupMagnitudeImportance(p=2, group_reduction="mean")
    if name == "taylor":
        return tp.importance.GroupTaylorImportance()
    raise ValueError(f"unknown importance {name!r}; use l1, l2, group_norm or taylor")


def prune(model: nn.Module, kind: str, config: Any, params: Any,
          gradients: Callable[[], None] | None = None,
          after_iteration: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Prune ``model`` in place in ``params.iterations`` steps; returns the measured effect.

    ``gradients`` fills ``.grad`` of the model's parameters (needed for taylor);
    ``after_iteration(i)`` runs after each step (the recovery fine-tune between steps).
    """
    import torch_pruning as tp

    if params.importance == "taylor" and gradients is None:
        raise ValueError("taylor importance needs gradients: give training bags (--train)")
    core = exportable_core(model, kind)
    device = next(core.parameters()).device
    before = measure_size(model, kind, config)
    # ignored layers must be modules of this very core, not of a copy (FACTS.md: a list
    # pointing into another copy made the pruner run for 15 minutes).
    ignored = list(core.output_layers())
    core.eval()
    pruner = tp.pruner.MetaPruner(
        core, example_input(kind, config).to(device),
        importance=build_importance(params.importance),
        global_pruning=params.scope == "global", pruning_ratio=params.ratio,
        max_pruning_ratio=params.max_layer_ratio, iterative_steps=params.iterations,
        round_to=params.round_to, ignored_layers=ignored)
    history = []
    for iteration in range(params.iterations):
        if gradients is not None and params.importance == "taylor":
            model.zero_grad(set_to_none=True)
            gradients()
        pruner.step()
        model.zero_grad(set_to_none=True)
        size = measure_size(model, kind, config)
        history.append({"iteration": iteration + 1, **size.to_dict()})
        if after_iteration is not None:
            after_iteration(iteration)
    after = measure_size(model, kind, config)
    return {"before": before.to_dict(), "after": after.to_dict(),
            "macs_ratio": after.macs / max(1, before.macs),
            "params_ratio": after.params / max(1, before.params), "iterations": history}


def taylor_gradients(task: Any, batches: int) -> Callable[[], None]:
    """Accumulate task-loss gradients over ``batches`` training batches (BN in eval mode so
    ranking does not move the running statistics)."""
    import itertools

    def run() -> None:
        model = task.model
        was_training = model.training
        model.eval()
        with torch.enable_grad():
            for batch in itertools.islice(task.train_batches(0), batches):
                outputs = task.forward(task.inputs(batch))
                task.loss(outputs, batch)["total"].backward()
        model.train(was_training)

    return run
