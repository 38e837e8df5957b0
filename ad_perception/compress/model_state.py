"""Keeping a compressed model and its config in step.

Pruning changes layer widths and low-rank factorisation changes layers; the config must
describe the model exactly so that the checkpoint written at the end rebuilds it. These
helpers recompute that description from the live module.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn


def builder(kind: str):
    from ad_perception.models.checkpoint import MODEL_KINDS

    return MODEL_KINDS[kind].build


def sync_config(model: nn.Module, kind: str, config: Any) -> Any:
    """``config`` with ``layer_widths`` recomputed for ``model`` (its ``low_rank`` applied)."""
    from ad_perception.models.structure import changed_layer_widths

    reference = builder(kind)(dataclasses.replace(config, layer_widths={}))
    return dataclasses.replace(config, layer_widths=changed_layer_widths(model, reference))


def rebuild(kind: str, config: Any, state: dict[str, Any]) -> nn.Module:
    """A fresh module built from ``config`` holding ``state`` (strict)."""
    model = builder(kind)(config)
    model.load_state_dict(state, strict=True)
    return model.eval()
