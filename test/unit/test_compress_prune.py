"""Structured pruning step on the tiny detectors: every importance criterion, global and
uniform, iterative; heads keep their outputs; the pruned model reloads from its checkpoint."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ad_perception.compress.export import example_input, exportable_core
from ad_perception.compress.model_state import sync_config
from ad_perception.compress.prune import build_importance, measure_size, prune
from ad_perception.compress.recipe import PruneParams
from ad_perception.compress.tiny import tiny_config, tiny_model
from ad_perception.models.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _outputs(model, kind):
    core = exportable_core(model, kind).eval()
    with torch.no_grad():
        return core(example_input(kind, tiny_config(kind)).normal_(generator=torch.Generator()
                                                                   .manual_seed(3)))


def _random_gradients(model):
    """Stands in for a detection loss in the taylor test: any deterministic gradient."""
    def run():
        for parameter in model.parameters():
            parameter.grad = torch.randn(parameter.shape,
                                         generator=torch.Generator().manual_seed(parameter.numel()))
    return run


@pytest.mark.parametrize("kind", ["camera", "lidar"])
@pytest.mark.parametrize(("importance", "scope"), [("l1", "uniform"), ("l2", "global"),
                                                   ("group_norm", "uniform"),
                                                   ("taylor", "global")])
def test_prune_halves_channels_and_keeps_outputs(kind, importance, scope):
    model = tiny_model(kind)
    shapes = [o.shape for o in _outputs(model, kind)]
    params = PruneParams(importance=importance, ratio=0.5, scope=scope, iterations=2)
    calls = []
    effects = prune(model, kind, tiny_config(kind), params,
                    gradients=_random_gradients(model) if importance == "taylor" else None,
                    after_iteration=calls.append)
    assert calls == [0, 1]
    assert [h["iteration"] for h in effects["iterations"]] == [1, 2]
    assert effects["after"]["macs"] <= 0.5 * effects["before"]["macs"], effects
    assert effects["after"]["params"] < effects["before"]["params"]
    assert [o.shape for o in _outputs(model, kind)] == shapes
    core = exportable_core(model, kind)
    for module in core.modules():
        if isinstance(module, torch.nn.Conv2d) and module not in core.output_layers():
            assert module.out_channels % 8 == 0


def test_taylor_without_gradients_is_refused():
    with pytest.raises(ValueError, match="taylor importance needs gradients"):
        prune(tiny_model("camera"), "camera", tiny_config("camera"),
              PruneParams(importance="taylor"))
    with pytest.raises(ValueError, match="unknown importance"):
        build_importance("random")


@pytest.mark.parametrize("kind", ["camera", "lidar"])
def test_pruned_model_reloads_from_its_checkpoint(kind, tmp_path):
    model = tiny_model(kind)
    config = tiny_config(kind)
    prune(model, kind, config, PruneParams(ratio=0.5))
    config = sync_config(model, kind, config)
    assert config.layer_widths
    save_checkpoint(model, tmp_path / "pruned.pt", config,
                    {"command": "test", "seed": 0, "data": []})
    reloaded, card = load_checkpoint(tmp_path / "pruned.pt")
    assert measure_size(reloaded, kind, config) == measure_size(model, kind, config)
    for got, want in zip(_outputs(reloaded, kind), _outputs(model, kind), strict=True):
        torch.testing.assert_close(got, want)
    assert dataclasses.asdict(config)["layer_widths"] == card.config["layer_widths"]
